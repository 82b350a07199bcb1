"""genforce ``*.pth`` generator files (mGANprior, InterFaceGAN, genforce model zoo).

A genforce ``.pth`` is ``torch.save(net.state_dict())`` — an ``OrderedDict`` of tensors with the module
names of genforce's ``*GeneratorNet`` (its converters drop only ``truncation.truncation``). It holds no
constructor arguments, so the architecture config is inferred from the keys and shapes, then checked
against every key and shape of the model it describes. Files are read with
``torch.load(weights_only=True)``: a pickle naming anything but tensors and containers is refused with
:class:`~mgan_cli.errors.UnsafePickleError`.

Registered readers: ``genforce-pggan`` (``pggan_*.pth``) and ``genforce-stylegan`` (``stylegan_*.pth``).
:func:`load_genforce_state` and :func:`check_keys` are shared with the StyleGAN2 reader.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from mgan_cli.errors import UnknownFormatError
from mgan_cli.weights.formats.base import READERS, GeneratorWeights, require_fit
from mgan_cli.weights.formats.torch_files import load_torch_file

_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default (zip) format
_PICKLE_PROTO = b"\x80"  # a pickle's PROTO opcode (torch's legacy format starts with one)


def load_genforce_state(path: Path) -> dict[str, torch.Tensor]:
    """The ``{name: tensor}`` dict in a genforce ``.pth`` (loaded as data, on the CPU).

    A file that is neither a torch zip archive nor a pickle is an :class:`UnknownFormatError`; a pickle
    that names anything beyond tensors and containers is refused with :class:`UnsafePickleError`.
    """
    state = load_torch_file(path)
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UnknownFormatError(f"{path}: expected a state dict (name -> tensor), got {type(state).__name__}")
    return dict(state)


def check_keys(state: Mapping[str, torch.Tensor], architecture: str, config: dict[str, Any], path: Path) -> None:
    """Raise :class:`UnknownFormatError` unless ``state`` has exactly the keys and shapes of the model."""
    require_fit(architecture, config, state, f"{path} (read as a genforce {architecture} file)")


def _indices(state: Mapping[str, torch.Tensor], pattern: str) -> list[int]:
    """Sorted distinct integers captured by ``pattern`` (one group) over the keys."""
    return sorted({int(m.group(1)) for k in state if (m := re.match(pattern, k))})


def _require(state: Mapping[str, torch.Tensor], key: str, path: Path, family: str) -> torch.Tensor:
    if key not in state:
        raise UnknownFormatError(f"{path}: no {key!r}, so not a genforce {family} generator")
    return state[key]


def _block_channels(state: Mapping[str, torch.Tensor], prefix: str, path: Path, family: str) -> dict[int, int]:
    """Output channels per block resolution, read from the second conv of each block (``{prefix}layer{2b+1}``)."""
    num_layers = len(_indices(state, re.escape(prefix) + r"layer(\d+)\."))
    blocks = num_layers // 2
    channels = {4 * 2**b: state[f"{prefix}layer{2 * b + 1}.conv.weight"].shape[0] for b in range(blocks)
                if f"{prefix}layer{2 * b + 1}.conv.weight" in state}
    if blocks < 2 or len(channels) != blocks:
        raise UnknownFormatError(f"{path}: genforce {family} layers are incomplete ({num_layers} layer modules)")
    return channels


def _fmaps(channels: dict[int, int], fmaps_max: int) -> tuple[int, int]:
    """``(fmaps_base, fmaps_max)`` with ``min(base // res, max) == channels[res]`` for every resolution."""
    below = [res for res in sorted(channels) if channels[res] < fmaps_max]
    base = channels[below[0]] * below[0] if below else fmaps_max * max(channels)
    return base, fmaps_max


def _check_lod(state: Mapping[str, torch.Tensor], key: str, path: Path) -> None:
    if key in state and float(state[key]) != 0.0:
        raise UnknownFormatError(f"{path}: {key} = {float(state[key])} is a progressive-growing snapshot; "
                                 f"only finished generators (lod 0) are supported")


@READERS.register("genforce-pggan")
def read_genforce_pggan(path: Path) -> GeneratorWeights:
    """A genforce ``PGGANGeneratorNet`` state dict → architecture ``pggan``.

    Inferred: ``resolution`` (4·2^(blocks-1) from the number of ``layer{i}``), ``z_dim`` (``layer0`` weight),
    ``image_channels``, ``fmaps_base``/``fmaps_max`` (channels per block), ``fused_scale`` (``layer2.weight``).
    """
    return pggan_weights(load_genforce_state(path), path, "genforce-pggan")


def pggan_weights(state: dict[str, torch.Tensor], path: Path, format_name: str) -> GeneratorWeights:
    """A state dict in mgan's (= genforce mGANprior's) PGGAN names → ``GeneratorWeights`` with its config inferred."""
    layer0 = _require(state, "layer0.conv.weight", path, "PGGAN")
    channels = _block_channels(state, "", path, "PGGAN")
    blocks = len(channels)
    base, fmaps_max = _fmaps(channels, max(channels.values()))
    config = {
        "resolution": 4 * 2 ** (blocks - 1),
        "z_dim": int(layer0.shape[1]),
        "image_channels": int(_require(state, "output0.conv.weight", path, "PGGAN").shape[0]),
        "fmaps_base": base,
        "fmaps_max": fmaps_max,
        "fused_scale": "layer2.weight" in state,
    }
    check_keys(state, "pggan", config, path)
    _check_lod(state, "lod", path)
    return GeneratorWeights("pggan", config, state, {"format": format_name, "path": str(path)})


def _stylegan_fused(state: Mapping[str, torch.Tensor], blocks: int) -> bool | str:
    """genforce's ``fused_scale`` option from which up-layers hold a TF-layout ``weight``."""
    fused = [state.get(f"synthesis.layer{2 * b}.weight") is not None for b in range(1, blocks)]
    auto = [4 * 2**b >= 128 for b in range(1, blocks)]
    if fused == auto:
        return "auto"
    if all(fused) or not any(fused):
        return all(fused)
    raise UnknownFormatError("fused up-convolutions at resolutions genforce cannot describe "
                             f"(fused per block: {fused})")


@READERS.register("genforce-stylegan")
def read_genforce_stylegan(path: Path, truncation_psi: float | None = 0.7,
                           truncation_layers: int | None = 8) -> GeneratorWeights:
    """A genforce ``StyleGANGeneratorNet`` state dict → architecture ``stylegan``.

    Inferred: ``resolution`` (from the number of synthesis layers), ``z_dim``/``w_dim``/``mapping_layers``
    (mapping weights), ``fmaps_max`` (mapping width), ``fmaps_base`` (channels per block),
    ``image_channels``, ``fused_scale`` (which up-layers store ``layer{2b}.weight``). The truncation is
    not in the file: it defaults to genforce's (psi 0.7 on the first 8 rows, applied to z codes).
    A stored ``truncation.truncation`` (a full ``state_dict()``) is dropped.
    """
    return stylegan_weights(load_genforce_state(path), path, "genforce-stylegan", truncation_psi, truncation_layers)


def stylegan_weights(state: dict[str, torch.Tensor], path: Path, format_name: str, truncation_psi: float | None,
                     truncation_layers: int | None) -> GeneratorWeights:
    """A state dict in mgan's (= genforce mGANprior's) StyleGAN names → ``GeneratorWeights``, config inferred."""
    state.pop("truncation.truncation", None)
    mapping = _indices(state, r"mapping\.dense(\d+)\.")
    const = _require(state, "synthesis.layer0.const", path, "StyleGAN")
    if not mapping or mapping != list(range(len(mapping))):
        raise UnknownFormatError(f"{path}: genforce StyleGAN mapping layers missing or not numbered 0..n-1")
    first = _require(state, "mapping.dense0.fc.weight", path, "StyleGAN")
    last = _require(state, f"mapping.dense{mapping[-1]}.fc.weight", path, "StyleGAN")
    channels = _block_channels(state, "synthesis.", path, "StyleGAN synthesis")
    blocks = len(channels)
    fmaps_max = int(first.shape[0]) if len(mapping) > 1 else int(const.shape[1])
    base, fmaps_max = _fmaps(channels, fmaps_max)
    try:
        fused = _stylegan_fused(state, blocks)
    except UnknownFormatError as exc:
        raise UnknownFormatError(f"{path}: {exc}") from None
    config: dict[str, Any] = {
        "resolution": 4 * 2 ** (blocks - 1),
        "z_dim": int(first.shape[1]),
        "w_dim": int(last.shape[0]),
        "image_channels": int(_require(state, "synthesis.output0.conv.weight", path, "StyleGAN").shape[0]),
        "fused_scale": fused,
        "truncation_psi": truncation_psi,
        "truncation_layers": truncation_layers,
        "mapping_layers": len(mapping),
        "fmaps_base": base,
        "fmaps_max": fmaps_max,
    }
    check_keys(state, "stylegan", config, path)
    _check_lod(state, "synthesis.lod", path)
    return GeneratorWeights("stylegan", config, state, {"format": format_name, "path": str(path)})


__all__: list[str] = ["check_keys", "load_genforce_state", "pggan_weights", "read_genforce_pggan",
                      "read_genforce_stylegan", "stylegan_weights"]
