"""What a run does with each image's inversion besides the restored image: generator tuning
(:mod:`mgan_cli.core.tuning`), saved latents (:mod:`mgan_cli.edit.latents`) and edit frames
(:mod:`mgan_cli.edit.frames`).

Files (beside ``OUT/<stem>.png``): ``OUT/latents/<stem>.safetensors``; ``OUT/frames/<stem>_<strength>.png``
(one per strength, e.g. ``face_-1.5.png``; the raw render x̂, strength 0 = the inversion) and
``OUT/strips/<stem>.png`` (the frames side by side). The report row gains ``latents``, ``frames``
(``[{strength, path}]``) and ``strip``, and ``tuned_steps`` when the generator was tuned. These files belong
to the row (:func:`named_files`): when a record replaces an output's owner, the files only the replaced row
named are removed (:meth:`mgan_cli.run.store.RunStore.put`), so no frame of an old strength outlives it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mgan_cli.core.tuning import TuningSettings
from mgan_cli.edit.frames import Direction, strength_name


@dataclass(frozen=True)
class EditRequest:
    """Render frames moved by ``strength · direction`` for each of ``strengths``; ``rows``: w+ rows only;
    ``move_upper``: the upper latent's rows move too (see :mod:`mgan_cli.edit.frames`)."""

    direction: Direction
    strengths: tuple[float, ...]
    rows: range | None = None
    move_upper: bool = False


@dataclass(frozen=True)
class RunExtras:
    """Per-image work after the inversion; the default does none of it."""

    tuning: TuningSettings = field(default_factory=TuningSettings)
    save_latents: bool = False
    edit: EditRequest | None = None
    generator_sha256: str | None = None  # recorded in saved latents

    @property
    def needed(self) -> bool:
        return self.tuning.steps > 0 or self.save_latents or self.edit is not None


def frame_name(stem: str, strength: float) -> str:
    """``face_-1.5.png``, ``face_0.png``, ``face_3.png``.

    >>> frame_name("a", -1.5), frame_name("a", 0.0), frame_name("a", 3.0)
    ('a_-1.5.png', 'a_0.png', 'a_3.png')
    """
    return f"{stem}_{strength_name(strength)}.png"


def frame_paths(output_dir: Path, stem: str, strengths: tuple[float, ...]) -> list[Path]:
    return [output_dir / "frames" / frame_name(stem, s) for s in strengths]


def strip_path(output_dir: Path, stem: str) -> Path:
    return output_dir / "strips" / f"{stem}.png"


#: the folders of ``OUT`` whose files a row names, by the row's field
NAMED_FOLDERS = {"frames": "frames", "strip": "strips", "latents": "latents"}


def named_files(output_dir: Path, row: Mapping[str, Any]) -> set[Path]:
    """The files beside its output that a stored row names (frames, strip, saved latents), each in its folder of
    ``output_dir``. Only the file names are taken from the row, so a path stored relative to another working
    folder (or a hostile one) never names a file elsewhere.

    >>> sorted(map(str, named_files(Path("E"), {"frames": [{"path": "x/E/frames/a_0.png"}], "strip": "../a.png"})))
    ['E/frames/a_0.png', 'E/strips/a.png']
    """
    named: list[tuple[str, object]] = []
    frames = row.get("frames")
    if isinstance(frames, list):
        named += [("frames", frame.get("path")) for frame in frames if isinstance(frame, dict)]
    named += [(key, row.get(key)) for key in ("strip", "latents")]
    files: set[Path] = set()
    for key, value in named:
        name = os.path.basename(value) if isinstance(value, str) else ""
        if name not in ("", ".", "..") and "\0" not in name:
            files.add(output_dir / NAMED_FOLDERS[key] / name)
    return files
