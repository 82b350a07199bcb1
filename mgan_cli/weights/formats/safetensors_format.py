"""mgan's own generator format (reader ``mgan-safetensors``): what ``mgan weights import`` writes.

A folder holding

* ``weights.safetensors``: the canonical (genforce-layout) state dict, float32, contiguous tensors; its
  header metadata also carries ``{"mgan": "{\\"architecture\\": …, \\"config\\": {…}}"}`` so the file alone is
  enough to rebuild the generator;
* ``mgan.json``: architecture, config, resolution, latent size, where it came from (source file name, sha256
  and format), parameter count, import date, and ``weights_sha256``, the checksum of ``weights.safetensors``.

safetensors is a plain header + raw tensor bytes: reading it runs no code. When ``mgan.json`` gives
``weights_sha256``, the file is checked against it before use (:class:`ChecksumError` if it differs).
The reader accepts the folder, the ``.safetensors`` file inside it, or a lone ``.safetensors`` file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from mgan_cli.errors import ChecksumError, UnknownFormatError
from mgan_cli.weights.formats.base import READERS, GeneratorWeights, expected_shapes, state_dict_fit
from mgan_cli.weights.store import sha256_of

WEIGHTS_FILE = "weights.safetensors"
INFO_FILE = "mgan.json"
#: key of the safetensors header metadata that holds ``{"architecture", "config"}`` as JSON
HEADER_KEY = "mgan"
#: an mgan.json is a few hundred bytes; a larger one is not one
MAX_INFO_BYTES = 1 << 20


def locate(path: Path) -> tuple[Path, Path | None]:
    """``(weights file, mgan.json or None)`` for a folder or a ``.safetensors`` path."""
    path = Path(path)
    if path.is_dir():
        weights = path / WEIGHTS_FILE
        if not weights.is_file():
            raise UnknownFormatError(f"{path}: no {WEIGHTS_FILE} in this folder (not an imported generator)")
        info = path / INFO_FILE
        return weights, info if info.is_file() else None
    if not path.is_file():
        raise UnknownFormatError(f"{path}: no such file or folder")
    info = path.with_name(INFO_FILE)
    return path, info if info.is_file() and path.name == WEIGHTS_FILE else None


def read_info(info_file: Path) -> dict[str, Any]:
    """The ``mgan.json`` record (a JSON object)."""
    try:
        if info_file.stat().st_size > MAX_INFO_BYTES:
            raise UnknownFormatError(f"{info_file}: {info_file.stat().st_size} bytes is too large for an "
                                     f"{INFO_FILE} (at most {MAX_INFO_BYTES})")
        info = json.loads(info_file.read_text())
    except (OSError, ValueError, RecursionError) as exc:
        raise UnknownFormatError(f"{info_file}: unreadable ({exc})") from exc
    if not isinstance(info, dict):
        raise UnknownFormatError(f"{info_file}: expected a JSON object")
    return info


def _header(weights_file: Path) -> dict[str, Any]:
    try:
        with safe_open(str(weights_file), framework="pt") as handle:
            meta = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise UnknownFormatError(f"{weights_file}: not a safetensors file ({exc})") from exc
    try:
        return json.loads(meta[HEADER_KEY]) if HEADER_KEY in meta else {}
    except (ValueError, RecursionError) as exc:
        raise UnknownFormatError(f"{weights_file}: bad '{HEADER_KEY}' header metadata ({exc})") from exc


class _Shape:
    def __init__(self, shape: list[int]) -> None:
        self.shape = tuple(shape)


def _header_shapes(weights_file: Path) -> dict[str, _Shape]:
    """``{key: object with .shape}`` from the safetensors header alone (no tensor data read)."""
    try:
        with safe_open(str(weights_file), framework="pt") as handle:
            return {key: _Shape(handle.get_slice(key).get_shape()) for key in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as exc:
        raise UnknownFormatError(f"{weights_file}: not a safetensors file ({exc})") from exc


@READERS.register("mgan-safetensors")
def read_mgan_safetensors(path: Path) -> GeneratorWeights:
    """An imported generator folder (or its ``.safetensors``) → its architecture, config and state dict."""
    weights_file, info_file = locate(path)
    header = _header(weights_file)
    info = read_info(info_file) if info_file else {}
    spec = {**header, **{k: info[k] for k in ("architecture", "config") if k in info}}
    if "architecture" not in spec or not isinstance(spec.get("config"), dict):
        raise UnknownFormatError(f"{weights_file}: no architecture/config (neither in {INFO_FILE} nor in the "
                                 f"header metadata '{HEADER_KEY}'), so not an mgan generator file")
    expected_sha = info.get("weights_sha256")
    if expected_sha:
        actual = sha256_of(weights_file)
        if actual != expected_sha:
            raise ChecksumError(f"{weights_file} has sha256 {actual[:12]}…, but {info_file} records "
                                f"{str(expected_sha)[:12]}…: the file changed since it was imported; import it again")
    # the config is checked against its architecture's bounds (config_checks) before the meta build
    expected = expected_shapes(spec["architecture"], spec["config"], str(info_file or weights_file))
    fit = state_dict_fit(expected, _header_shapes(weights_file))  # before a byte of tensor data is read
    if not fit.fits:
        raise UnknownFormatError(f"{weights_file}: does not fit {spec['architecture']} {spec['config']} — "
                                 f"{fit.describe()}")
    state = load_file(str(weights_file), device="cpu")
    metadata = {"format": "mgan-safetensors", "path": str(weights_file),
                **{k: v for k, v in info.items() if k not in ("architecture", "config")}}
    return GeneratorWeights(str(spec["architecture"]), dict(spec["config"]), state, metadata)
