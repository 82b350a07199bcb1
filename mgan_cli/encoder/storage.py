"""Where encoders live and how they are read: ``<cache>/encoders/<generator sha256>/``.

The folder of a generator (named by the sha256 of its weight file, so an encoder can never be used with other
weights of the same name) holds

* ``encoder.safetensors``: the encoder's tensors; its header metadata ``mgan-encoder`` repeats the generator's
  sha256 and the architecture, so a file moved to another folder is still recognised as foreign;
* ``encoder.json``: generator name and sha256, architecture, training settings, steps and seconds trained,
  and ``weights_sha256``, the checksum of ``encoder.safetensors``;
* ``checkpoint.safetensors`` + ``checkpoint.json``: the resumable training state (:mod:`mgan_cli.encoder.training`).

Everything is read through safetensors (a header and raw bytes: reading runs no code) and size-limited JSON;
shapes are checked against the architecture from the header alone, before a byte of tensor data is read.
Files are written with :func:`mgan_cli.utils.atomic.write_atomic`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from mgan_cli.encoder.model import Encoder, EncoderArchitecture
from mgan_cli.errors import (
    ChecksumError,
    EncoderError,
    EncoderNotFoundError,
    ForeignEncoderError,
    UnknownFormatError,
)
from mgan_cli.utils.atomic import write_atomic
from mgan_cli.weights.formats.safetensors_format import read_info
from mgan_cli.weights.store import default_home, sha256_of

ENCODERS_DIR = "encoders"
WEIGHTS_FILE = "encoder.safetensors"
INFO_FILE = "encoder.json"
CHECKPOINT_FILE = "checkpoint.safetensors"
CHECKPOINT_INFO = "checkpoint.json"
#: key of the safetensors header metadata: ``{"generator_sha256", "architecture"}`` as JSON
HEADER_KEY = "mgan-encoder"

#: ``minutes()`` the default training budget on this machine, for the one-line refusals
MinutesEstimate = Callable[[], float]


def encoders_root(home: Path | None = None) -> Path:
    return (home or default_home()) / ENCODERS_DIR


def encoder_folder(generator_sha256: str, home: Path | None = None) -> Path:
    """The folder of the encoder for the generator whose weight file has ``generator_sha256``."""
    if not generator_sha256 or not all(c in "0123456789abcdef" for c in generator_sha256):
        raise EncoderError(f"not a sha256: {generator_sha256!r}")
    return encoders_root(home) / generator_sha256


def train_hint(name: str, minutes: float) -> str:
    return f"train one with `mgan encoder train {name}` (about {minutes:.0f} minutes on this machine)"


def header_record(weights_file: Path) -> tuple[dict[str, Any], dict[str, tuple[int, ...]]]:
    """The ``mgan-encoder`` header metadata and every tensor's shape, from the safetensors header alone."""
    try:
        with safe_open(str(weights_file), framework="pt") as handle:
            meta = handle.metadata() or {}
            shapes = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as exc:
        raise UnknownFormatError(f"{weights_file}: not a safetensors file ({exc})") from exc
    try:
        record = json.loads(meta[HEADER_KEY])
    except (KeyError, ValueError, RecursionError) as exc:
        raise UnknownFormatError(f"{weights_file}: no valid '{HEADER_KEY}' header metadata, so not an "
                                 f"mgan encoder ({exc.__class__.__name__})") from None
    if not isinstance(record, dict):
        raise UnknownFormatError(f"{weights_file}: '{HEADER_KEY}' header metadata is not a JSON object")
    return record, shapes


def write_tensors(path: Path, tensors: Mapping[str, torch.Tensor], record: Mapping[str, Any]) -> str:
    """Write ``tensors`` (plus ``record`` as header metadata) atomically; return the file's sha256."""
    data = safetensors_bytes({k: v.detach().float().contiguous().cpu() for k, v in tensors.items()},
                             metadata={HEADER_KEY: json.dumps(record)})
    write_atomic(path, data)
    return sha256_of(path)


def write_json(path: Path, record: Mapping[str, Any]) -> None:
    write_atomic(path, json.dumps(record, indent=2, sort_keys=True) + "\n")


def save_encoder(folder: Path, encoder: Encoder, generator_sha256: str, info: Mapping[str, Any]) -> Path:
    """Write ``encoder.safetensors`` then ``encoder.json`` (``info`` + identity + checksum) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    architecture = encoder.architecture.to_json()
    sha = write_tensors(folder / WEIGHTS_FILE, encoder.state_dict(),
                        {"generator_sha256": generator_sha256, "architecture": architecture})
    write_json(folder / INFO_FILE, {**info, "generator_sha256": generator_sha256, "architecture": architecture,
                                    "weights_sha256": sha})
    return folder / WEIGHTS_FILE


def read_tensors(path: Path, expected: Mapping[str, tuple[int, ...]], what: str) -> dict[str, torch.Tensor]:
    """The tensors of ``path`` after checking, from its header, that they are exactly ``expected`` (names and
    shapes): :class:`EncoderError` otherwise, before any tensor data is read."""
    _, shapes = header_record(path)
    if shapes != dict(expected):
        missing = sorted(set(expected) - set(shapes))
        extra = sorted(set(shapes) - set(expected))
        wrong = sorted(k for k in set(shapes) & set(expected) if shapes[k] != expected[k])
        raise EncoderError(f"{path}: does not fit {what} (missing {missing[:3]}, unexpected {extra[:3]}, "
                           f"other shapes {wrong[:3]})")
    return load_file(str(path), device="cpu")


@dataclass
class LoadedEncoder:
    """A verified encoder, in evaluation mode, with the record of how it was trained."""

    encoder: Encoder
    info: dict[str, Any]
    folder: Path

    @property
    def sha256(self) -> str:
        return str(self.info["weights_sha256"])

    @property
    def target(self) -> str:
        return self.encoder.architecture.target


def read_encoder(folder: Path, generator_name: str, generator_sha256: str, minutes: MinutesEstimate) -> LoadedEncoder:
    """The encoder in ``folder``, which must have been trained for ``generator_sha256``.

    Raises (each with a one-line message): :class:`EncoderNotFoundError` when there is none,
    :class:`ForeignEncoderError` when it belongs to another generator, :class:`ChecksumError` when the file
    changed since it was written, :class:`UnknownFormatError` / :class:`EncoderError` when it is not one.
    """
    weights_file, info_file = folder / WEIGHTS_FILE, folder / INFO_FILE
    if not weights_file.is_file() or not info_file.is_file():
        raise EncoderNotFoundError(f"no encoder for {generator_name}; {train_hint(generator_name, minutes())}")
    info = read_info(info_file)
    header, _ = header_record(weights_file)
    for source, record in ((info_file, info), (weights_file, header)):
        found = str(record.get("generator_sha256"))
        if found != generator_sha256:
            raise ForeignEncoderError(
                f"the encoder in {source} was trained for another generator (sha256 {found[:12]}…, not "
                f"{generator_name}'s {generator_sha256[:12]}…); {train_hint(generator_name, minutes())}")
    actual = sha256_of(weights_file)
    if actual != info.get("weights_sha256"):
        raise ChecksumError(f"{weights_file} has sha256 {actual[:12]}…, but {info_file} records "
                            f"{str(info.get('weights_sha256'))[:12]}…: the file changed since it was written; "
                            f"{train_hint(generator_name, minutes())}")
    architecture = EncoderArchitecture.from_json(header.get("architecture"), str(weights_file))
    if architecture.to_json() != info.get("architecture"):
        raise EncoderError(f"{info_file} and {weights_file} describe different encoders; "
                           f"{train_hint(generator_name, minutes())}")
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in Encoder(architecture).state_dict().items()}
    state = read_tensors(weights_file, expected, f"the encoder {architecture}")
    encoder = Encoder(architecture)
    encoder.load_state_dict(state, strict=True)
    return LoadedEncoder(encoder.eval().requires_grad_(False), info, folder)


def list_encoders(home: Path | None = None) -> list[dict[str, Any]]:
    """One record per trained encoder in the cache (its ``encoder.json``, plus ``folder`` and ``problem``:
    ``None``, or why it cannot be used), sorted by generator name."""
    root = encoders_root(home)
    rows = []
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        info_file = folder / INFO_FILE
        if not info_file.is_file():
            continue
        try:
            info = read_info(info_file)
            problem = None if (folder / WEIGHTS_FILE).is_file() and \
                sha256_of(folder / WEIGHTS_FILE) == info.get("weights_sha256") else "weights file changed or missing"
        except (UnknownFormatError, OSError) as exc:
            info, problem = {}, str(exc)
        if info.get("generator_sha256") not in (None, folder.name):
            problem = "in the folder of another generator"
        rows.append({**info, "folder": str(folder), "problem": problem})
    return sorted(rows, key=lambda row: (str(row.get("generator", "")), row["folder"]))
