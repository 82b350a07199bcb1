"""StyleGAN generator (Karras et al., CVPR 2019), numerically as genforce's ``StyleGANGeneratorNet``.

State-dict keys are genforce's (``mapping.dense{i}.*``, ``truncation.w_avg``, ``synthesis.lod``,
``synthesis.layer{k}.*``, ``synthesis.output{b}.*``); ``truncation.truncation`` is not stored (genforce's
converter deletes it) but rebuilt from ``truncation_psi`` / ``truncation_layers``.

* **Mapping**: pixel-norm z, then ``mapping_layers`` equalised dense layers (lr ×0.01, LeakyReLU 0.2);
  the hidden width is ``fmaps_max`` (as in genforce). ``[M, z_dim] -> [M, w_dim]``.
* **Truncation** (explicit in the config): rows ``i < truncation_layers`` of w+ become
  ``w_avg + (w - w_avg) · truncation_psi``; ``truncation_psi=None`` (or ``truncation_layers`` 0/None)
  disables it. The genforce constructor and wrapper default to psi 0.7 on the first 8 rows, and so do
  the defaults here. Truncation is applied to codes in the **z** space only (``G(z)`` = genforce
  ``net(z)``); codes in **w** / **w+** go straight to synthesis, as in mGANprior's StyleGAN-w / -w+.
* **Synthesis**: ``L = 2·(log2(resolution) - 1)`` layers (18 at 1024); genforce ``layer{k}`` reads w+
  row ``k``. ``layer0`` is the learned constant; ``layer{2b}`` (b ≥ 1) up-samples (nearest + conv, or the
  fused transposed conv whose TF-layout weight ``[3, 3, in, out]`` is stored at ``layer{2b}.weight``),
  then blurs; each layer ends with noise (the stored buffers, i.e. ``randomize_noise=False``), bias,
  LeakyReLU(0.2), instance norm and style modulation ``x · (s + 1) + b``. The last toRGB (1×1, no w)
  gives the image, not clamped (nominal [-1, 1]). Only ``lod = 0`` is supported.

Latent spaces and code shapes: ``"z"`` ``(z_dim,)``, ``"w"`` ``(w_dim,)`` (broadcast to every row),
``"w+"`` ``(L, w_dim)``.

**Layers and multi-code composition.** Layer ``k`` (1..L) is the output of genforce ``synthesis.layer{k-1}``
(names ``4x4/const``, ``4x4/conv``, ``8x8/conv0_up``, ``8x8/conv1``, …). ``split(k, space)`` gives:

* ``lower(code)``: the code's own w+ (mapping and truncation first for z), then synthesis layers
  ``0 … k-1`` using rows ``0 … k-1`` of that w+ → features ``[M, C, H, W]``;
* ``upper(features, upper_latent)``: layers ``k … L-1`` then toRGB, layer ``k+i`` modulated by
  ``upper_latent[:, i]``. The upper latent is one shared per-image w+ tail of shape
  ``(L - k, w_dim)`` — only the rows the upper part reads (``upper_latent_shape``).
  ``upper(lower(code), code_wplus[:, k:]) == G(code)`` bit for bit.

``initial_upper_latent`` is ``w_avg`` broadcast to every row (the centre of W, the natural start for an
optimised style when the codes below differ). Alternatives we did not choose: averaging the codes'
own style rows above ``k`` (ties the upper styles to the codes, so they cannot be optimised separately),
or the mean of the codes' w (the same idea, tied to the codes); a full ``(L, w_dim)`` latent would carry
``k`` rows that nothing reads.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mgan_cli.errors import ConfigurationError
from mgan_cli.generators.base import LayerInfo, check_upper_inputs
from mgan_cli.generators.layers import (
    EPS,
    LRELU_SLOPE,
    PROGRESSIVE_RESOLUTIONS,
    DenseBlock,
    channels_at,
    fused_upconv_kernel,
    pixel_norm,
    upsample2x,
    wscale,
)
from mgan_cli.generators.registry import ARCHITECTURES
from mgan_cli.generators.style_base import StyleFamilyGenerator, Truncation

AUTO_FUSED_MIN_RES = 128  # fused_scale="auto": transposed-conv up-sampling from this resolution on


class Mapping(nn.Module):
    """``[M, z_dim] -> [M, w_dim]``: pixel-norm, then ``dense0 … dense{n-1}``."""

    def __init__(self, z_dim: int, hidden: int, w_dim: int, num_layers: int) -> None:
        super().__init__()
        self.num_layers = num_layers
        for i in range(num_layers):
            self.add_module(f"dense{i}", DenseBlock(z_dim if i == 0 else hidden,
                                                    w_dim if i == num_layers - 1 else hidden))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = pixel_norm(z)
        for i in range(self.num_layers):
            x = getattr(self, f"dense{i}")(x)
        return x


class StyleMod(nn.Module):
    """``x · (s[:C] + 1) + s[C:]`` with ``s = dense(w)`` (gain 1, lr 1, linear); keys ``dense.fc.weight`` [2C, w]."""

    def __init__(self, channels: int, w_dim: int) -> None:
        super().__init__()
        self.channels = channels
        self.dense = DenseBlock(w_dim, 2 * channels, gain=1.0, lr_multiplier=1.0, linear=True)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        style = self.dense(w).view(-1, 2, self.channels, 1, 1)
        return x * (style[:, 0] + 1) + style[:, 1]


class NoiseInput(nn.Module):
    """Adds the stored noise buffer ``noise`` [1, 1, R, R] times the per-channel ``weight`` [C]."""

    def __init__(self, resolution: int, channels: int) -> None:
        super().__init__()
        self.register_buffer("noise", torch.randn(1, 1, resolution, resolution))
        self.weight = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.noise * self.weight.view(1, -1, 1, 1)


class Epilogue(nn.Module):
    """noise → bias → LeakyReLU(0.2) → instance norm (eps 1e-8, no affine) → style modulation."""

    def __init__(self, resolution: int, channels: int, w_dim: int) -> None:
        super().__init__()
        self.apply_noise = NoiseInput(resolution, channels)
        self.bias = nn.Parameter(torch.zeros(channels))
        self.style_mod = StyleMod(channels, w_dim)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        x = self.apply_noise(x)
        x = x + self.bias.view(1, -1, 1, 1)
        x = F.leaky_relu(x, LRELU_SLOPE)
        x = x - torch.mean(x, dim=[2, 3], keepdim=True)
        x = x / torch.sqrt(torch.mean(x**2, dim=[2, 3], keepdim=True) + EPS)
        return self.style_mod(x, w)


class ConstLayer(nn.Module):
    """``layer0``: the learned ``const`` [1, C, 4, 4] repeated over the batch, then the epilogue."""

    def __init__(self, channels: int, w_dim: int) -> None:
        super().__init__()
        self.const = nn.Parameter(torch.ones(1, channels, 4, 4))
        self.epilogue = Epilogue(4, channels, w_dim)

    def forward(self, x: torch.Tensor | None, w: torch.Tensor) -> torch.Tensor:
        return self.epilogue(self.const.repeat(w.shape[0], 1, 1, 1), w)


class ConvLayer(nn.Module):
    """3×3 conv × sqrt(2)/sqrt(9·in), then the epilogue; with ``upsample``: nearest ×2 before the conv
    (or the fused transposed conv, TF-layout ``weight`` [3, 3, in, out]) and the [1,2,1]² blur after."""

    def __init__(self, resolution: int, in_channels: int, out_channels: int, w_dim: int, upsample: bool = False,
                 fused: bool = False) -> None:
        super().__init__()
        self.upsample = upsample
        self.fused = upsample and fused
        if self.fused:
            self.weight = nn.Parameter(torch.randn(3, 3, in_channels, out_channels))
        else:
            self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.scale = wscale(in_channels, 3)
        if upsample:
            self.blur = Blur(out_channels)
        self.epilogue = Epilogue(resolution, out_channels, w_dim)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if self.fused:
            x = F.conv_transpose2d(x, fused_upconv_kernel(self.weight, self.scale), stride=2, padding=1)
        else:
            if self.upsample:
                x = upsample2x(x)
            x = self.conv(x) * self.scale
        if self.upsample:
            x = self.blur(x)
        return self.epilogue(x, w)


class Blur(nn.Module):
    """Depthwise 3×3 blur, kernel [1,2,1]⊗[1,2,1]/16 (buffer ``kernel`` [C, 1, 3, 3]), zero padding 1."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        k = torch.tensor([1.0, 2.0, 1.0])
        k = torch.outer(k, k)
        self.register_buffer("kernel", (k / k.sum()).expand(channels, 1, 3, 3).clone())
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.kernel, padding=1, groups=self.channels)


class ToRGB(nn.Module):
    """1×1 conv × 1/sqrt(C) + ``bias``; no w, no activation."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.scale = 1 / math.sqrt(in_channels)
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * self.scale + self.bias.view(1, -1, 1, 1)


class Synthesis(nn.Module):
    """``layer0 … layer{L-1}``, ``output0 … output{n-1}`` (only the last toRGB is used) and ``lod``."""

    def __init__(self, resolution: int, w_dim: int, image_channels: int, fused_scale: bool | str,
                 fmaps_base: int, fmaps_max: int) -> None:
        super().__init__()
        self.num_blocks = int(math.log2(resolution)) - 1
        self.num_layers = 2 * self.num_blocks
        self.register_buffer("lod", torch.zeros(()))
        self.names: list[str] = []
        self.shapes: list[tuple[int, int, int]] = []
        for b in range(self.num_blocks):
            res = 4 * 2**b
            nf = channels_at(res, fmaps_base, fmaps_max)
            if b == 0:
                self.add_module("layer0", ConstLayer(nf, w_dim))
                self.names += ["4x4/const", "4x4/conv"]
            else:
                fused = res >= AUTO_FUSED_MIN_RES if fused_scale == "auto" else bool(fused_scale)
                prev = channels_at(res // 2, fmaps_base, fmaps_max)
                self.add_module(f"layer{2 * b}", ConvLayer(res, prev, nf, w_dim, upsample=True, fused=fused))
                self.names += [f"{res}x{res}/conv0_up", f"{res}x{res}/conv1"]
            self.add_module(f"layer{2 * b + 1}", ConvLayer(res, nf, nf, w_dim))
            self.add_module(f"output{b}", ToRGB(nf, image_channels))
            self.shapes += [(nf, res, res)] * 2

    def run(self, x: torch.Tensor | None, wp: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Layers ``start … stop-1``; layer ``start + i`` reads ``wp[:, i]``. ``x`` is ignored when ``start == 0``."""
        for i in range(start, stop):
            x = getattr(self, f"layer{i}")(x, wp[:, i - start])
        assert x is not None
        return x

    def to_rgb(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self, f"output{self.num_blocks - 1}")(x)

    def forward(self, wp: torch.Tensor) -> torch.Tensor:
        """``[M, L, w_dim] -> [M, C, R, R]`` image."""
        return self.to_rgb(self.run(None, wp, 0, self.num_layers))


@ARCHITECTURES.register("stylegan")
class StyleGAN(StyleFamilyGenerator):
    """genforce ``StyleGANGeneratorNet`` (``z_space_dim=z_dim``, ``w_space_dim=w_dim``,
    ``num_mapping_layers=mapping_layers``, ``randomize_noise=False``): codes in z ``[M, z_dim]``, w ``[M, w_dim]``
    or w+ ``[M, L, w_dim]`` → ``[M, 3, R, R]``. Defaults = FFHQ 1024 with the genforce truncation (psi 0.7 on
    the first 8 rows, z space only); ``truncation_psi=None`` disables it."""

    def __init__(self, resolution: int = 1024, z_dim: int = 512, w_dim: int = 512, image_channels: int = 3,
                 fused_scale: bool | str = "auto", truncation_psi: float | None = 0.7,
                 truncation_layers: int | None = 8, mapping_layers: int = 8, fmaps_base: int = 16384,
                 fmaps_max: int = 512) -> None:
        super().__init__()
        if resolution not in PROGRESSIVE_RESOLUTIONS:
            raise ConfigurationError(f"StyleGAN resolution {resolution} not supported; "
                                     f"use one of {PROGRESSIVE_RESOLUTIONS}")
        if fused_scale not in (True, False, "auto"):
            raise ConfigurationError(f"StyleGAN fused_scale must be true, false or 'auto', not {fused_scale!r}")
        self.resolution = resolution
        self.latent_size = z_dim
        self.w_dim = w_dim
        self.mapping = Mapping(z_dim, fmaps_max, w_dim, mapping_layers)
        self.synthesis = Synthesis(resolution, w_dim, image_channels, fused_scale, fmaps_base, fmaps_max)
        self.num_layers = self.synthesis.num_layers
        self.truncation = Truncation(self.num_layers, w_dim, truncation_psi, truncation_layers)

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo(k, name, shape) for k, (name, shape) in
                enumerate(zip(self.synthesis.names, self.synthesis.shapes, strict=True), start=1)]

    def split(self, layer: int, space: str = "z") -> tuple[nn.Module, nn.Module]:
        self._check_space(space)
        self.layer(layer)
        return StyleLower(self, layer, space), StyleUpper(self, layer)


class StyleLower(nn.Module):
    """``code -> features`` at layer ``layer`` (synthesis layers ``0 … layer-1`` with the code's own w+ rows)."""

    def __init__(self, generator: StyleGAN, layer: int, space: str) -> None:
        super().__init__()
        self.generator = generator
        self.layer = layer
        self.space = space

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        wp = self.generator.to_wplus(code, self.space)
        return self.generator.synthesis.run(None, wp, 0, self.layer)


class StyleUpper(nn.Module):
    """``(features, upper_latent [M, L - layer, w_dim]) -> image``: layers ``layer … L-1``, then toRGB."""

    def __init__(self, generator: StyleGAN, layer: int) -> None:
        super().__init__()
        self.generator = generator
        self.layer = layer

    def forward(self, features: torch.Tensor, upper_latent: torch.Tensor | None = None) -> torch.Tensor:
        synthesis = self.generator.synthesis
        rows = synthesis.num_layers - self.layer
        check_upper_inputs(f"StyleGAN upper part above layer {self.layer}", features,
                           self.generator.layer(self.layer).shape, upper_latent, (rows, self.generator.w_dim))
        return synthesis.to_rgb(synthesis.run(features, upper_latent, self.layer, synthesis.num_layers))

