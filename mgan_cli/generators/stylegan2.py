"""StyleGAN2 generator (Karras et al., CVPR 2020), numerically as genforce's ``StyleGAN2GeneratorNet``.

State-dict keys, shapes and layouts are genforce's (the canonical layout every StyleGAN2 reader converts
into): ``mapping.dense{i}.fc.weight`` [out, in] / ``.bias``, ``truncation.w_avg``,
``synthesis.early_layer.const`` [1, C, 4, 4], ``synthesis.layer{k}.weight`` in **TF layout [k, k, in, out]**,
``.bias``, ``.style.fc.weight`` [in, w] / ``.style.bias`` (stored *without* the +1), ``.noise`` [1, 1, R, R]
and ``.noise_strength`` [], ``layer{2b-1}.filter.kernel`` and ``synthesis.upsample.kernel`` (the ×4
[1,3,3,1]² FIR, [1, 1, 4, 4]), and ``synthesis.output{b}.*`` (toRGB). ``truncation.truncation`` is not
stored (genforce's converter deletes it); it is rebuilt from ``truncation_psi`` / ``truncation_layers``.

* **Mapping**: pixel-norm z, then ``num_mapping_layers`` dense layers ``x·Wᵀ/sqrt(in)·lr + b·lr`` (lr 0.01),
  LeakyReLU(0.2)·sqrt(2). Hidden width ``mapping_hidden`` (genforce: ``fmaps_max``; NVlabs: ``w_dim``).
* **Truncation** (explicit in the config): w+ rows ``i < truncation_layers`` become
  ``w_avg + (w - w_avg)·psi``; ``truncation_psi=None`` disables it. The defaults are the genforce
  wrapper's (psi 0.5 on all 18 rows), so ``G(z)`` is truncated by default, as genforce's ``net(z)``.
  It applies to **z** codes only; **w** codes are broadcast to every row and **w+** codes go straight
  to synthesis (as mGANprior's StyleGAN-w / -w+ and the StyleGAN module here).
* **Synthesis** ('skip' architecture, configs E and F): ``L = 2·log2(R) - 2`` w+ rows. genforce
  ``layer{k}`` reads row ``k``; toRGB ``output{b}`` reads row ``2b+1`` (the next block's up-conv row).
  Modulated conv: weight·1/sqrt(in·k²), style s = w·Wᵀ/sqrt(w_dim) + b + 1 per input channel,
  demodulation (not for toRGB), 3×3 conv, or for up-convs a stride-2 transposed conv with the flipped
  stored kernel then the ×4 FIR (pad 1). Then noise·noise_strength (the stored buffers: genforce's
  ``randomize_noise=False``), bias, LeakyReLU(0.2)·sqrt(2); optionally clamped to ±``conv_clamp``
  (NVlabs stylegan2-ada clamps at 256; toRGB is clamped after its bias). The skip image is
  ``image_b = toRGB_b + up(image_{b-1})`` with zero-insertion ×2, pad (2, 1) and the ×4 FIR. Images
  are not clamped (nominal [-1, 1]).

Configs: F = ``fmaps_base 32768`` (512 channels up to 64², then 256, 128, 64, 32 at 1024²); E =
``fmaps_base 16384`` (half the channels from 64² up; TF ``fmap_base`` 8<<10 vs 16<<10 with
``nf(stage) = fmap_base / 2**stage``). Only the 'skip' generator (used by both) is implemented.

Latent spaces and code shapes: ``"z"`` ``(z_dim,)``, ``"w"`` ``(w_dim,)``, ``"w+"`` ``(L, w_dim)``.

**Layers and multi-code composition.** Layer ``k`` (1..L-1) is the output of genforce
``synthesis.layer{k-1}``: ``4x4/conv``, ``8x8/conv0_up``, ``8x8/conv1``, ``16x16/conv0_up``, … (the
learned constant is not a layer: it does not depend on the code). In the skip architecture the state
between two layers is *two* tensors: the feature map ``x`` and the running RGB image. The composed
feature at layer ``k`` is therefore ``cat([x, skip], dim=1)`` of shape ``(C + 3, R, R)``, where ``skip`` is
the image of all completed lower resolutions, already upsampled to ``R`` (``up(image_{b-1})``; zeros at
4×4, where there is none yet and the upper part ignores it). The toRGB of the current block reads a w+
row above ``k``, so it belongs to the upper part; the previous block's image only reads rows ``< k``.

* ``lower(code)``: the code's own w+ (mapping and truncation first for z), layers ``0 … k-1`` with rows
  ``0 … k-1`` → ``[M, C + 3, R, R]``;
* ``upper(features, upper_latent [M, L - k, w_dim])``: rows ``k … L-1``; ``upper_latent[:, i]`` is row
  ``k + i``. ``upper(lower(code), code_wplus[:, k:]) == G(code)`` bit for bit (same ops, same order).
* ``initial_upper_latent``: ``w_avg`` broadcast to every row (the centre of W).

Composition multiplies all ``C + 3`` channels by α, so the image carried from the lower resolutions is
blended per code like any channel. Alternatives we did not choose: composing only ``x`` and taking the
skip image from one code or from the upper latent (breaks ``upper(lower(z)) == G(z)`` or favours one
code); splitting only after a toRGB (the image is then a finished output and α cannot re-weight the
block's own contribution); dropping the skip image (changes the generator).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mgan_cli.errors import ConfigurationError
from mgan_cli.generators.base import LayerInfo, check_upper_inputs
from mgan_cli.generators.layers import EPS, LRELU_SLOPE, PixelNorm, channels_at
from mgan_cli.generators.registry import ARCHITECTURES
from mgan_cli.generators.style_base import StyleFamilyGenerator, Truncation

ACT_GAIN = math.sqrt(2.0)
FIR_TAPS = (1.0, 3.0, 3.0, 1.0)
#: Config presets: ``fmaps_base`` per official config (TF ``fmap_base`` × 2, in genforce's ``base // res`` rule)
CONFIG_FMAPS_BASE = {"e": 16384, "f": 32768}


def fir_kernel(gain: float = 2.0) -> torch.Tensor:
    """The [1,3,3,1]² FIR, normalised to sum 1 then × ``gain²`` (genforce stores it × 4): ``[1, 1, 4, 4]``."""
    taps = torch.tensor(FIR_TAPS, dtype=torch.float64)
    kernel = torch.outer(taps, taps)
    kernel = (kernel / kernel.sum() * gain**2).to(torch.float32)
    return kernel.view(1, 1, 4, 4)


def lrelu_gain(x: torch.Tensor) -> torch.Tensor:
    """LeakyReLU(0.2) × sqrt(2), the StyleGAN2 activation."""
    return F.leaky_relu(x, LRELU_SLOPE) * ACT_GAIN


#: Implementation choices of the synthesis convolutions (issue 19 item 8), switchable so that a device run can
#: pick the default per family: :func:`set_implementation` or ``MGAN_STYLEGAN2_IMPL=modconv:filter``.
#: **Both defaults were chosen without a GPU measurement** (the CPU only):
#:
#: * ``modulated_conv``: ``grouped`` (per-sample weights, one grouped conv, NVlabs' ``fused_modconv``) or
#:   ``input-scaling`` (x·style, one shared-weight conv, × demodulation per output channel: StyleGAN3's way;
#:   cuDNN may prefer it at large batches, where a grouped conv with B groups is slow).
#: * ``filter``: ``single-channel`` (the FIR as a conv on ``[B·C, 1, H, W]``; the reshape makes an NHWC input
#:   contiguous NCHW again, so channels-last gains nothing here) or ``depthwise`` (a ``groups=C`` conv that
#:   keeps the memory format).
IMPLEMENTATIONS = {"modulated_conv": ("grouped", "input-scaling"), "filter": ("single-channel", "depthwise")}
implementation = {"modulated_conv": "grouped", "filter": "single-channel"}


def set_implementation(modulated_conv: str | None = None, filter: str | None = None) -> None:
    """Choose the implementations above (process-wide; call before building or compiling a model)."""
    for key, value in (("modulated_conv", modulated_conv), ("filter", filter)):
        if value is not None:
            if value not in IMPLEMENTATIONS[key]:
                raise ValueError(f"{key} must be one of {', '.join(IMPLEMENTATIONS[key])}, got {value!r}")
            implementation[key] = value


def _from_environment() -> None:
    import os

    value = os.environ.get("MGAN_STYLEGAN2_IMPL")
    if value:
        modconv, _, fir = value.partition(":")
        set_implementation(modconv or None, fir or None)


_from_environment()


class Filter(nn.Module):
    """Depthwise ×4 FIR on ``[M, C, H, W]`` with zero padding ``pad = (left, right, top, bottom)``.

    With ``upsample`` it first zero-inserts ×2 (samples at even positions). Key: ``kernel`` [1, 1, 4, 4].
    """

    def __init__(self, pad: tuple[int, int, int, int], upsample: bool) -> None:
        super().__init__()
        self.register_buffer("kernel", fir_kernel())
        self.pad = pad
        self.upsample = upsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        if self.upsample:
            x = F.pad(x.reshape(batch, channels, height, 1, width, 1), (0, 1, 0, 0, 0, 1))
            height, width = 2 * height, 2 * width
        if implementation["filter"] == "depthwise":
            x = F.pad(x.reshape(batch, channels, height, width), self.pad)
            return F.conv2d(x, self.kernel.expand(channels, 1, *self.kernel.shape[2:]), groups=channels)
        x = F.pad(x.reshape(batch * channels, 1, height, width), self.pad)
        x = F.conv2d(x, self.kernel)
        return x.view(batch, channels, x.shape[2], x.shape[3])


class Style(nn.Module):
    """Affine style ``[M, w] -> [M, in]``: ``w·Wᵀ/sqrt(w) + b + 1`` (``fc.weight`` [in, w], ``bias`` without +1)."""

    def __init__(self, w_dim: int, channels: int) -> None:
        super().__init__()
        self.fc = nn.Linear(w_dim, channels, bias=False)
        self.bias = nn.Parameter(torch.zeros(channels))
        self.scale = 1.0 / math.sqrt(w_dim)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return self.fc(w) * self.scale + self.bias.view(1, -1) + 1.0


class ModulatedConv(nn.Module):
    """genforce ``ModulateConvBlock`` (fused modulation): ``([M, in, H, W], w [M, w_dim]) -> [M, out, R, R]``.

    ``up``: ×2 transposed conv with the flipped kernel then the FIR (``filter``). ``rgb``: 1×1, no
    demodulation, no noise, linear. ``conv_clamp``: clamp to ±value after the activation (toRGB: after bias).
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: bool = False,
                 rgb: bool = False, conv_clamp: float | None = None) -> None:
        super().__init__()
        self.ksize = 1 if rgb else 3
        self.in_c, self.out_c, self.res, self.up, self.rgb = in_channels, out_channels, resolution, up, rgb
        self.conv_clamp = conv_clamp
        self.weight = nn.Parameter(torch.randn(self.ksize, self.ksize, in_channels, out_channels))
        self.weight_scale = 1.0 / math.sqrt(in_channels * self.ksize * self.ksize)
        if up:
            self.filter = Filter((1, 1, 1, 1), upsample=False)
        self.style = Style(w_dim, in_channels)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        if not rgb:
            self.register_buffer("noise", torch.randn(1, 1, resolution, resolution))
            self.noise_strength = nn.Parameter(torch.zeros(()))

    def _input_scaling(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """The same convolution as x·style → one shared-weight conv → × demodulation per output channel."""
        k = self.ksize
        weight = self.weight * self.weight_scale  # [k, k, in, out]
        x = x * style.view(*style.shape, 1, 1).to(x.dtype)
        if self.up:
            shared = weight.flip(0, 1).permute(2, 3, 0, 1)  # [in, out, k, k]
            x = F.conv_transpose2d(x, shared.to(x.dtype), stride=2, padding=0)
        else:
            x = F.conv2d(x, weight.permute(3, 2, 0, 1).to(x.dtype), stride=1, padding=k // 2)
        if not self.rgb:
            demod = (style.square() @ weight.square().sum(dim=[0, 1]) + EPS).rsqrt()  # [M, out]
            x = x * demod.view(*demod.shape, 1, 1).to(x.dtype)
        if self.up:
            x = self.filter(x)
        return x

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        batch, k = x.shape[0], self.ksize
        style = self.style(w)
        if implementation["modulated_conv"] == "input-scaling":
            return self._finish(self._input_scaling(x, style))
        weight = (self.weight * self.weight_scale).view(1, k, k, self.in_c, self.out_c)
        weight = weight * style.view(batch, 1, 1, self.in_c, 1)
        if not self.rgb:
            norm = torch.sqrt(torch.sum(weight**2, dim=[1, 2, 3]) + EPS)
            weight = weight / norm.view(batch, 1, 1, 1, self.out_c)
        x = x.reshape(1, batch * self.in_c, x.shape[2], x.shape[3])
        weight = weight.permute(1, 2, 3, 0, 4).reshape(k, k, self.in_c, batch * self.out_c)
        if self.up:
            weight = weight.flip(0, 1).view(k, k, self.in_c, batch, self.out_c).permute(0, 1, 4, 3, 2)
            weight = weight.reshape(k, k, self.out_c, batch * self.in_c).permute(3, 2, 0, 1)
            x = F.conv_transpose2d(x, weight, stride=2, padding=0, groups=batch)
            x = self.filter(x.view(batch, self.out_c, x.shape[2], x.shape[3]))
        else:
            x = F.conv2d(x, weight.permute(3, 2, 0, 1), stride=1, padding=k // 2, groups=batch)
        return self._finish(x.view(batch, self.out_c, self.res, self.res))

    def _finish(self, x: torch.Tensor) -> torch.Tensor:
        if self.rgb:
            x = x + self.bias.view(1, -1, 1, 1)
        else:
            x = x + self.noise * self.noise_strength.view(1, 1, 1, 1)
            x = lrelu_gain(x + self.bias.view(1, -1, 1, 1))
        if self.conv_clamp is not None:
            x = x.clamp(-self.conv_clamp, self.conv_clamp)
        return x


class Dense(nn.Module):
    """Mapping layer ``[M, in] -> [M, out]``: ``x·Wᵀ/sqrt(in)·lr + b·lr``, LeakyReLU(0.2)·sqrt(2)."""

    def __init__(self, in_features: int, out_features: int, lr_multiplier: float) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, out_features, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.scale = 1.0 / math.sqrt(in_features)
        self.lr_multiplier = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc(x) * self.scale * self.lr_multiplier + self.bias.view(1, -1) * self.lr_multiplier
        return lrelu_gain(x)


class MappingNetwork(nn.Module):
    """``z [M, z_dim] -> w [M, w_dim]``: pixel-norm then ``num_layers`` :class:`Dense` (keys ``dense{i}.*``)."""

    def __init__(self, z_dim: int, hidden: int, w_dim: int, num_layers: int, lr_multiplier: float) -> None:
        super().__init__()
        dims = [z_dim] + [hidden] * (num_layers - 1) + [w_dim]
        self.normalize = PixelNorm()
        for i in range(num_layers):
            self.add_module(f"dense{i}", Dense(dims[i], dims[i + 1], lr_multiplier))
        self.num_layers = num_layers

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.normalize(z)
        for i in range(self.num_layers):
            x = getattr(self, f"dense{i}")(x)
        return x


class EarlyLayer(nn.Module):
    """The learned constant ``const`` [1, C, 4, 4], repeated over the batch."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.const = nn.Parameter(torch.randn(1, channels, 4, 4))

    def forward(self, batch: int) -> torch.Tensor:
        return self.const.repeat(batch, 1, 1, 1)


class Synthesis(nn.Module):
    """w+ ``[M, L, w_dim] -> [M, C_img, R, R]`` ('skip'), run step by step so it can stop at any layer.

    Step ``j`` (0 … L-2) runs genforce ``layer{j}``; an up-conv step ``j = 2b-1`` first finishes block
    ``b-1``'s image (``output{b-1}`` reads row ``j`` too) and upsamples it into the pending ``skip``.
    """

    def __init__(self, resolution: int, w_dim: int, image_channels: int, fmaps_base: int, fmaps_max: int,
                 conv_clamp: float | None) -> None:
        super().__init__()
        log2 = int(math.log2(resolution))
        if resolution < 4 or 2**log2 != resolution:
            raise ConfigurationError(f"StyleGAN2 resolution must be a power of two ≥ 4, got {resolution}")
        self.num_layers = 2 * log2 - 2
        self.w_dim, self.image_channels = w_dim, image_channels
        self.names: list[str] = []
        self.channels: list[int] = []
        self.resolutions: list[int] = []
        nf = {4 * 2**b: channels_at(4 * 2**b, fmaps_base, fmaps_max) for b in range(log2 - 1)}
        self.early_layer = EarlyLayer(nf[4])
        for b, res in enumerate(sorted(nf)):
            if b > 0:
                self.add_module(f"layer{2 * b - 1}", ModulatedConv(nf[res // 2], nf[res], w_dim, res, up=True,
                                                                    conv_clamp=conv_clamp))
                self._describe(f"{res}x{res}/conv0_up", nf[res], res)
            self.add_module(f"layer{2 * b}", ModulatedConv(nf[res], nf[res], w_dim, res, conv_clamp=conv_clamp))
            self._describe(f"{res}x{res}/conv" if b == 0 else f"{res}x{res}/conv1", nf[res], res)
            self.add_module(f"output{b}", ModulatedConv(nf[res], image_channels, w_dim, res, rgb=True,
                                                        conv_clamp=conv_clamp))
        self.upsample = Filter((2, 1, 2, 1), upsample=True)

    def _describe(self, name: str, channels: int, res: int) -> None:
        self.names.append(name)
        self.channels.append(channels)
        self.resolutions.append(res)

    def run(self, x: torch.Tensor | None, skip: torch.Tensor | None, wp: torch.Tensor, start: int, stop: int,
            row0: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Steps ``start … stop-1`` from state ``(x, skip)``; ``wp[:, i]`` is w+ row ``row0 + i``."""
        for j in range(start, stop):
            row = wp[:, j - row0].contiguous()
            if j == 0:
                x = self.early_layer(wp.shape[0])
            elif j % 2 == 1:
                rgb = getattr(self, f"output{j // 2}")(x, row)
                skip = self.upsample(rgb if skip is None else rgb + skip)
            x = getattr(self, f"layer{j}")(x, row)
        assert x is not None
        return x, skip

    def finish(self, x: torch.Tensor, skip: torch.Tensor | None, row: torch.Tensor) -> torch.Tensor:
        """The last toRGB (w+ row L-1) plus the pending skip image."""
        rgb = getattr(self, f"output{self.num_layers // 2 - 1}")(x, row.contiguous())
        return rgb if skip is None else rgb + skip

    def forward(self, wp: torch.Tensor) -> torch.Tensor:
        if wp.dim() != 3 or wp.shape[1:] != (self.num_layers, self.w_dim):
            raise ConfigurationError(f"StyleGAN2 synthesis needs w+ [M, {self.num_layers}, {self.w_dim}], "
                                     f"got {tuple(wp.shape)}")
        x, skip = self.run(None, None, wp, 0, self.num_layers - 1, 0)
        return self.finish(x, skip, wp[:, -1])


@ARCHITECTURES.register("stylegan2")
class StyleGAN2(StyleFamilyGenerator):
    """genforce ``StyleGAN2GeneratorNet`` ('skip', ``randomize_noise=False``, fused modulation); see the module
    docstring for layers, spaces and splits. Defaults = FFHQ 1024 config F with the genforce wrapper's
    truncation (psi 0.5 on all 18 rows, z space only); config E is ``fmaps_base=16384``. ``mapping_hidden``
    None = ``fmaps_max`` (genforce); NVlabs nets use ``w_dim``. ``conv_clamp``: None (TF-converted nets) or
    256 (stylegan2-ada-pytorch-trained nets). The readers' helpers for this layout (config inference, the
    fixed FIR buffers, a missing ``w_avg``) are in :mod:`mgan_cli.weights.formats.genforce_stylegan2`."""

    def __init__(self, resolution: int = 1024, z_dim: int = 512, w_dim: int = 512, image_channels: int = 3,
                 fmaps_base: int = 32768, fmaps_max: int = 512, num_mapping_layers: int = 8,
                 mapping_hidden: int | None = None, mapping_lr_multiplier: float = 0.01,
                 truncation_psi: float | None = 0.5, truncation_layers: int | None = 18,
                 conv_clamp: float | None = None, architecture: str = "skip") -> None:
        super().__init__()
        if architecture != "skip":
            raise ConfigurationError(f"StyleGAN2 architecture {architecture!r} is not supported (only 'skip')")
        self.latent_size, self.resolution, self.w_dim = z_dim, resolution, w_dim
        self.synthesis = Synthesis(resolution, w_dim, image_channels, fmaps_base, fmaps_max, conv_clamp)
        self.num_layers = self.synthesis.num_layers
        self.mapping = MappingNetwork(z_dim, mapping_hidden or fmaps_max, w_dim, num_mapping_layers,
                                      mapping_lr_multiplier)
        self.truncation = Truncation(self.num_layers, w_dim, truncation_psi, truncation_layers)

    def layers(self) -> list[LayerInfo]:
        s = self.synthesis
        return [LayerInfo(k, name, (c + s.image_channels, r, r)) for k, (name, c, r) in
                enumerate(zip(s.names, s.channels, s.resolutions, strict=True), start=1)]

    def split(self, layer: int, space: str = "z") -> tuple[nn.Module, nn.Module]:
        self._check_space(space)
        self.layer(layer)
        return StyleGAN2Lower(self, layer, space), StyleGAN2Upper(self, layer)


class StyleGAN2Lower(nn.Module):
    """``code -> [M, C + 3, R, R]``: layers ``0 … layer-1`` with the code's own rows, then ``cat([x, skip])``."""

    def __init__(self, generator: StyleGAN2, layer: int, space: str) -> None:
        super().__init__()
        self.generator, self.layer, self.space = generator, layer, space

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        wp = self.generator.to_wplus(code, self.space)
        x, skip = self.generator.synthesis.run(None, None, wp, 0, self.layer, 0)
        if skip is None:
            skip = x.new_zeros(x.shape[0], self.generator.synthesis.image_channels, x.shape[2], x.shape[3])
        return torch.cat([x, skip], dim=1)


class StyleGAN2Upper(nn.Module):
    """``(features [M, C + 3, R, R], upper_latent [M, L - layer, w_dim]) -> image`` (rows ``layer … L-1``)."""

    def __init__(self, generator: StyleGAN2, layer: int) -> None:
        super().__init__()
        self.generator, self.layer = generator, layer

    def forward(self, features: torch.Tensor, upper_latent: torch.Tensor | None = None) -> torch.Tensor:
        synthesis = self.generator.synthesis
        rows = synthesis.num_layers - self.layer
        check_upper_inputs(f"StyleGAN2 upper part above layer {self.layer}", features,
                           self.generator.layer(self.layer).shape, upper_latent, (rows, self.generator.w_dim))
        channels = features.shape[1] - synthesis.image_channels
        x = features[:, :channels].contiguous()
        skip = None if self.layer == 1 else features[:, channels:].contiguous()
        x, skip = synthesis.run(x, skip, upper_latent, self.layer, synthesis.num_layers - 1, self.layer)
        return synthesis.finish(x, skip, upper_latent[:, -1])

