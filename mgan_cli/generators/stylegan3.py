"""StyleGAN3 (alias-free) generator (Karras et al., NeurIPS 2021), ``stylegan3-t`` and ``stylegan3-r``.

Numerically as NVlabs/stylegan3 ``training/networks_stylegan3.py::Generator`` (reproduces
``shared/golden/nvlabs_stylegan3{t,r}_32``). State-dict keys: the mapping and ``w_avg`` in mgan's StyleGAN2
layout (``mapping.dense{i}.fc.weight`` [out, in] stored ×1/lr, ``mapping.dense{i}.bias``,
``truncation.w_avg``; :func:`mgan_cli.weights.formats.nvlabs.nvlabs3_to_mgan` renames NVlabs' ``mapping.fc{i}`` /
``mapping.w_avg``), and the synthesis exactly as NVlabs names it: ``synthesis.input.{weight, affine.weight,
affine.bias, transform, freqs, phases}`` and ``synthesis.L{i}_{size}_{channels}.{weight [out, in, k, k], bias,
affine.weight [in, w], affine.bias (init 1: the +1 is stored), magnitude_ema [], up_filter [T],
down_filter [T] or [T, T]}`` (the last layer, toRGB, has no filter keys).

* **Mapping**: z / sqrt(mean z² + 1e-8), then ``num_mapping_layers`` (2) layers of width ``w_dim``,
  ``x·(W·lr/sqrt(in))ᵀ + b·lr``, LeakyReLU(0.2)·sqrt(2). Truncation (off by default, as NVlabs' psi 1):
  rows ``< truncation_layers`` (all when None) become ``w_avg + psi·(w − w_avg)``.
* **Schedule** (:func:`layer_schedule`): ``num_layers`` (14) layers plus toRGB; cutoffs and minimum
  stopbands grow geometrically up to the last ``num_critical`` (2) critically sampled layers; each layer's
  sampling rate, size (rate + 2·margin; the last two are the image size), channels
  (round-half-even ``min(channel_base / 2 / cutoff, channel_max)``), up/down factors, filter taps and
  padding follow. ``num_ws = num_layers + 2`` (16): the input reads row 0, layer ``L{i}`` row ``i + 1``.
* **Input**: Fourier features. ``t = affine(w₀)`` normalised by ``|(t₀, t₁)|`` gives a rotation R and a
  translation M; ``T = R·M·U`` with ``U`` the user's *inverse* transform buffer ``transform``; frequencies
  are row vectors (``f' = f·T[:2, :2]``, phase ``+ f·T[:2, 2]``), damped when pushed out of band; sampled
  at pixel centres, ``sin(2π(f'·x + φ'))``, then mixed by ``weight / sqrt(C)``.
* **Layer**: styles ``affine(w)`` (toRGB: × 1/sqrt(in)); modulated conv with the weight and styles
  pre-normalised, demodulation, *then* × ``magnitude_ema^-½``, zero padding ``k − 1``
  (toRGB: 1×1, no demodulation); then :func:`~mgan_cli.generators.filtered_lrelu.filtered_lrelu`
  (bias, up-filter, LeakyReLU·sqrt(2), clamp ±``conv_clamp``, down-filter; toRGB: bias and clamp only).
* **Output**: toRGB × ``output_scale`` (0.25), not clamped.
* **stylegan3-r**: ``conv_kernel=1``, ``use_radial_filters=True`` (jinc down filters on the
  non-critical layers) and doubled ``channel_base`` / ``channel_max`` (:func:`variant_config`).

Everything runs in float32 (NVlabs' ``force_fp32=True``): ``num_fp16_res`` and ``magnitude_ema_beta`` are
training/CUDA-only and not needed to render. There is no noise input.

Latent spaces and code shapes: ``"z"`` ``(z_dim,)``, ``"w"`` ``(w_dim,)``, ``"w+"`` ``(num_ws, w_dim)``.

**Layers and multi-code composition.** Layer 1 is the Fourier input, layer ``i + 2`` is ``L{i}`` for
``i = 0 … num_layers − 1`` (toRGB is the output, not a layer). The feature at layer ``k`` is that module's
output ``[M, C, size, size]`` (margins included; :class:`LayerInfo` carries the sampling rate). The state
between two layers is that one tensor, so:

* ``lower(code)``: the code's own w+ rows ``0 … k − 1`` through the input and the layers below;
* ``upper(features, upper_latent [M, num_ws − k, w_dim])``: rows ``k … num_ws − 1`` through the remaining
  layers and toRGB; ``upper(lower(code), wplus[:, k:]) == G(code)`` exactly.
* ``initial_upper_latent``: ``w_avg`` on every row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mgan_cli.errors import ConfigurationError
from mgan_cli.generators.base import LayerInfo, check_upper_inputs
from mgan_cli.generators.filtered_lrelu import design_lowpass_filter, filter_matrices, filtered_lrelu
from mgan_cli.generators.layers import EPS, LRELU_SLOPE
from mgan_cli.generators.registry import ARCHITECTURES
from mgan_cli.generators.style_base import StyleFamilyGenerator, Truncation
from mgan_cli.generators.stylegan2 import MappingNetwork

ACT_GAIN = math.sqrt(2.0)


# ---- the per-layer schedule -----------------------------------------------------------------------------

@dataclass(frozen=True)
class LayerSpec:
    """One synthesis layer's geometry (``in_*`` from index ``max(i − 1, 0)``, ``out_*`` from index ``i``)."""

    index: int
    name: str
    in_channels: int
    out_channels: int
    in_size: int
    out_size: int
    in_sampling_rate: int
    out_sampling_rate: int
    in_cutoff: float
    out_cutoff: float
    in_half_width: float
    out_half_width: float
    is_torgb: bool
    is_critically_sampled: bool
    conv_kernel: int
    up: int
    down: int
    up_taps: int
    down_taps: int
    down_radial: bool
    padding: tuple[int, int, int, int]

    @property
    def tmp_sampling_rate(self) -> int:
        return self.in_sampling_rate * self.up


@dataclass(frozen=True)
class Schedule:
    """The input's geometry and every layer's :class:`LayerSpec` (the last one is toRGB)."""

    input_channels: int
    input_size: int
    input_sampling_rate: float
    input_bandwidth: float
    layers: tuple[LayerSpec, ...]


def layer_schedule(resolution: int, image_channels: int = 3, channel_base: int = 32768, channel_max: int = 512,
                   num_layers: int = 14, num_critical: int = 2, first_cutoff: float = 2.0,
                   first_stopband: float = 2**2.1, last_stopband_rel: float = 2**0.3, margin_size: int = 10,
                   conv_kernel: int = 3, filter_size: int = 6, lrelu_upsampling: int = 2,
                   use_radial_filters: bool = False) -> Schedule:
    """Cutoffs, stopbands, sampling rates, sizes, channels, factors, taps and padding of every layer.

    Computed in float64 with numpy, as the official constructor does (the filters depend on the exact
    values); padding uses floor division (negative totals crop).
    """
    if num_layers <= num_critical:
        raise ConfigurationError(f"num_layers ({num_layers}) must exceed num_critical ({num_critical})")
    last_cutoff = resolution / 2
    exponents = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
    cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** exponents
    stopbands = first_stopband * (last_cutoff * last_stopband_rel / first_stopband) ** exponents
    rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, resolution))))
    half_widths = np.maximum(stopbands, rates / 2) - cutoffs
    sizes = rates + margin_size * 2
    sizes[-2:] = resolution
    channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
    channels[-1] = image_channels
    specs = []
    for i in range(num_layers + 1):
        prev = max(i - 1, 0)
        is_torgb = i == num_layers
        in_rate, out_rate = int(rates[prev]), int(rates[i])
        tmp_rate = max(in_rate, out_rate) * (1 if is_torgb else lrelu_upsampling)
        up, down = tmp_rate // in_rate, tmp_rate // out_rate
        if up * in_rate != tmp_rate or down * out_rate != tmp_rate:
            raise ConfigurationError(f"StyleGAN3 layer {i}: sampling rates {in_rate}→{out_rate} are not integer ratios")
        up_taps = filter_size * up if up > 1 and not is_torgb else 1
        down_taps = filter_size * down if down > 1 and not is_torgb else 1
        kernel = 1 if is_torgb else conv_kernel
        in_size, out_size = int(sizes[prev]), int(sizes[i])
        pad_total = (out_size - 1) * down + 1 - (in_size + kernel - 1) * up + up_taps + down_taps - 2
        pad_lo = (pad_total + up) // 2
        pad_hi = pad_total - pad_lo
        out_channels = int(channels[i])
        specs.append(LayerSpec(
            index=i, name=f"L{i}_{out_size}_{out_channels}", in_channels=int(channels[prev]),
            out_channels=out_channels, in_size=in_size, out_size=out_size, in_sampling_rate=in_rate,
            out_sampling_rate=out_rate, in_cutoff=float(cutoffs[prev]), out_cutoff=float(cutoffs[i]),
            in_half_width=float(half_widths[prev]), out_half_width=float(half_widths[i]), is_torgb=is_torgb,
            is_critically_sampled=i >= num_layers - num_critical, conv_kernel=kernel, up=up, down=down,
            up_taps=up_taps, down_taps=down_taps,
            down_radial=use_radial_filters and not i >= num_layers - num_critical,
            padding=(pad_lo, pad_hi, pad_lo, pad_hi)))
    return Schedule(int(channels[0]), int(sizes[0]), float(rates[0]), float(cutoffs[0]), tuple(specs))


# ---- modules --------------------------------------------------------------------------------------------

class Affine(nn.Module):
    """Linear ``[M, w] -> [M, out]``: ``w·(W/sqrt(w))ᵀ + b`` (keys ``weight`` [out, w], ``bias`` [out])."""

    def __init__(self, w_dim: int, out_features: int, bias_init: float | list[float] = 0.0,
                 weight_init: float = 1.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, w_dim) * weight_init)
        self.bias = nn.Parameter(torch.zeros(out_features) + torch.tensor(bias_init, dtype=torch.float32))
        self.gain = 1.0 / math.sqrt(w_dim)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return F.linear(w, self.weight * self.gain, self.bias)


def _uniform_disc_frequencies(channels: int, bandwidth: float) -> torch.Tensor:
    """Random 2-D frequencies ``[C, 2]`` (x, y, cycles per unit) inside the disc of radius ``bandwidth``."""
    freqs = torch.randn(channels, 2)
    radii = freqs.norm(dim=1, keepdim=True)
    return freqs / (radii * torch.exp(radii.square()).pow(0.25)) * bandwidth


class FourierInput(nn.Module):
    """w₀ ``[M, w_dim]`` → Fourier features ``[M, C, size, size]`` (see the module docstring)."""

    def __init__(self, w_dim: int, channels: int, size: int, sampling_rate: float, bandwidth: float) -> None:
        super().__init__()
        self.channels, self.size = channels, size
        self.sampling_rate, self.bandwidth = sampling_rate, bandwidth
        self.weight = nn.Parameter(torch.randn(channels, channels))
        self.affine = Affine(w_dim, 4, bias_init=[1.0, 0.0, 0.0, 0.0], weight_init=0.0)
        self.register_buffer("transform", torch.eye(3))  # the user's inverse transform of the image
        self.register_buffer("freqs", _uniform_disc_frequencies(channels, bandwidth))
        self.register_buffer("phases", torch.rand(channels) - 0.5)

    def sines(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(sin(2π(f'·x + φ')) [M, size, size, C], amplitudes [M, C])`` for the transformed frequencies."""
        t = self.affine(w)
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        cos, sin, shift_x, shift_y = t.unbind(dim=1)
        one, zero = torch.ones_like(cos), torch.zeros_like(cos)
        rotation = torch.stack([cos, -sin, zero, sin, cos, zero, zero, zero, one], dim=1).view(-1, 3, 3)
        translation = torch.stack([one, zero, -shift_x, zero, one, -shift_y, zero, zero, one], dim=1).view(-1, 3, 3)
        transform = rotation @ translation @ self.transform.unsqueeze(0)
        phases = self.phases.unsqueeze(0) + (self.freqs.unsqueeze(0) @ transform[:, :2, 2:]).squeeze(2)
        freqs = self.freqs.unsqueeze(0) @ transform[:, :2, :2]  # [M, C, 2]
        amplitudes = 1 - (freqs.norm(dim=2) - self.bandwidth) / (self.sampling_rate / 2 - self.bandwidth)
        grid = (torch.arange(self.size, device=w.device, dtype=w.dtype) + 0.5 - self.size / 2) / self.sampling_rate
        along_x = grid.view(1, 1, -1, 1) * freqs[:, None, None, :, 0]
        along_y = grid.view(1, -1, 1, 1) * freqs[:, None, None, :, 1]
        argument = along_x + along_y + phases[:, None, None, :]  # [M, H, W, C]
        return torch.sin(argument * (2 * math.pi)), amplitudes.clamp(0, 1)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        sines, amplitudes = self.sines(w)
        features = (sines * amplitudes[:, None, None, :]) @ (self.weight / math.sqrt(self.channels)).t()
        return features.permute(0, 3, 1, 2)


class SynthesisLayer(nn.Module):
    """``([M, in, s, s], w [M, w_dim]) -> [M, out, s', s']``: modulated conv, then the filtered leaky ReLU."""

    def __init__(self, spec: LayerSpec, w_dim: int, conv_clamp: float | None) -> None:
        super().__init__()
        self.spec, self.conv_clamp = spec, conv_clamp
        k = spec.conv_kernel
        self.affine = Affine(w_dim, spec.in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(spec.out_channels, spec.in_channels, k, k))
        self.bias = nn.Parameter(torch.zeros(spec.out_channels))
        self.register_buffer("magnitude_ema", torch.ones(()))
        tmp_rate = spec.tmp_sampling_rate
        self.register_buffer("up_filter", design_lowpass_filter(spec.up_taps, spec.in_cutoff,
                                                                2 * spec.in_half_width, tmp_rate))
        self.register_buffer("down_filter", design_lowpass_filter(spec.down_taps, spec.out_cutoff,
                                                                  2 * spec.out_half_width, tmp_rate,
                                                                  radial=spec.down_radial))
        self.style_gain = 1.0 / math.sqrt(spec.in_channels * k * k) if spec.is_torgb else 1.0
        self.gain, self.slope = (1.0, 1.0) if spec.is_torgb else (ACT_GAIN, LRELU_SLOPE)
        self.matrix_names: list[str] = []
        self.build_filter_matrices()
        self.register_load_state_dict_post_hook(lambda module, _keys: module.build_filter_matrices())

    def build_filter_matrices(self) -> None:
        """(Re)build the dense filter matrices of this layer's fixed geometry from its filters (non-persistent
        buffers: they follow ``.to()``, are never saved, and are rebuilt after the filters are loaded)."""
        spec = self.spec
        size = spec.in_size + spec.conv_kernel - 1  # the modulated conv's output
        up_filter, down_filter = self.up_filter, self.down_filter
        matrices = filter_matrices(up_filter, down_filter, spec.up, spec.down, spec.padding, size,
                                   scale=self.gain if self.gain > 0 else 1.0)
        for name in self.matrix_names:
            delattr(self, name)
        self.matrix_names = []
        for key, matrix in matrices.items():
            name = f"matrix_{key}"
            self.register_buffer(name, matrix, persistent=False)
            self.matrix_names.append(name)

    def filter_matrices(self) -> dict[str, torch.Tensor]:
        return {name.removeprefix("matrix_"): getattr(self, name) for name in self.matrix_names}

    def modulated_conv(self, x: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
        """The modulated convolution before the bias: ``[M, in, s, s] -> [M, out, s + k − 1, s + k − 1]``.

        Computed as input scaling, one shared-weight conv, output scaling (equal to NVlabs' per-sample
        grouped conv): demodulation ``rsqrt(Σ (W·s)² + 1e-8)`` and the magnitude gain act per output channel.
        """
        weight = self.weight
        out_gain = self.magnitude_ema.rsqrt().to(x.dtype)
        if not self.spec.is_torgb:
            weight = weight * weight.square().mean(dim=[1, 2, 3], keepdim=True).rsqrt()
            styles = styles * styles.square().mean().rsqrt()
            demod = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + EPS).rsqrt()  # [M, out]
            out_gain = out_gain * demod.view(*demod.shape, 1, 1)
        x = F.conv2d(x * styles.view(*styles.shape, 1, 1).to(x.dtype), weight.to(x.dtype),
                     padding=self.spec.conv_kernel - 1)
        return x * out_gain

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        spec = self.spec
        styles = self.affine(w) * self.style_gain
        x = self.modulated_conv(x, styles)
        return filtered_lrelu(x, self.bias, self.up_filter, self.down_filter, spec.up, spec.down, spec.padding,
                              gain=self.gain, slope=self.slope, clamp=self.conv_clamp, matrices=self.filter_matrices())


class Synthesis(nn.Module):
    """w+ ``[M, num_ws, w_dim] -> [M, C_img, R, R]``, run step by step so that it can stop at any layer.

    Step 0 is the Fourier input (row 0); step ``j ≥ 1`` is layer ``L{j−1}`` (row ``j``); the last is toRGB.
    """

    def __init__(self, schedule: Schedule, w_dim: int, resolution: int, conv_clamp: float | None,
                 output_scale: float) -> None:
        super().__init__()
        self.schedule, self.w_dim, self.resolution, self.output_scale = schedule, w_dim, resolution, output_scale
        self.num_ws = len(schedule.layers) + 1
        self.input = FourierInput(w_dim, schedule.input_channels, schedule.input_size,
                                  schedule.input_sampling_rate, schedule.input_bandwidth)
        self.layer_names = [spec.name for spec in schedule.layers]
        for spec in schedule.layers:
            self.add_module(spec.name, SynthesisLayer(spec, w_dim, conv_clamp))

    def run(self, x: torch.Tensor | None, wp: torch.Tensor, start: int, stop: int, row0: int) -> torch.Tensor:
        """Steps ``start … stop − 1`` from ``x``; ``wp[:, i]`` is w+ row ``row0 + i``."""
        for j in range(start, stop):
            row = wp[:, j - row0]
            x = self.input(row) if j == 0 else getattr(self, self.layer_names[j - 1])(x, row)
        assert x is not None
        return x

    def finish(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.output_scale if self.output_scale != 1 else x

    def forward(self, wp: torch.Tensor) -> torch.Tensor:
        if wp.dim() != 3 or wp.shape[1:] != (self.num_ws, self.w_dim):
            raise ConfigurationError(f"StyleGAN3 synthesis needs w+ [M, {self.num_ws}, {self.w_dim}], "
                                     f"got {tuple(wp.shape)}")
        return self.finish(self.run(None, wp, 0, self.num_ws, 0))


@ARCHITECTURES.register("stylegan3")
class StyleGAN3(StyleFamilyGenerator):
    """NVlabs StyleGAN3 ``Generator``; see the module docstring for keys, layers and splits. Defaults =
    ``stylegan3-t`` FFHQ 1024 as train.py builds it (conv_clamp 256, no truncation); for ``-r`` see
    :func:`variant_config`."""

    def __init__(self, resolution: int = 1024, z_dim: int = 512, w_dim: int = 512, image_channels: int = 3,
                 channel_base: int = 32768, channel_max: int = 512, num_mapping_layers: int = 2,
                 mapping_lr_multiplier: float = 0.01, num_layers: int = 14, num_critical: int = 2,
                 first_cutoff: float = 2.0, first_stopband: float = 2**2.1, last_stopband_rel: float = 2**0.3,
                 margin_size: int = 10, output_scale: float = 0.25, filter_size: int = 6,
                 lrelu_upsampling: int = 2, conv_kernel: int = 3, use_radial_filters: bool = False,
                 conv_clamp: float | None = 256.0, truncation_psi: float | None = None,
                 truncation_layers: int | None = None) -> None:
        super().__init__()
        self.latent_size, self.resolution, self.w_dim = z_dim, resolution, w_dim
        schedule = layer_schedule(resolution, image_channels, channel_base, channel_max, num_layers, num_critical,
                                  first_cutoff, first_stopband, last_stopband_rel, margin_size, conv_kernel,
                                  filter_size, lrelu_upsampling, use_radial_filters)
        self.synthesis = Synthesis(schedule, w_dim, resolution, conv_clamp, output_scale)
        self.num_layers = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, w_dim, w_dim, num_mapping_layers, mapping_lr_multiplier)
        if truncation_psi is not None and truncation_layers is None:
            truncation_layers = self.num_layers  # NVlabs: cutoff None = every row
        self.truncation = Truncation(self.num_layers, w_dim, truncation_psi, truncation_layers)

    def layers(self) -> list[LayerInfo]:
        schedule = self.synthesis.schedule
        size = schedule.input_size
        infos = [LayerInfo(1, "input", (schedule.input_channels, size, size), schedule.input_sampling_rate)]
        for spec in schedule.layers[:-1]:
            infos.append(LayerInfo(spec.index + 2, spec.name, (spec.out_channels, spec.out_size, spec.out_size),
                                   float(spec.out_sampling_rate)))
        return infos

    def split(self, layer: int, space: str = "z") -> tuple[nn.Module, nn.Module]:
        self._check_space(space)
        self.layer(layer)
        return StyleGAN3Lower(self, layer, space), StyleGAN3Upper(self, layer)


class StyleGAN3Lower(nn.Module):
    """``code -> [M, C, s, s]``: the input and layers below ``layer`` with the code's own w+ rows."""

    def __init__(self, generator: StyleGAN3, layer: int, space: str) -> None:
        super().__init__()
        self.generator, self.layer, self.space = generator, layer, space

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        wp = self.generator.to_wplus(code, self.space)
        return self.generator.synthesis.run(None, wp, 0, self.layer, 0)


class StyleGAN3Upper(nn.Module):
    """``(features [M, C, s, s], upper_latent [M, num_ws − layer, w_dim]) -> image`` (rows ``layer …``)."""

    def __init__(self, generator: StyleGAN3, layer: int) -> None:
        super().__init__()
        self.generator, self.layer = generator, layer

    def forward(self, features: torch.Tensor, upper_latent: torch.Tensor | None = None) -> torch.Tensor:
        synthesis = self.generator.synthesis
        rows = synthesis.num_ws - self.layer
        check_upper_inputs(f"StyleGAN3 upper part above layer {self.layer}", features, None, upper_latent,
                           (rows, self.generator.w_dim))
        x = synthesis.run(features, upper_latent, self.layer, synthesis.num_ws, self.layer)
        return synthesis.finish(x)


def variant_config(variant: str, resolution: int = 1024, channel_base: int = 32768,
                   channel_max: int = 512) -> dict[str, object]:
    """``train.py --cfg=stylegan3-{t,r}`` kwargs: -r uses 1×1 convs, radial filters, doubled channels."""
    if variant not in ("t", "r"):
        raise ConfigurationError(f"StyleGAN3 variant must be 't' or 'r', got {variant!r}")
    if variant == "t":
        return {"resolution": resolution, "channel_base": channel_base, "channel_max": channel_max}
    return {"resolution": resolution, "channel_base": 2 * channel_base, "channel_max": 2 * channel_max,
            "conv_kernel": 1, "use_radial_filters": True}
