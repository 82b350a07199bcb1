"""The one way mgan writes a file: atomically, never through a planted link, never half-written.

The data goes to a temporary file created exclusively (:func:`tempfile.mkstemp`: an unpredictable name,
``O_CREAT | O_EXCL``, so an existing file or symlink there is never opened) in the destination's folder,
is flushed to disk, and is then renamed over the final name with :func:`os.replace`. A rename replaces a
final name that is a symlink (the link itself), it never writes to where the link points. Temporary names
are short (``.mgan-XXXXXXXX.tmp``), so final names up to the file system's limit (255 bytes) work.

:func:`stage` splits this in two (write now, :meth:`StagedFile.commit` later) so that a caller can make
the rename part of a larger transaction (the run store records an image in the same lock).

:func:`make_folder` is the one way mgan creates a folder under an output folder (``OUT/frames``,
``OUT/.mgan/thumbs``, ``OUT/runs/layer2-codes5``, ...): every part below ``OUT`` is created one at a time and
must then be a real folder, never a symbolic link, so no file written into it can land outside ``OUT``.
Functions that write a file never create its folder themselves.
"""

from __future__ import annotations

import contextlib
import functools
import os
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from mgan_cli.errors import OutputError

Writer = Callable[[BinaryIO], None]


@functools.cache
def _file_mode() -> int:
    """The mode an ordinary new file gets (0o666 less the umask), instead of mkstemp's 0o600."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


@dataclass
class StagedFile:
    """Data written to ``temporary``, waiting to replace ``path``."""

    path: Path
    temporary: Path

    def commit(self) -> None:
        """Rename the temporary file over ``path`` (atomic; a symlink at ``path`` is replaced, not followed)."""
        try:
            os.replace(self.temporary, self.path)
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.temporary)


def stage(path: Path, write: Writer | bytes | str) -> StagedFile:
    """Write ``write`` (bytes, text as UTF-8, or a function given the open binary file) to a fresh temporary
    file beside ``path``. Raises :class:`OSError` (the temporary file is then removed)."""
    descriptor, name = tempfile.mkstemp(prefix=".mgan-", suffix=".tmp", dir=path.parent)
    staged = StagedFile(path, Path(name))
    try:
        with os.fdopen(descriptor, "wb") as handle:
            os.fchmod(handle.fileno(), _file_mode())
            if isinstance(write, str):
                handle.write(write.encode("utf-8"))
            elif isinstance(write, bytes):
                handle.write(write)
            else:
                write(handle)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        staged.discard()
        raise
    return staged


def write_atomic(path: Path, write: Writer | bytes | str) -> None:
    """Replace ``path`` with the data atomically (see the module docstring)."""
    stage(path, write).commit()


def make_folder(root: Path, folder: Path | None = None) -> Path:
    """Create ``folder`` (``root`` itself when None, else ``root`` or a folder below it) and return it.

    ``root`` (the output folder the user named, a link to a folder included) is created with its parents.
    Each part of ``folder`` below ``root`` is then created in turn and must be a real folder: a symbolic link
    (to a folder or not) or a file there is refused with an :class:`OutputError`, so that nothing is ever
    written through a link planted inside ``root``. ``folder`` outside ``root`` is a bug (``ValueError``)."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{root}: cannot create the output folder ({exc.strerror or exc})") from None
    if not root.is_dir():
        raise OutputError(f"{root}: not a folder")
    if folder is None:
        return root
    parts = folder.relative_to(root).parts
    if ".." in parts:
        raise ValueError(f"{folder} is not inside {root}")
    current = root
    for part in parts:
        current = current / part
        try:
            os.mkdir(current)
        except FileExistsError:
            pass
        except OSError as exc:
            raise OutputError(f"{current}: cannot create the folder ({exc.strerror or exc})") from None
        mode = os.lstat(current).st_mode
        if stat.S_ISLNK(mode):
            raise OutputError(f"{current} is a symbolic link; mgan writes only inside the output folder "
                              "(remove the link)")
        if not stat.S_ISDIR(mode):
            raise OutputError(f"{current}: not a folder (mgan needs a folder there)")
    return folder
