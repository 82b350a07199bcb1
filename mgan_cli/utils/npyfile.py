"""Reading ``.npy`` files as plain arrays: never unpickled, refusals and damage in mgan's own words.

numpy's own refusal of an object array advises passing ``allow_pickle=True``, which would run whatever the
file names; an empty file raises ``EOFError``, which click would show as a bare "Aborted!". Both become one
line saying what was refused and why.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mgan_cli.errors import ConfigurationError, UnsafePickleError


def read_npy(path: Path) -> np.ndarray:
    """The array in the ``.npy`` file ``path``. Raises :class:`UnsafePickleError` for an array of Python objects
    (a pickle) and :class:`ConfigurationError` for a file that is empty, truncated or not a ``.npy`` file."""
    try:
        array = np.load(path, allow_pickle=False)
    except EOFError:
        raise ConfigurationError(f"{path}: empty or cut short, not a .npy array") from None
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise UnsafePickleError(f"{path}: refused: it holds Python objects (a pickle), and loading those can "
                                    "run code; mgan reads only plain numeric arrays (numpy.save of a float "
                                    "array)") from None
        raise ConfigurationError(f"{path}: not a .npy array ({str(exc).splitlines()[0][:200]})") from None
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not isinstance(array, np.ndarray):  # an .npz archive
        array.close()
        raise ConfigurationError(f"{path}: an .npz archive, not a .npy array")
    return array
