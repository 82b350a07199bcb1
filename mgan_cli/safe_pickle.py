"""Unpickling weight files as data: an allow-list unpickler that can never run code carried by a file.

A pickle names the callables it wants to call (``GLOBAL module name`` then ``REDUCE``). Ordinary
``pickle.load`` imports and calls whatever a file names, so a malicious weight file can run any
command. :class:`SafeUnpickler` resolves names only through an explicit table: numpy's array
re-constructors, plain containers, and — for formats that pickle their own classes — inert stand-ins
(:class:`InertObject`) that just record the arguments and state they were given. Anything else raises
:class:`~mgan_cli.errors.UnsafePickleError` before a single call is made.
"""

from __future__ import annotations

import collections
import io
import pickle
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from mgan_cli.errors import UnsafePickleError


class InertObject:
    """Stand-in for a class named in a pickle: records what the pickle gives it and runs nothing.

    ``_pickled_name`` is the original ``module.qualname``; ``args``/``kwargs`` are the constructor
    arguments a ``REDUCE``/``NEWOBJ`` passed, ``state`` what ``BUILD`` passed (usually a ``__dict__``).
    """

    _pickled_name = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    # dict-like objects (e.g. EasyDict) are pickled with SETITEMS on the instance
    def __setitem__(self, key: Any, value: Any) -> None:
        self.__dict__.setdefault("items", {})[key] = value

    def __repr__(self) -> str:
        return f"<inert {self._pickled_name}>"


def plain_data(value: Any) -> Any:
    """Inert ``dnnlib.EasyDict`` stand-ins (and containers of them) → plain dicts and lists."""
    if isinstance(value, InertObject):
        items = dict(value.__dict__.get("items", {}))
        state = value.__dict__.get("state")
        if isinstance(state, dict):
            items.update(state)
        return {k: plain_data(v) for k, v in items.items()}
    if isinstance(value, dict):
        return {k: plain_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_data(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


_inert_classes: dict[str, type[InertObject]] = {}


def inert_class(module: str, name: str) -> type[InertObject]:
    """An :class:`InertObject` subclass standing for ``module.name`` (one class per name, cached)."""
    full = f"{module}.{name}"
    if full not in _inert_classes:
        _inert_classes[full] = type(name, (InertObject,), {"_pickled_name": full, "__module__": __name__})
    return _inert_classes[full]


def _reconstructor(cls: type, base: type, state: Any) -> Any:
    """Safe version of ``copyreg._reconstructor``: only builds inert stand-ins or plain containers."""
    if isinstance(cls, type) and issubclass(cls, InertObject):
        obj = cls()
        if state is not None:
            obj.args = (state,)
        return obj
    if cls in (dict, list, tuple, set, collections.OrderedDict):
        return cls() if state is None else cls(state)
    raise UnsafePickleError(f"refused to reconstruct {cls!r}")


def _numpy_reconstruct(*args: Any) -> Any:
    return np.ndarray.__new__(*args) if args and args[0] is np.ndarray else _raise_unsafe("ndarray subclass")


def _raise_unsafe(what: str) -> Any:
    raise UnsafePickleError(f"refused to build {what}")


def _numpy_frombuffer(buffer: bytes, dtype: np.dtype, shape: tuple[int, ...], order: str = "C") -> np.ndarray:
    """numpy ≥ 1.25's protocol-5 array pickling: a copy of the buffer's bytes as an array."""
    array = np.frombuffer(bytes(buffer), dtype=dtype)
    return array.reshape(shape, order="F" if order == "F" else "C").copy()


def _numpy_scalar(dtype: np.dtype, data: bytes | None = None) -> Any:
    return np.frombuffer(data or b"", dtype=dtype, count=1)[0]


#: Names every weight pickle may use: numpy arrays and scalars, and plain containers.
BASE_ALLOWED: dict[tuple[str, str], Callable[..., Any]] = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy.core.numeric", "_frombuffer"): _numpy_frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _numpy_frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "dict"): dict,
    ("builtins", "list"): list,
    ("builtins", "tuple"): tuple,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "object"): object,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("copy_reg", "_reconstructor"): _reconstructor,
}


def _codecs_encode(text: str, encoding: str = "latin1") -> bytes:
    # protocol-2 pickles written by Python 3 store bytes as _codecs.encode(str, 'latin1')
    if encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(f"refused _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


BASE_ALLOWED[("_codecs", "encode")] = _codecs_encode


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that resolves global names only through ``allowed``.

    Parameters:
        file: binary file object positioned at the pickle.
        allowed: extra ``(module, name) -> callable`` entries on top of :data:`BASE_ALLOWED`.
        inert_modules: module prefixes whose classes become :class:`InertObject` stand-ins
            (e.g. ``("dnnlib.", "torch_utils.")`` for NVlabs pickles). Their code is never imported.
        persistent_load: optional handler for persistent ids (torch's zip format uses them).
    """

    def __init__(
        self,
        file: BinaryIO,
        *,
        allowed: Mapping[tuple[str, str], Callable[..., Any]] | None = None,
        inert_modules: Iterable[str] = (),
        persistent_load: Callable[[Any], Any] | None = None,
        encoding: str = "ASCII",
    ) -> None:
        super().__init__(file, encoding=encoding)
        self._allowed = {**BASE_ALLOWED, **(allowed or {})}
        self._inert_prefixes = tuple(inert_modules)
        if persistent_load is not None:
            self.persistent_load = persistent_load  # type: ignore[method-assign]

    def find_class(self, module: str, name: str) -> Any:
        found = self._allowed.get((module, name))
        if found is not None:
            return found
        if self._inert_prefixes and module.startswith(self._inert_prefixes):
            return inert_class(module, name)
        raise UnsafePickleError(
            f"refused to load '{module}.{name}': weight files are read as data and this name is not on the "
            "allow-list (the file may try to run code, or is in a format mgan does not know)"
        )


def safe_load(
    source: str | Path | bytes | BinaryIO,
    *,
    allowed: Mapping[tuple[str, str], Callable[..., Any]] | None = None,
    inert_modules: Iterable[str] = (),
    encoding: str = "ASCII",
) -> Any:
    """Unpickle ``source`` (a path, bytes or a binary file) with :class:`SafeUnpickler`."""
    if isinstance(source, bytes):
        return SafeUnpickler(io.BytesIO(source), allowed=allowed, inert_modules=inert_modules,
                             encoding=encoding).load()
    if isinstance(source, str | Path):
        with open(source, "rb") as handle:
            return SafeUnpickler(handle, allowed=allowed, inert_modules=inert_modules, encoding=encoding).load()
    return SafeUnpickler(source, allowed=allowed, inert_modules=inert_modules, encoding=encoding).load()
