"""Reading ``.npy`` files as plain arrays: never unpickled, never larger than the file, refusals in mgan's words.

The header's shape and dtype are checked against the bytes the file holds before anything is allocated (a 1 kB
file whose header claims 10¹² values is refused), and only regular files are opened
(:func:`mgan_cli.utils.inputs.open_regular`). numpy's own refusal of an object array advises passing
``allow_pickle=True``, which would run whatever the file names, and an empty file raises ``EOFError``, which
click would show as a bare "Aborted!": each becomes one line saying what was refused and why.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from mgan_cli.errors import ConfigurationError, UnsafePickleError
from mgan_cli.utils.inputs import open_regular


def read_npy(path: str | os.PathLike[str]) -> np.ndarray:
    """The array in the ``.npy`` file ``path``. Raises :class:`UnsafePickleError` for an array of Python objects
    (a pickle) and :class:`ConfigurationError` for a file that is empty, truncated, larger than its header says,
    or not a ``.npy`` file."""
    path = Path(path)
    try:
        with open_regular(path) as handle:
            size = os.fstat(handle.fileno()).st_size
            if size == 0:
                raise ConfigurationError(f"{path}: empty or cut short, not a .npy array")
            try:
                version = np.lib.format.read_magic(handle)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
                elif version == (2, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
                else:
                    raise ConfigurationError(f"{path}: .npy format version {version} is not one mgan reads")
            except (ValueError, EOFError) as exc:
                raise ConfigurationError(f"{path}: not a .npy array ({str(exc).splitlines()[0][:200]})") from None
            if dtype.hasobject:
                raise UnsafePickleError(f"{path}: refused: it holds Python objects (a pickle), and loading those "
                                        "can run code; mgan reads only plain numeric arrays (numpy.save of a "
                                        "float array)")
            if dtype.fields is not None or dtype.itemsize == 0:
                raise ConfigurationError(f"{path}: dtype {dtype} is not a plain number type")
            count = math.prod(shape)
            left = size - handle.tell()
            if count * dtype.itemsize != left:
                raise ConfigurationError(f"{path}: its header claims {list(shape)} × {dtype} "
                                         f"({count * dtype.itemsize} bytes), but the file holds {left} bytes of data")
            data = np.frombuffer(handle.read(left), dtype=dtype, count=count)
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return data.reshape(shape, order="F" if fortran else "C").copy()
