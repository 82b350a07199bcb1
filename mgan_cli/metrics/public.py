"""The metrics of the public Python API (``mgan_cli.metrics.psnr`` …), on images in [0, 1].

Images are ``[B, 3, H, W]`` float tensors with values in [0, 1] or uint8 tensors (0–255), the same range as
everything else in :mod:`mgan_cli.api`; each function returns a float64 ``[B]`` tensor on the images' device.
The range is checked here, once: a float image outside [0, 1] (an engine's [-1, 1] or a 0–255 float) is
refused with an :class:`~mgan_cli.errors.InputValueError` instead of giving a silently wrong score. Below this
layer the metrics compute on the 0–255 scale as their references do (:mod:`mgan_cli.metrics.fidelity`, …).
"""

from __future__ import annotations

import torch
from torch import Tensor

from mgan_cli.errors import InputValueError
from mgan_cli.metrics import fidelity, naturalness, perceptual


def _to_255(images: Tensor, what: str) -> Tensor:
    """Checked ``[B, 3, H, W]`` images in [0, 1] (or uint8) -> the same on the 0–255 scale."""
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] != 3:
        shape = list(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise InputValueError(f"{what}: expected [B, 3, H, W], got {shape}")
    if images.dtype == torch.uint8:
        return images
    if not images.is_floating_point():
        raise InputValueError(f"{what}: expected float values in [0, 1] or uint8, got dtype {images.dtype}")
    low, high = float(images.min()), float(images.max())
    if not (low >= 0 and high <= 1):  # also refuses NaN
        raise InputValueError(f"{what}: float values must lie in [0, 1], got [{low:g}, {high:g}] (from [-1, 1]: "
                              "x / 2 + 0.5; from 0–255: pass uint8)")
    return images.double() * 255


def _pair(images: Tensor, references: Tensor) -> tuple[Tensor, Tensor]:
    a, b = _to_255(images, "images"), _to_255(references, "references")
    if a.shape != b.shape:
        raise InputValueError(f"images {list(a.shape)} and references {list(b.shape)} must have the same shape")
    return a, b


def psnr(images: Tensor, references: Tensor, *, crop_border: int = 0, y_channel: bool = False) -> Tensor:
    """PSNR in dB per image (scikit-image's, data range 255 after mapping [0, 1] to 0–255); ``inf`` if equal."""
    return fidelity.psnr(*_pair(images, references), crop_border=crop_border, y_channel=y_channel)


def ssim(images: Tensor, references: Tensor, *, crop_border: int = 0, y_channel: bool = False) -> Tensor:
    """SSIM per image (11×11 Gaussian window, σ = 1.5, as scikit-image)."""
    return fidelity.ssim(*_pair(images, references), crop_border=crop_border, y_channel=y_channel)


def lpips(images: Tensor, references: Tensor, *, net: str = "alex") -> Tensor:
    """LPIPS v0.1 distance per image (``alex`` or ``vgg`` backbone; lower is more similar)."""
    return perceptual.lpips_distance(*_pair(images, references), net=net).double()


def niqe(images: Tensor, *, crop_border: int = 0) -> Tensor:
    """NIQE per image (MATLAB's release; NaN where the image is smaller than two 96×96 blocks)."""
    return naturalness.niqe(_to_255(images, "images"), crop_border=crop_border)
