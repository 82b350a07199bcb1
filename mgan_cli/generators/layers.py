"""Building blocks shared by the generator families (one home for each).

* constants and plain ops: :data:`LRELU_SLOPE`, :data:`EPS`, :func:`pixel_norm` / :class:`PixelNorm`,
  :func:`upsample2x`, :func:`channels_at` (the ``min(base // res, max)`` channel rule),
  :data:`PROGRESSIVE_RESOLUTIONS`, :class:`CodeToFeatureMap` (``[M, z] -> [M, z, 1, 1]``);
* equalised-learning-rate blocks of PGGAN and StyleGAN (v1): :func:`wscale`, :class:`ScaledBias`,
  :class:`DenseBlock`, :func:`fused_upconv_kernel`. They keep genforce's parameter names (``fc.weight`` +
  ``wscale.bias``, ``conv.weight``), so a genforce state dict loads into them unchanged. Weights are stored
  un-scaled; the runtime constant is ``gain / sqrt(fan_in) * lr_multiplier`` and the bias is multiplied by
  ``lr_multiplier``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LRELU_SLOPE = 0.2
EPS = 1e-8
#: resolutions the progressive-growing families (PGGAN, StyleGAN) support
PROGRESSIVE_RESOLUTIONS = (8, 16, 32, 64, 128, 256, 512, 1024)


def pixel_norm(x: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Normalise every position's feature vector: ``x / sqrt(mean_c(x²) + eps)`` (dim 1 = channels)."""
    return x / torch.sqrt(torch.mean(x**2, dim=1, keepdim=True) + eps)


class PixelNorm(nn.Module):
    """:func:`pixel_norm` as a module (``[M, C, ...] -> same``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pixel_norm(x)


class CodeToFeatureMap(nn.Module):
    """``[M, z] -> [M, z, 1, 1]``; also accepts codes already shaped ``[M, z, 1, 1]``."""

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return code.reshape(code.shape[0], -1, 1, 1)


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour ×2 upsampling of ``[M, C, H, W]``."""
    return F.interpolate(x, scale_factor=2, mode="nearest")


def wscale(in_channels: int, kernel_size: int, gain: float = math.sqrt(2.0), lr_multiplier: float = 1.0) -> float:
    """The equalised-lr constant ``gain / sqrt(in · k²) · lr_multiplier`` (computed in float64 like numpy)."""
    return gain / math.sqrt(in_channels * kernel_size * kernel_size) * lr_multiplier


class ScaledBias(nn.Module):
    """genforce's ``WScaleLayer``: ``x · scale + bias · lr_multiplier`` (bias over dim 1; 2-D or 4-D input)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, gain: float = math.sqrt(2.0),
                 lr_multiplier: float = 1.0) -> None:
        super().__init__()
        self.scale = wscale(in_channels, kernel_size, gain, lr_multiplier)
        self.lr_multiplier = lr_multiplier
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1, 1, 1) if x.dim() == 4 else (1, -1)
        if self.lr_multiplier == 1.0:
            return x * self.scale + self.bias.view(shape)
        return x * self.scale + self.bias.view(shape) * self.lr_multiplier


class DenseBlock(nn.Module):
    """Equalised dense layer ``[M, in] -> [M, out]``: ``fc`` (no bias), ``wscale`` (scale + bias), LeakyReLU(0.2)
    unless ``linear``. Keys ``fc.weight`` [out, in] and ``wscale.bias`` [out]."""

    def __init__(self, in_features: int, out_features: int, gain: float = math.sqrt(2.0),
                 lr_multiplier: float = 0.01, linear: bool = False) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, out_features, bias=False)
        self.wscale = ScaledBias(in_features, out_features, 1, gain, lr_multiplier)
        self.linear = linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.wscale(self.fc(x))
        return x if self.linear else F.leaky_relu(x, LRELU_SLOPE)


def fused_upconv_kernel(weight_tf: torch.Tensor, scale: float) -> torch.Tensor:
    """The transposed-conv kernel of a fused ×2 up-conv from a TF-layout weight ``[3, 3, in, out]``.

    The scaled kernel is zero-padded to 5×5 and its four overlapping 4×4 windows are summed; the result
    ``[in, out, 4, 4]`` is used by ``conv_transpose2d(stride=2, padding=1)``. That equals nearest ×2
    upsampling followed by a true convolution with the stored kernel (correlation with it flipped).
    """
    kernel = F.pad(weight_tf * scale, (0, 0, 0, 0, 1, 1, 1, 1))
    kernel = kernel[1:, 1:] + kernel[:-1, 1:] + kernel[1:, :-1] + kernel[:-1, :-1]
    return kernel.permute(2, 3, 0, 1)


def channels_at(resolution: int, fmaps_base: int, fmaps_max: int) -> int:
    """Feature maps at a resolution: ``min(fmaps_base // resolution, fmaps_max)``."""
    return min(fmaps_base // resolution, fmaps_max)
