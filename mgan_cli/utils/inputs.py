"""Opening an input file: only a regular file is ever opened for reading.

A FIFO, a character device or a socket named as an input (an image, a mask, a weight file, a preset) would
block the command forever or feed it endless data. :func:`open_regular` opens without blocking
(``O_NONBLOCK``: opening a FIFO with no writer returns at once), checks the open file with ``fstat`` and
refuses anything but a regular file with an :class:`OSError` naming the path (:class:`IsADirectoryError` for a
folder); only then is the file switched
back to blocking reads. Every input mgan reads goes through it (or through :func:`check_regular` where a
library opens the path itself).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

_KINDS = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a folder"}


def _describe(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """``path`` opened for binary reading if it is a regular file; :class:`OSError` (``EINVAL``) otherwise."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(descriptor).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "a folder, not a file", str(path))
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, f"{_describe(mode)}, not a regular file; mgan reads only regular files",
                          str(path))
        os.set_blocking(descriptor, True)
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def check_regular(path: str | os.PathLike[str]) -> Path:
    """Raise :class:`OSError` unless ``path`` is a regular file (for libraries that open the path themselves)."""
    open_regular(path).close()
    return Path(path)
