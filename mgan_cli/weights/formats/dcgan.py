"""DCGAN weight files: the PyTorch DCGAN tutorial's checkpoint and a plain 32×32 CelebA DCGAN state dict.

Both are read with ``torch.load(weights_only=True)`` and renamed into :mod:`mgan_cli.generators.dcgan`'s
parameter names (``blocks.{b}.{0 conv | 1 batch norm}.*``); a key outside the known layout is an error.
"""

from __future__ import annotations

from pathlib import Path

import torch

from mgan_cli.errors import UnknownFormatError
from mgan_cli.weights.formats.base import READERS, GeneratorWeights
from mgan_cli.weights.formats.torch_files import load_torch_file


def _load_state(path: Path) -> dict[str, torch.Tensor]:
    return load_torch_file(path)


def _rename(state: dict[str, torch.Tensor], rename: dict[str, str], path: Path) -> dict[str, torch.Tensor]:
    """Rename module prefixes; a key whose prefix is not in ``rename`` is an error."""
    renamed = {}
    for key, value in state.items():
        prefix, _, leaf = key.rpartition(".")
        if prefix not in rename:
            raise UnknownFormatError(f"{path}: unexpected parameter {key!r}")
        renamed[f"{rename[prefix]}.{leaf}"] = value
    return renamed


def _latent_size(state: dict[str, torch.Tensor], path: Path) -> int:
    first = state.get("blocks.0.0.weight")
    if first is None:
        raise UnknownFormatError(f"{path}: no first transposed convolution in the file")
    return int(first.shape[0])


@READERS.register("dcgan-tutorial-tar")
def read_dcgan_tutorial(path: Path) -> GeneratorWeights:
    """``torch.save({'netG_state_dict': ...})`` of the tutorial's ``nn.Sequential`` called ``main``."""
    checkpoint = _load_state(path)
    state = checkpoint.get("netG_state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise UnknownFormatError(f"{path}: expected a dict with 'netG_state_dict'")
    # main.{0,1 | 3,4 | 6,7 | 9,10 | 12}: ConvT/BN pairs, ReLU at 2, 5, 8, 11, tanh at 13
    rename = {f"main.{3 * b}": f"blocks.{b}.0" for b in range(5)}
    rename.update({f"main.{3 * b + 1}": f"blocks.{b}.1" for b in range(4)})
    renamed = _rename(state, rename, path)
    return GeneratorWeights("dcgan64", {"latent_size": _latent_size(renamed, path)}, renamed)


@READERS.register("dcgan32-state-dict")
def read_dcgan32(path: Path) -> GeneratorWeights:
    """An ``OrderedDict`` with keys ``generator_deconv.{0..4}.{0,1}.*`` (conv, batch norm)."""
    state = _load_state(path)
    rename = {f"generator_deconv.{b}.{i}": f"blocks.{b}.{i}" for b in range(5) for i in range(2)}
    renamed = _rename(state, rename, path)
    return GeneratorWeights("dcgan32", {"latent_size": _latent_size(renamed, path)}, renamed)
