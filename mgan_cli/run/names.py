"""Output-name planning: every file name a run writes into ``OUT`` belongs to exactly one of the user's inputs.

:class:`OutputNames` is the one rule, used by :class:`mgan_cli.run.planning.Planner` for every input's
``OUT/<stem>.png`` and by :class:`mgan_cli.faces.session.FaceSession` for a photo's ``OUT/<stem>_face<k>.png``
and its paste-back composite ``OUT/<stem>.png`` (claimed before any crop is written). An input whose outputs
cannot all be claimed is refused as a whole, later inputs giving way to earlier ones: its output would be an
input, or another input already claimed that name. Messages name the user's files, never a staged copy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from mgan_cli.run.store import input_key


class OutputNames:
    """The names claimed so far in one run, each by the user's input it belongs to (see the module docstring).
    ``inputs``: the user's inputs; no output may replace one of them."""

    def __init__(self, inputs: Iterable[Path]) -> None:
        self._inputs = {input_key(path) for path in inputs}
        self._claimed: dict[str, Path] = {}
        self._users: dict[str, Path] = {}  # a staged input (a face crop) -> the user's file it stands for

    def stand_for(self, staged: Path, user: Path) -> None:
        """``staged`` (a file mgan made, e.g. a face crop) is the run's input for the user's ``user``: its outputs
        are ``user``'s, and messages name ``user``."""
        self._users[str(staged)] = user

    def user_path(self, path: Path) -> Path:
        """The user's file that ``path`` (an input of the run) stands for; ``path`` itself for the user's own."""
        return self._users.get(str(path), path)

    def claim(self, path: Path, outputs: Sequence[Path]) -> str | None:
        """Claim every name of ``outputs`` for the input ``path`` (all or none); the reason of the refusal
        (naming the user's file) or None when claimed. Names the same user's input claimed already are its own."""
        user = self.user_path(path)
        for output in outputs:
            if input_key(output) in self._inputs:
                return f"{user}: its output {output} would overwrite an input; choose another -o folder"
            other = self._claimed.get(output.name)
            if other is not None and other != user:
                if other.name == user.name:
                    return f"{user}: same file name as {other}, both would write {output}; rename one"
                return f"{user}: its output {output} is also an output of {other}; rename one, or choose another -o"
        for output in outputs:
            self._claimed[output.name] = user
        return None
