"""Opening an input file: only a regular file is ever opened for reading.

A FIFO, a character device or a socket named as an input (an image, a mask, a weight file, a preset) would
block the command forever or feed it endless data. :func:`open_regular` opens without blocking
(``O_NONBLOCK``: opening a FIFO with no writer returns at once), checks the open file with ``fstat`` and
refuses anything but a regular file with an :class:`OSError` naming the path (:class:`IsADirectoryError` for a
folder); only then is the file switched
back to blocking reads. Every input mgan reads goes through it (or through :func:`check_regular` where a
library opens the path itself). :func:`load_npy` reads a ``.npy`` array whose header is checked against the
file's size first.
"""

from __future__ import annotations

import errno
import math
import os
import stat
from pathlib import Path
from typing import BinaryIO

import numpy as np

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


def load_npy(path: str | os.PathLike[str]) -> np.ndarray:
    """The array in the ``.npy`` file ``path`` (a regular file; no pickled objects). The header's shape and
    dtype are checked against the bytes the file holds before anything is allocated: a 1 kB file whose header
    claims 10¹² values is refused (:class:`ValueError`), as is an object or structured dtype."""
    with open_regular(path) as handle:
        size = os.fstat(handle.fileno()).st_size
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
        else:
            raise ValueError(f".npy format version {version} is not one mgan reads (1.0 or 2.0)")
        if dtype.hasobject or dtype.fields is not None or dtype.itemsize == 0:
            raise ValueError(f"dtype {dtype} is not a plain number type")
        count = math.prod(shape)
        left = size - handle.tell()
        if count * dtype.itemsize != left:
            raise ValueError(f"its header claims {list(shape)} × {dtype} ({count * dtype.itemsize} bytes), but the "
                             f"file holds {left} bytes of data")
        data = np.frombuffer(handle.read(left), dtype=dtype, count=count)
    return data.reshape(shape, order="F" if fortran else "C").copy()
