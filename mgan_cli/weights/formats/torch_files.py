"""Reading ``torch.save`` files as data: ``torch.load(weights_only=True)``, its refusals in mgan's own words.

torch's weights-only unpickler admits tensors, storages and plain containers (plus the ``safe_globals`` a
reader names); a file naming anything else is refused. torch's own message for that advises re-running with
``weights_only=False``, which would run whatever the file names: mgan never says that. :func:`load_torch_file`
raises :class:`~mgan_cli.errors.UnsafePickleError` naming the refused global, and
:class:`~mgan_cli.errors.UnknownFormatError` saying why a file is not a torch archive at all. What was loaded
is then held to the same bounds as :mod:`mgan_cli.weights.safe_pickle`'s
(:func:`~mgan_cli.weights.safe_pickle.check_structure`: depth, self-reference, expanded size, and no tensor
larger than the storage behind it).
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

import torch

from mgan_cli.errors import UnknownFormatError, UnsafePickleError
from mgan_cli.utils.inputs import open_regular
from mgan_cli.weights.safe_pickle import Limits, check_structure

_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default (zip) format
_PICKLE_PROTO = b"\x80"  # a pickle's PROTO opcode (torch's legacy format starts with one)
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def refused_global(message: str) -> str | None:
    """The ``module.name`` torch's weights-only unpickler refused, from its error message (None if none)."""
    found = _GLOBAL.search(message)
    return found.group(1) if found else None


def check_archive(handle: BinaryIO, path: Path) -> dict[str, zipfile.ZipInfo]:
    """The members of the torch zip archive open in ``handle``, by name, after checking that reading them costs
    no more than the file holds: torch.save stores every member uncompressed, so a compressed member (a zip
    bomb: a few bytes that inflate to gigabytes) or members adding up to more than the file's size are refused
    (:class:`UnknownFormatError`) before a byte of them is read."""
    size = os.fstat(handle.fileno()).st_size
    try:
        with zipfile.ZipFile(handle) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, ValueError) as exc:
        raise UnknownFormatError(f"{path}: a damaged zip archive ({exc})") from None
    total = 0
    for info in members:
        if info.compress_type != zipfile.ZIP_STORED:
            raise UnknownFormatError(f"{path}: member {info.filename!r} is compressed; torch.save stores its members "
                                     "uncompressed, so this is not a torch file (refused: it could inflate without "
                                     "bound)")
        total += info.file_size
        if info.file_size != info.compress_size or total > size:
            raise UnknownFormatError(f"{path}: member {info.filename!r} claims {info.file_size} bytes, more than "
                                     f"the {size}-byte file holds; a damaged or hostile archive")
    return {info.filename: info for info in members}


def read_member(handle: BinaryIO, path: Path, name: str) -> bytes:
    """Member ``name`` of the checked (:func:`check_archive`) archive in ``handle``, reading at most its stored
    size (a member that runs on is refused)."""
    infos = check_archive(handle, path)
    handle.seek(0)
    try:
        with zipfile.ZipFile(handle) as archive, archive.open(infos[name]) as member:
            data = member.read(infos[name].file_size + 1)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise UnknownFormatError(f"{path}: a damaged zip archive ({exc})") from None
    if len(data) > infos[name].file_size:
        raise UnknownFormatError(f"{path}: member {name!r} is longer than it claims; a damaged or hostile archive")
    return data


def load_torch_file(path: Path, safe_globals: Iterable[Any] = ()) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, refusals and damage as one-line mgan errors. Only a
    regular file is opened; a zip archive is checked first (:func:`check_archive`)."""
    try:
        handle = open_regular(path)
    except OSError as exc:
        raise UnknownFormatError(f"{path}: cannot read ({exc.strerror or exc})") from None
    with handle:
        try:
            magic = handle.read(4)
        except OSError as exc:
            raise UnknownFormatError(f"{path}: cannot read ({exc.strerror or exc})") from None
        if magic != _ZIP_MAGIC and magic[:1] != _PICKLE_PROTO:
            raise UnknownFormatError(f"{path}: not a torch weights file (neither a zip archive nor a pickle)")
        if magic == _ZIP_MAGIC:
            check_archive(handle, path)
        handle.seek(0)
        return _load(handle, path, safe_globals)


def _load(handle: BinaryIO, path: Path, safe_globals: Iterable[Any]) -> Any:
    try:
        with torch.serialization.safe_globals(list(safe_globals)):
            data = torch.load(handle, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        name = refused_global(str(exc))
        if name is not None:
            raise UnsafePickleError(f"{path}: refused to load: the file names '{name}', which is not a tensor or "
                                    "a container; weight files are read as data (the file may try to run code, "
                                    "or is not a weight file mgan reads)") from None
        raise UnknownFormatError(f"{path}: a damaged or unreadable torch file ({first_line(exc)})") from None
    except RecursionError:
        raise UnsafePickleError(f"{path}: refused to load: nested too deeply to be a weight file") from None
    except Exception as exc:  # torch raises several types for files that are not torch archives
        raise UnknownFormatError(f"{path}: not a torch weights file ({first_line(exc)})") from None
    try:  # what a tiny file may stand for is bounded as for mgan's own unpickler (no stride-0 giants)
        check_structure(data, Limits.for_size(Path(path).stat().st_size))
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"{path}: {exc}") from None
    return data


#: lines of torch's and numpy's messages that advise loading with code execution allowed: never passed on
_UNSAFE_ADVICE = re.compile(r"weights.only|allow_pickle|trust the source", re.IGNORECASE)


def first_line(exc: BaseException) -> str:
    """``Type: first line`` of ``exc``'s message, skipping lines that pass on torch's advice to load with
    ``weights_only=False`` (or numpy's ``allow_pickle=``), which would run whatever the file names."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip() and not _UNSAFE_ADVICE.search(line)]
    return f"{exc.__class__.__name__}: {lines[0][:200]}" if lines else exc.__class__.__name__
