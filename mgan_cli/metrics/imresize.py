"""MATLAB-compatible bicubic ``imresize`` (with MATLAB's antialiasing when shrinking), in torch.

MATLAB resizes each axis separately: output pixel ``k`` (1-based) sits at input coordinate
``u = k / s + (1 - 1 / s) / 2``; its weights are Keys' cubic (a = -0.5) evaluated at the distances to the
``ceil(width) + 2`` nearest input pixels, where the kernel is stretched by ``1 / s`` when shrinking with
antialiasing (``width = 4 / s``, weights ``s * cubic(s * d)``); each row of weights is normalised to sum
to one, and input positions outside the image are mirrored (half-sample symmetric). Here each axis
becomes one dense ``[out, in]`` matrix, so a resize is two matrix products.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mgan_cli.errors import ConfigurationError


def cubic(x: Tensor) -> Tensor:
    """Keys' bicubic kernel with a = -0.5 (MATLAB's ``cubic``), support [-2, 2]."""
    ax = x.abs()
    ax2 = ax * ax
    ax3 = ax2 * ax
    inner = (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
    outer = (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))
    return inner + outer


def _taps(in_length: int, out_start: int, out_stop: int, scale: float, antialiasing: bool,
          device: torch.device | None) -> tuple[Tensor, Tensor]:
    """For output positions ``out_start … out_stop - 1`` of MATLAB's bicubic resize along one axis: the input
    positions each reads (0-based, mirrored into [0, in_length) like MATLAB's [1:n, n:-1:1] lookup) and their
    normalised weights, both ``[out_stop - out_start, taps]``."""
    kernel_width = 4.0
    stretch = scale < 1 and antialiasing
    if stretch:
        kernel_width /= scale
    x = torch.arange(out_start + 1, out_stop + 1, dtype=torch.float64, device=device)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = torch.floor(u - kernel_width / 2)
    taps = math.ceil(kernel_width) + 2
    indices = left[:, None] + torch.arange(taps, dtype=torch.float64, device=device)[None, :]
    distance = u[:, None] - indices
    weights = scale * cubic(distance * scale) if stretch else cubic(distance)
    weights = weights / weights.sum(dim=1, keepdim=True)
    period = 2 * in_length
    folded = torch.remainder(indices.long() - 1, period)
    return torch.where(folded < in_length, folded, period - 1 - folded), weights


def resize_matrix(
    in_length: int,
    out_length: int,
    scale: float,
    *,
    antialiasing: bool = True,
    dtype: torch.dtype = torch.float64,
    device: torch.device | None = None,
) -> Tensor:
    """The ``[out_length, in_length]`` matrix of MATLAB's bicubic resize along one axis."""
    folded, weights = _taps(in_length, 0, out_length, scale, antialiasing, device)
    matrix = torch.zeros(out_length, in_length, dtype=torch.float64, device=device)
    matrix.scatter_add_(1, folded, weights)
    return matrix.to(dtype)


def resize_window(
    in_length: int,
    out_start: int,
    out_stop: int,
    scale: float,
    *,
    antialiasing: bool = True,
    dtype: torch.dtype = torch.float64,
    device: torch.device | None = None,
) -> tuple[Tensor, int]:
    """Rows ``out_start … out_stop - 1`` of :func:`resize_matrix` (``in_length`` → ``ceil(in_length · scale)``),
    restricted to the input positions they read: ``(matrix [out_stop - out_start, span], first input)``.
    The weights are those :func:`resize_matrix` uses, so a resize done window by window (bounded memory) gives
    the whole resize's values."""
    folded, weights = _taps(in_length, out_start, out_stop, scale, antialiasing, device)
    first = int(folded.min())
    span = int(folded.max()) - first + 1
    matrix = torch.zeros(out_stop - out_start, span, dtype=torch.float64, device=device)
    matrix.scatter_add_(1, folded - first, weights)
    return matrix.to(dtype), first


def imresize(image: Tensor, scale: float, *, antialiasing: bool = True) -> Tensor:
    """Resize the last two axes of ``image`` (``[..., H, W]``, any float dtype) like MATLAB's ``imresize``.

    Bicubic, the same ``scale`` on both axes, output ``ceil(H * scale) × ceil(W * scale)``; values are
    neither clipped nor rounded (MATLAB rounds only uint8 images). Computed in ``image``'s dtype.
    """
    if not image.dtype.is_floating_point:
        raise ConfigurationError(f"imresize needs a floating-point tensor; got {image.dtype}")
    if not scale > 0:
        raise ConfigurationError(f"imresize scale must be positive; got {scale!r}")
    height, width = image.shape[-2:]
    out_h, out_w = math.ceil(height * scale), math.ceil(width * scale)
    rows = resize_matrix(height, out_h, scale, antialiasing=antialiasing, dtype=image.dtype, device=image.device)
    cols = resize_matrix(width, out_w, scale, antialiasing=antialiasing, dtype=image.dtype, device=image.device)
    return rows @ image @ cols.transpose(0, 1)
