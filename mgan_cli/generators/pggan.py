"""PGGAN generator (Karras et al., ICLR 2018), numerically as genforce's ``PGGANGeneratorNet``.

Structure (state-dict keys are genforce's): block ``b`` works at resolution ``4·2^b`` with two conv
units ``layer{2b}``, ``layer{2b+1}`` and a toRGB ``output{b}``. Every unit pixel-normalises its *input*,
(first unit of blocks ``b ≥ 1``: nearest ×2 upsample), convolves (no bias), multiplies by
``sqrt(2)/sqrt(fan_in)``, adds its bias and applies LeakyReLU(0.2). ``layer0`` reads z as ``[M, z, 1, 1]``
with a 4×4 kernel and padding 3 (a dense layer to 4×4). Only the last toRGB (gain 1, linear) is used;
the image is not clamped (nominal range [-1, 1]). ``lod`` is kept as a buffer for the file format; only
``lod = 0`` (a finished generator) is supported.

Layers (mGANprior's ``composing_layer`` convention): layer ``k`` is the output of genforce ``layer{k-1}``
(1 → ``4x4/dense``, 2 → ``4x4/conv``, 3 → ``8x8/conv0_up``, 4 → ``8x8/conv1``, …), un-normalised.
``split(k)`` puts ``layer0 … layer{k-1}`` below; the upper part starts with ``layer{k}``, whose pixel-norm
normalises the (possibly composed) feature — exactly mGANprior's ``PGGAN_multi_z``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mgan_cli.errors import ConfigurationError
from mgan_cli.generators.base import Generator, LayerInfo, SequentialUpper
from mgan_cli.generators.layers import (
    LRELU_SLOPE,
    PROGRESSIVE_RESOLUTIONS,
    CodeToFeatureMap,
    ScaledBias,
    channels_at,
    fused_upconv_kernel,
    pixel_norm,
    upsample2x,
    wscale,
)
from mgan_cli.generators.registry import ARCHITECTURES


class ConvUnit(nn.Module):
    """pixel-norm → [upsample] → conv → ×scale + bias → [LeakyReLU]; ``[M, in, H, W] -> [M, out, H', W']``.

    Keys: ``conv.weight`` [out, in, k, k] (or ``weight`` [k, k, in, out], TF layout, when ``fused``) and
    ``wscale.bias`` [out].
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, padding: int = 1,
                 upsample: bool = False, fused: bool = False, gain: float = math.sqrt(2.0),
                 linear: bool = False) -> None:
        super().__init__()
        self.upsample = upsample and not fused
        self.fused = upsample and fused
        self.padding = padding
        if self.fused:
            self.weight = nn.Parameter(torch.randn(kernel_size, kernel_size, in_channels, out_channels))
            self.scale = wscale(in_channels, kernel_size, gain)
        else:
            self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=False)
        self.wscale = ScaledBias(in_channels, out_channels, kernel_size, gain)
        self.linear = linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pixel_norm(x)
        if self.upsample:
            x = upsample2x(x)
        if self.fused:
            # genforce scales the kernel, then divides the result by the scale before its wscale step
            x = F.conv_transpose2d(x, fused_upconv_kernel(self.weight, self.scale), stride=2, padding=1)
            x = x / self.scale
        else:
            x = self.conv(x)
        x = self.wscale(x)
        return x if self.linear else F.leaky_relu(x, LRELU_SLOPE)


@ARCHITECTURES.register("pggan")
class PGGAN(Generator):
    """genforce ``PGGANGeneratorNet(resolution, z_space_dim=z_dim, image_channels, fused_scale, fmaps_base,
    fmaps_max)``: ``[M, z_dim]`` → ``[M, image_channels, resolution, resolution]`` (~[-1, 1]).
    Defaults = CelebA-HQ 1024 (LSUN models: ``resolution=256``)."""

    latent_spaces = ("z",)

    def __init__(self, resolution: int = 1024, z_dim: int = 512, image_channels: int = 3, fmaps_base: int = 16384,
                 fmaps_max: int = 512, fused_scale: bool = False) -> None:
        super().__init__()
        if resolution not in PROGRESSIVE_RESOLUTIONS:
            raise ConfigurationError(f"PGGAN resolution {resolution} not supported; "
                                     f"use one of {PROGRESSIVE_RESOLUTIONS}")
        self.resolution = resolution
        self.latent_size = z_dim
        self.num_blocks = int(math.log2(resolution)) - 1
        self.register_buffer("lod", torch.zeros(()))
        self._names: list[str] = []
        self._shapes: list[tuple[int, int, int]] = []
        for b in range(self.num_blocks):
            res = 4 * 2**b
            nf = channels_at(res, fmaps_base, fmaps_max)
            if b == 0:
                first = ConvUnit(z_dim, nf, kernel_size=4, padding=3)
                self._names += ["4x4/dense", "4x4/conv"]
            else:
                first = ConvUnit(channels_at(res // 2, fmaps_base, fmaps_max), nf, upsample=True, fused=fused_scale)
                self._names += [f"{res}x{res}/conv0_up", f"{res}x{res}/conv1"]
            self.add_module(f"layer{2 * b}", first)
            self.add_module(f"layer{2 * b + 1}", ConvUnit(nf, nf))
            self.add_module(f"output{b}", ConvUnit(nf, image_channels, 1, 0, gain=1.0, linear=True))
            self._shapes += [(nf, res, res)] * 2
        self.to_feature_map = CodeToFeatureMap()

    def units(self) -> list[nn.Module]:
        """The conv units ``layer0 … layer{2n-1}`` (unit ``k-1`` outputs layer ``k``)."""
        return [getattr(self, f"layer{i}") for i in range(2 * self.num_blocks)]

    def to_rgb(self) -> nn.Module:
        """The final toRGB unit (the intermediate ones are in the file but unused)."""
        return getattr(self, f"output{self.num_blocks - 1}")

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo(k, name, shape) for k, (name, shape) in enumerate(zip(self._names, self._shapes,
                                                                                 strict=True), start=1)]

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        x = self.to_feature_map(code)
        for unit in self.units():
            x = unit(x)
        return self.to_rgb()(x)

    def split(self, layer: int, space: str = "z") -> tuple[nn.Module, nn.Module]:
        self._check_space(space)
        shape = self.layer(layer).shape
        units = self.units()
        lower = nn.Sequential(self.to_feature_map, *units[:layer])
        upper = SequentialUpper(nn.Sequential(*units[layer:], self.to_rgb()), shape)
        return lower, upper

