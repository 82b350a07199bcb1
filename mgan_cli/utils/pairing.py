"""Pairing files by stem: ``face.png`` goes with ``REFDIR/face.jpg`` (references, masks, restored images)."""

from __future__ import annotations

from pathlib import Path

from mgan_cli.errors import ImageInputError
from mgan_cli.utils.imageio import IMAGE_SUFFIXES


class StemIndex:
    """The image files (by suffix, any case) directly inside ``directory``, grouped by file stem; listed once."""

    def __init__(self, directory: Path, what: str = "reference") -> None:
        self.directory = directory
        self.what = what
        self.by_stem: dict[str, list[Path]] = {}
        for path in sorted(directory.iterdir()):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                self.by_stem.setdefault(path.stem, []).append(path)

    def find(self, stem: str) -> Path | None:
        """The one file named ``stem.*`` (None if there is none); several is an :class:`ImageInputError`."""
        matches = self.by_stem.get(stem, [])
        if len(matches) > 1:
            names = ", ".join(p.name for p in matches)
            raise ImageInputError(f"several {self.what}s for {stem} in {self.directory} ({names})")
        return matches[0] if matches else None

    def require(self, stem: str) -> Path:
        """Like :meth:`find`, but none is an :class:`ImageInputError` too."""
        found = self.find(stem)
        if found is None:
            raise ImageInputError(f"no {self.what} named {stem}.* in {self.directory}")
        return found


def find_by_stem(directory: Path, stem: str) -> Path | None:
    """The first (by name) image file ``stem.*`` in ``directory``, or None; lists the folder on each call
    (:class:`StemIndex` lists it once and refuses a stem with several files)."""
    matches = StemIndex(directory).by_stem.get(stem, [])
    return matches[0] if matches else None
