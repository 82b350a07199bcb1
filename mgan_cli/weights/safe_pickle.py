"""Unpickling weight files as data: an allow-list unpickler that can never run code carried by a file.

A pickle names the callables it wants to call (``GLOBAL module name`` then ``REDUCE``). Ordinary
``pickle.load`` imports and calls whatever a file names, so a malicious weight file can run any
command. :class:`SafeUnpickler` resolves names only through an explicit table: numpy's array
re-constructors, plain containers, and — for formats that pickle their own classes — inert stand-ins
(:class:`InertObject`) that just record the arguments and state they were given. Anything else raises
:class:`~mgan_cli.errors.UnsafePickleError` before a single call is made.

What a file can make the unpickler *build* is bounded too (:class:`Limits`, relative to the file's size), so
a tiny file can neither exhaust memory nor time: before loading, the opcodes are read without running them
(:func:`prescan`: memo indices must be the next free one or an existing one, as every pickler writes them,
so a 10-byte ``LONG_BINPUT 4294967295`` cannot make the memo allocate gigabytes); while loading, every array,
tensor and copied container is charged to a byte budget (:func:`charge`); after loading, the object graph is
walked once without recursion (:func:`check_structure`): at most ``max_depth`` levels, no object containing
itself, at most ``max_elements`` values counted as if shared references were copies (the "billion laughs"
of nested references that later code would expand), and no tensor claiming more elements than its storage.
"""

from __future__ import annotations

import collections
import contextvars
import io
import math
import pickle
import pickletools
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from mgan_cli.errors import UnsafePickleError
from mgan_cli.utils.inputs import open_regular


@dataclass(frozen=True)
class Limits:
    """What unpickling a file of ``file_bytes`` bytes may build (see the module docstring)."""

    file_bytes: int
    max_bytes: int
    max_elements: int
    max_depth: int = 64

    @classmethod
    def for_size(cls, file_bytes: int) -> Limits:
        """Arrays/tensors/copies up to 2 × the file + 64 MiB; values up to the file's byte count + 100 000."""
        return cls(file_bytes, 2 * file_bytes + 64 * 2**20, file_bytes + 100_000)


class _Budget:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.used = 0

    def charge(self, nbytes: int, what: str) -> None:
        self.used += max(0, int(nbytes))
        if self.used > self.limits.max_bytes:
            raise UnsafePickleError(
                f"refused: the file ({self.limits.file_bytes} bytes) would make mgan build more than "
                f"{self.limits.max_bytes} bytes of data ({what}); a weight file cannot hold that much")


_budget: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("mgan_pickle_budget", default=None)


def charge(nbytes: int, what: str) -> None:
    """Count ``nbytes`` built by an allowed callable against the file's budget (no-op outside :func:`safe_load`)."""
    budget = _budget.get()
    if budget is not None:
        budget.charge(nbytes, what)


def limits() -> Limits | None:
    """The :class:`Limits` of the file being unpickled (``None`` outside :func:`safe_load`)."""
    budget = _budget.get()
    return None if budget is None else budget.limits


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


class _Copying:
    """A container type (``list``, ``dict``, …) whose calls copy their argument: charged per element."""

    def __init__(self, cls: type) -> None:
        self.wrapped = cls

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.wrapped is np.ndarray:  # ndarray(shape, dtype) allocates
            return _numpy_reconstruct(np.ndarray, *args)
        if args and hasattr(args[0], "__len__"):
            charge(8 * len(args[0]), f"a copied {self.wrapped.__name__}")
        return self.wrapped(*args, **kwargs)

    def __repr__(self) -> str:
        return repr(self.wrapped)


def _copying(cls: type) -> Callable[..., Any]:
    return _Copying(cls)


def _unwrapped(value: Any) -> Any:
    return value.wrapped if isinstance(value, _Copying) else value


def _reconstructor(cls: type, base: type, state: Any) -> Any:
    """Safe version of ``copyreg._reconstructor``: only builds inert stand-ins or plain containers."""
    if isinstance(cls, type) and issubclass(cls, InertObject):
        obj = cls()
        if state is not None:
            obj.args = (state,)
        return obj
    cls = _unwrapped(cls)
    if cls in (dict, list, tuple, set, collections.OrderedDict):
        return cls() if state is None else _copying(cls)(state)
    raise UnsafePickleError(f"refused to reconstruct {cls!r}")


def _numpy_reconstruct(*args: Any) -> Any:
    if not args or _unwrapped(args[0]) is not np.ndarray:
        return _raise_unsafe("ndarray subclass")
    shape = args[1] if len(args) > 1 else (0,)
    dtype = np.dtype(args[2]) if len(args) > 2 else np.dtype("b")
    if not isinstance(shape, tuple | list) or not all(isinstance(n, int) and n >= 0 for n in shape):
        return _raise_unsafe(f"an ndarray of shape {shape!r}")
    charge(math.prod(shape) * dtype.itemsize, "an ndarray")
    return np.ndarray.__new__(np.ndarray, tuple(shape), dtype)


def _raise_unsafe(what: str) -> Any:
    raise UnsafePickleError(f"refused to build {what}")


def _numpy_frombuffer(buffer: bytes, dtype: np.dtype, shape: tuple[int, ...], order: str = "C") -> np.ndarray:
    """numpy ≥ 1.25's protocol-5 array pickling: a copy of the buffer's bytes as an array."""
    charge(len(buffer), "an ndarray")
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
    ("numpy", "ndarray"): _Copying(np.ndarray),
    ("numpy", "dtype"): np.dtype,
    ("collections", "OrderedDict"): _Copying(collections.OrderedDict),
    ("builtins", "dict"): _Copying(dict),
    ("builtins", "list"): _Copying(list),
    ("builtins", "tuple"): _Copying(tuple),
    ("builtins", "set"): _Copying(set),
    ("builtins", "frozenset"): _Copying(frozenset),
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


_MEMO_PUTS = {"PUT", "BINPUT", "LONG_BINPUT"}


class _BoundedReader:
    """A seekable binary file seen by :mod:`pickletools`: a read longer than what is left of the file (an
    opcode such as ``BINBYTES8`` claiming 2**40 bytes in a 51-byte file) is refused before anything is
    allocated for it."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        start = handle.tell()
        handle.seek(0, io.SEEK_END)
        self._end = handle.tell()
        handle.seek(start)

    def read(self, size: int | None = -1) -> bytes:
        left = self._end - self._handle.tell()
        if size is None or size < 0:
            size = left
        if size > left:
            raise UnsafePickleError(f"refused: an opcode claims {size} bytes, but only {max(left, 0)} are left in "
                                    "the file (no pickler writes that)")
        return self._handle.read(size)

    def readline(self, size: int | None = -1) -> bytes:
        return self._handle.readline(-1 if size is None else size)

    def tell(self) -> int:
        return self._handle.tell()


def opcodes(handle: BinaryIO) -> Iterator[tuple[pickletools.OpcodeInfo, Any, int | None]]:
    """:func:`pickletools.genops` over ``handle`` (seekable), never reading more than the file holds: the one
    way mgan walks a pickle's opcodes without running them (the unpickler's prescan, format sniffing)."""
    return pickletools.genops(_BoundedReader(handle))


def prescan(handle: BinaryIO, limits: Limits) -> None:
    """Read one pickle's opcodes (never running them) and refuse what no pickler writes: memo indices out of
    order, more opcodes than the file has bytes, or a stack of marks deeper than ``limits.max_depth`` × 4."""
    memo = 0
    marks = 0
    try:
        for opcode, arg, _ in opcodes(handle):
            name = opcode.name
            if name == "MEMOIZE":
                memo += 1
            elif name in _MEMO_PUTS:
                index = int(arg)
                if index > memo:
                    raise UnsafePickleError(f"refused: memo index {index} out of order (next is {memo}); "
                                            "no pickler writes that (it would make the memo allocate memory)")
                memo += index == memo
            elif name == "MARK":
                marks += 1
                if marks > 4 * limits.max_depth:
                    raise UnsafePickleError(f"refused: nested more than {4 * limits.max_depth} marks deep")
            elif pickletools.markobject in opcode.stack_before:
                marks = max(0, marks - 1)
    except UnsafePickleError:
        raise
    except RecursionError:
        raise UnsafePickleError("refused: nested too deeply to read") from None


def _children(value: Any) -> list[Any] | None:
    if isinstance(value, dict):
        return [item for pair in value.items() for item in pair]
    if isinstance(value, list | tuple | set | frozenset):
        return list(value)
    if isinstance(value, np.ndarray | np.generic | str | bytes | bytearray | int | float | complex | bool) \
            or value is None or isinstance(value, type):
        return None
    if hasattr(value, "__dict__") and not callable(value):
        return list(vars(value).values())
    return None


def check_structure(value: Any, limits: Limits) -> None:
    """Walk ``value`` once without recursion (see the module docstring); :class:`UnsafePickleError` if it breaks
    ``limits``: too deep, containing itself, too many values counted as expanded, or a tensor bigger than its
    storage, or arrays and storages together larger than ``limits.max_bytes``."""
    torch = sys.modules.get("torch")  # tensors exist only where torch was imported (by a reader)
    tensor_type = torch.Tensor if torch is not None else ()
    count = 0
    on_path: set[int] = set()
    seen_data: set[int] = set()
    data_bytes = 0
    stack: list[tuple[Any, int, bool]] = [(value, 0, True)]
    while stack:
        item, depth, entering = stack.pop()
        if not entering:
            on_path.discard(id(item))
            continue
        count += 1
        if count > limits.max_elements:
            raise UnsafePickleError(f"refused: the file ({limits.file_bytes} bytes) describes more than "
                                    f"{limits.max_elements} values (nested references that expand, a 'billion "
                                    "laughs' pickle)")
        if depth > limits.max_depth:
            raise UnsafePickleError(f"refused: data nested more than {limits.max_depth} levels deep")
        if isinstance(item, tensor_type):
            storage = item.untyped_storage()
            if item.numel() * item.element_size() > storage.nbytes():
                raise UnsafePickleError(f"refused: a tensor of shape {tuple(item.shape)} claims more elements than "
                                        f"its storage of {storage.nbytes()} bytes holds")
            key = storage.data_ptr() or id(storage)
            if key not in seen_data:
                seen_data.add(key)
                data_bytes += storage.nbytes()
        elif isinstance(item, np.ndarray):
            if item.dtype.hasobject:
                raise UnsafePickleError("refused: an array of Python objects (weights are numbers)")
            if id(item) not in seen_data:
                seen_data.add(id(item))
                data_bytes += item.nbytes
        if data_bytes > limits.max_bytes:
            raise UnsafePickleError(f"refused: the file ({limits.file_bytes} bytes) holds more than "
                                    f"{limits.max_bytes} bytes of arrays and tensors")
        children = _children(item)
        if children is None:
            continue
        if id(item) in on_path:
            raise UnsafePickleError("refused: the data contains itself (a self-referencing pickle)")
        on_path.add(id(item))
        stack.append((item, depth, False))
        stack.extend((child, depth + 1, True) for child in children)


def safe_load(
    source: str | Path | bytes | BinaryIO,
    *,
    allowed: Mapping[tuple[str, str], Callable[..., Any]] | None = None,
    inert_modules: Iterable[str] = (),
    encoding: str = "ASCII",
) -> Any:
    """Unpickle ``source`` (a path, bytes or a seekable binary file) with :class:`SafeUnpickler`, within the
    :class:`Limits` of its size (see the module docstring)."""
    if isinstance(source, str | Path):
        with open_regular(source) as handle:
            return safe_load(handle, allowed=allowed, inert_modules=inert_modules, encoding=encoding)
    handle = io.BytesIO(source) if isinstance(source, bytes) else source
    start = handle.tell()
    handle.seek(0, io.SEEK_END)
    bounds = Limits.for_size(handle.tell() - start)
    handle.seek(start)
    prescan(handle, bounds)
    handle.seek(start)
    token = _budget.set(_Budget(bounds))
    try:
        data = SafeUnpickler(handle, allowed=allowed, inert_modules=inert_modules, encoding=encoding).load()
        check_structure(data, bounds)
    except RecursionError:
        raise UnsafePickleError("refused: nested too deeply to read") from None
    except MemoryError:
        raise UnsafePickleError(f"refused: the file ({bounds.file_bytes} bytes) asks for more memory than "
                                "this machine has") from None
    finally:
        _budget.reset(token)
    return data
