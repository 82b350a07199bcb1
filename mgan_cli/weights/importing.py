"""``mgan weights import``: convert a generator file once into mgan's own format, in the cache.

:func:`sniff_format` tells the file's format without running anything it contains: it reads the pickle
*opcodes* (:mod:`pickletools`), never unpickles, and looks at the global names and short strings:

* a folder with ``mgan.json`` or a safetensors header → ``mgan-safetensors``;
* a torch zip archive or a legacy torch file: the state-dict keys decide — ``g_ema`` / ``style.1.weight`` →
  ``rosinality``, ``generator_smooth`` / ``mapping.dense0.weight`` / ``layer0.weight`` → ``genforce-zoo``
  (genforce/genforce), ``synthesis.layer0.first_layer`` → ``interfacegan-stylegan``, ``layer0.conv.weight`` →
  ``genforce-pggan``, ``synthesis.early_layer.const`` → ``genforce-stylegan2``, ``synthesis.layer0.const`` →
  ``genforce-stylegan``;
* a plain pickle naming ``tfutil`` / ``dnnlib.tflib`` (TensorFlow networks) → ``tf-pggan`` (build function
  ``G_paper``), ``tf-stylegan`` (``G_style``) or ``tf-stylegan2`` (``G_main``); naming
  ``torch_utils.persistence`` → ``nvlabs-pickle``.

:func:`import_generator` then reads the file with that format's safe reader (``READERS``), builds the
generator strictly (every key and shape must fit), and writes ``weights.safetensors`` + ``mgan.json``
(see :mod:`mgan_cli.weights.formats.safetensors_format`) into ``<cache>/imported/<name>/``: both files are written
into a temporary folder beside it, which is then renamed into place, so a crash never leaves half an
import. The imported name can then be used wherever a registry generator name can (presets,
``--generator``, :func:`mgan_cli.weights.loading.load_generator`).
"""

from __future__ import annotations

import datetime
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import torch
from safetensors.torch import save_file

from mgan_cli.errors import ConfigurationError, UnknownFormatError, UnsafePickleError, WeightsError
from mgan_cli.utils.inputs import open_regular
from mgan_cli.version import __version__
from mgan_cli.weights.formats import READERS, build
from mgan_cli.weights.formats.safetensors_format import HEADER_KEY, INFO_FILE, WEIGHTS_FILE, read_info
from mgan_cli.weights.formats.torch_files import check_archive, read_member
from mgan_cli.weights.safe_pickle import opcodes
from mgan_cli.weights.store import WeightStore, default_store, sha256_of

IMPORTED_DIR = "imported"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_ZIP_MAGIC = b"PK\x03\x04"
#: torch's legacy (pre-1.6, non-zip) files start with a pickled magic number
_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
#: strings longer than this (module sources, docstrings) are not kept by the sniffer
_MAX_STRING = 200
#: (state-dict key that identifies a layout, reader) for torch files, checked in order
_TORCH_MARKERS = (
    ("g_ema", "rosinality"),
    ("style.1.weight", "rosinality"),
    ("generator_smooth", "genforce-zoo"),
    ("mapping.dense0.weight", "genforce-zoo"),
    ("synthesis.layer0.first_layer", "interfacegan-stylegan"),
    ("layer0.weight", "genforce-zoo"),
    ("synthesis.early_layer.const", "genforce-stylegan2"),
    ("synthesis.layer0.const", "genforce-stylegan"),
    ("layer0.conv.weight", "genforce-pggan"),
)
#: (TF build-function name, reader) for TensorFlow network pickles, checked in order
_TF_MARKERS = (
    ("G_main", "tf-stylegan2"),
    ("G_synthesis_stylegan2", "tf-stylegan2"),
    ("G_style", "tf-stylegan"),
    ("G_paper", "tf-pggan"),
)


@dataclass
class PickleScan:
    """What a pickle names: its globals as ``module.name`` and its short string constants."""

    globals: set[str]
    strings: set[str]
    first_value: Any = None


def _scan_pickle(handle: BinaryIO) -> PickleScan:
    """Walk one pickle's opcodes (up to its STOP) without executing any of them."""
    names: set[str] = set()
    strings: set[str] = set()
    recent: list[str] = []
    first_value: Any = None
    for index, (opcode, arg, _pos) in enumerate(opcodes(handle)):
        if index == 1 and isinstance(arg, int):
            first_value = arg
        if opcode.name in ("GLOBAL", "INST") and isinstance(arg, str):
            names.add(arg.replace(" ", ".", 1))
        elif opcode.name == "STACK_GLOBAL" and len(recent) >= 2:
            names.add(f"{recent[-2]}.{recent[-1]}")
        elif isinstance(arg, str) and len(arg) <= _MAX_STRING:
            strings.add(arg)
            recent = [*recent[-1:], arg]
        elif isinstance(arg, bytes) and len(arg) <= _MAX_STRING:
            strings.add(arg.decode("latin1"))
    return PickleScan(names, strings, first_value)


def _torch_reader(strings: set[str], path: Path) -> str:
    for marker, reader in _TORCH_MARKERS:
        if marker in strings:
            return reader
    raise UnknownFormatError(f"{path}: a torch file, but not a generator layout mgan knows (genforce PGGAN/"
                             "StyleGAN/StyleGAN2 state dict or rosinality checkpoint); pass --format")


def _pickle_reader(scan: PickleScan, path: Path) -> str:
    # names memoised by protocol 4 (BINGET) hide some STACK_GLOBAL modules: the strings have them all
    modules = {name.rsplit(".", 1)[0] for name in scan.globals} | scan.strings
    if any(m == "tfutil" or m.startswith(("dnnlib.tflib", "tfutil.")) for m in modules):
        for marker, reader in _TF_MARKERS:
            if marker in scan.strings:
                return reader
        raise UnknownFormatError(f"{path}: a TensorFlow network pickle, but its generator is none of PGGAN "
                                 "(G_paper), StyleGAN (G_style) or StyleGAN2 (G_main); pass --format")
    if any(m.startswith("torch_utils.persistence") for m in modules):
        return "nvlabs-pickle"
    shown = ", ".join(sorted(scan.globals)[:5]) or "no globals"
    raise UnknownFormatError(f"{path}: a pickle of an unknown kind (it names {shown}); pass --format")


def _zip_data_pickle(handle: BinaryIO, path: Path) -> bytes:
    """The archive's ``data.pkl``, read within what the file holds (:func:`check_archive`)."""
    members = [n for n in check_archive(handle, path) if n.endswith("/data.pkl") or n == "data.pkl"]
    if not members:
        raise UnknownFormatError(f"{path}: a zip archive without data.pkl, so not a torch file")
    handle.seek(0)
    return read_member(handle, path, members[0])


def _is_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 9:
        return False
    length = int.from_bytes(head[:8], "little")
    return 0 < length <= size - 8 and head[8:9] == b"{"


def sniff_format(path: Path) -> str:
    """The ``READERS`` name for ``path`` (see the module docstring); :class:`UnknownFormatError` if unknown."""
    path = Path(path)
    if path.is_dir():
        if (path / INFO_FILE).is_file() or (path / WEIGHTS_FILE).is_file():
            return "mgan-safetensors"
        raise UnknownFormatError(f"{path}: a folder, but not an imported mgan generator (no {WEIGHTS_FILE})")
    try:
        size = path.stat().st_size
        with open_regular(path) as handle:
            head = handle.read(16)
            if head[:4] == _ZIP_MAGIC:
                return _torch_reader(_scan_pickle_bytes(_zip_data_pickle(handle, path), path).strings, path)
            if _is_safetensors(head, size):
                return "mgan-safetensors"
            if head[:1] != b"\x80":
                raise UnknownFormatError(f"{path}: neither a pickle, a torch archive nor a safetensors file")
            handle.seek(0)
            first = _scan(handle, path)
            if first.first_value == _TORCH_LEGACY_MAGIC:  # legacy torch.save: magic, protocol, sys info, data
                for _ in range(2):
                    _scan(handle, path)
                return _torch_reader(_scan(handle, path).strings, path)
            return _pickle_reader(first, path)
    except OSError as exc:
        raise UnknownFormatError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _scan(handle: BinaryIO, path: Path) -> PickleScan:
    try:
        return _scan_pickle(handle)
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"{path}: {exc}") from None
    except (ValueError, EOFError) as exc:
        raise UnknownFormatError(f"{path}: a damaged or truncated pickle ({exc})") from exc


def _scan_pickle_bytes(data: bytes, path: Path) -> PickleScan:
    return _scan(io.BytesIO(data), path)


# ---- the imported-generator folder ------------------------------------------------------------------------

@dataclass(frozen=True)
class ImportedGenerator:
    """An imported generator: its name, its folder (``<cache>/imported/<name>``) and its ``mgan.json``."""

    name: str
    folder: Path
    info: dict[str, Any]

    @property
    def weights_file(self) -> Path:
        return self.folder / WEIGHTS_FILE

    def verified(self) -> bool:
        """Whether ``weights.safetensors`` is there and still has the sha256 recorded at import."""
        return self.weights_file.is_file() and sha256_of(self.weights_file) == self.info.get("weights_sha256")


def imported_root(store: WeightStore | None = None) -> Path:
    """``<cache>/imported`` (the cache is ``$MGAN_HOME``, default ``~/.cache/mgan``)."""
    return (store or default_store()).home / IMPORTED_DIR


def find_imported(name: str, store: WeightStore | None = None) -> ImportedGenerator | None:
    """The imported generator called ``name``, or ``None``."""
    if not NAME_PATTERN.fullmatch(name):
        return None
    folder = imported_root(store) / name
    info_file = folder / INFO_FILE
    if not info_file.is_file():
        return None
    return ImportedGenerator(name, folder, read_info(info_file))


def list_imported(store: WeightStore | None = None) -> list[ImportedGenerator]:
    """Every imported generator, by name (folders being written, ``.*``, are skipped)."""
    root = imported_root(store)
    if not root.is_dir():
        return []
    found = [find_imported(p.name, store) for p in sorted(root.iterdir()) if not p.name.startswith(".")]
    return [g for g in found if g is not None]


def parameter_count(model: torch.nn.Module) -> int:
    """Learnable parameters (buffers such as noise, blur kernels, ``w_avg`` and ``lod`` not counted)."""
    return sum(p.numel() for p in model.parameters())


def import_generator(source: Path, name: str, format_name: str = "auto", store: WeightStore | None = None,
                     overwrite: bool = False) -> ImportedGenerator:
    """Convert ``source`` into ``<cache>/imported/<name>/`` (see the module docstring) and return it.

    Raises :class:`ConfigurationError` for a bad or taken name, :class:`UnknownFormatError` /
    :class:`~mgan_cli.errors.UnsafePickleError` for a file that cannot be read safely.
    """
    store = store or default_store()
    source = Path(source)
    if not NAME_PATTERN.fullmatch(name):
        raise ConfigurationError(f"--name {name!r}: use letters, digits, '.', '_' and '-' (not starting with "
                                 "'.', '_' or '-'), at most 100 characters")
    if name in store.entries:
        raise ConfigurationError(f"--name {name!r} is a registry entry (`mgan weights list`); choose another name")
    target = imported_root(store) / name
    if target.exists() and not overwrite:
        raise ConfigurationError(f"an imported generator {name!r} already exists at {target}; "
                                 "pass --overwrite to replace it")
    if not source.exists():
        raise WeightsError(f"{source}: no such file")
    reader = sniff_format(source) if format_name == "auto" else format_name
    if reader not in READERS:
        raise UnknownFormatError(f"no reader for format {reader!r} in this installation "
                                 f"(available: {', '.join(READERS.names())})")
    weights = READERS.get(reader)(source)
    channels = weights.config.get("image_channels", 3)
    if channels != 3:
        raise UnknownFormatError(f"{source}: a {channels}-channel generator; mgan imports RGB generators only "
                                 "(its tasks, metrics and reports are RGB; a grey generator would half-work)")
    model = build(weights, source=str(source))
    state = {k: v.detach().to("cpu", torch.float32).contiguous().clone() for k, v in model.state_dict().items()}
    spec = {"architecture": weights.architecture, "config": weights.config}
    info: dict[str, Any] = {
        "name": name,
        "kind": "generator",
        **spec,
        "resolution": int(model.resolution),
        "latent_size": int(model.latent_size),
        "layers": len(model.layers()),
        "parameters": parameter_count(model),
        "source_file": source.name,
        "source_sha256": sha256_of(source) if source.is_file() else None,
        "source_format": reader,
        "imported": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "mgan_version": __version__,
        "weights_file": WEIGHTS_FILE,
    }
    root = imported_root(store)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
    try:
        save_file(state, str(staging / WEIGHTS_FILE), metadata={HEADER_KEY: json.dumps(spec)})
        info["weights_sha256"] = sha256_of(staging / WEIGHTS_FILE)
        (staging / INFO_FILE).write_text(json.dumps(info, indent=1) + "\n")
        _move_into_place(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return ImportedGenerator(name, target, info)


def _move_into_place(staging: Path, target: Path) -> None:
    """Rename ``staging`` to ``target``; an existing ``target`` is moved aside first, then deleted."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    try:
        os.replace(staging, target)
    except OSError:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def imported_rows(store: WeightStore | None = None) -> Iterator[dict[str, Any]]:
    """One ``mgan weights list --json`` record per imported generator."""
    for found in list_imported(store):
        info = found.info
        yield {
            "name": found.name, "kind": "generator", "architecture": info.get("architecture"),
            "resolution": info.get("resolution"), "latent_size": info.get("latent_size"),
            "parameters": info.get("parameters"), "available": found.verified(), "location": IMPORTED_DIR,
            "file": str(found.weights_file), "sha256": info.get("weights_sha256"),
            "source_format": info.get("source_format"), "source_file": info.get("source_file"),
        }


def generator_identity(name: str, store: WeightStore | None = None) -> tuple[str, dict[str, Any], str | None]:
    """``(architecture, config, sha256)`` of a registry generator or an imported one.

    The sha256 is the registry's pin, or — for entries verified by structure (no published checksum) and
    for imported generators — the checksum of the file actually present (``None`` if there is none).
    """
    store = store or default_store()
    if name not in store.entries:
        imported = find_imported(name, store)
        if imported is not None:
            return imported.info["architecture"], imported.info["config"], imported.info.get("weights_sha256")
    entry = store.entry(name)
    sha = entry.sha256
    if sha is None:
        found = store.status(name).path
        sha = sha256_of(found) if found is not None else None
    return entry.architecture or "", dict(entry.config), sha
