"""StyleGAN3's alias-free nonlinearity (the filtered leaky ReLU) in plain PyTorch, and its low-pass filters.

``filtered_lrelu(x, bias, up_filter, down_filter, up, down, padding, gain, slope, clamp)`` on ``[N, C, H, W]``:

1. add ``bias`` [C] (before anything else);
2. zero-insert ×``up`` (each sample followed by ``up - 1`` zeros on both axes), pad or crop by ``padding =
   (x_lo, x_hi, y_lo, y_hi)`` (negative values crop), then filter in valid mode with ``up_filter`` (gain
   ``up²``: ``up`` per separable pass);
3. leaky ReLU (``slope``), × ``gain``, then clamp to ±``clamp``;
4. filter in valid mode with ``down_filter`` (gain 1; separable ``[T]`` or radial ``[T, T]``) and keep samples
   ``0, down, 2·down, …``.

A filter of ``None`` is the identity. All filters here are symmetric, so convolution and correlation agree;
the code convolves (as the official ``upfirdn2d``). Output size per axis:
``(in·up + lo + hi − (T_up − 1) − (T_down − 1) + down − 1) // down``.

**How it is computed.** Step 2 never multiplies the inserted zeros: along each axis, output phase ``r`` of
the zero-inserted, filtered signal is an ordinary convolution of the *input* with the taps ``f[up·k + r]``,
so one depthwise ``conv`` with ``up`` outputs per channel (one per phase) computes all phases, which are
then interleaved and padded/cropped. Step 4 is a strided depthwise convolution that computes only the kept
samples. Everything is whole-tensor ``conv2d``/``pad``/``view`` work, on CPU and CUDA alike; nothing loops
over pixels.
``bench/filtered_lrelu.py`` measures this against :func:`reference_filtered_lrelu` (the textbook
zero-insert / full-rate filter / subsample pipeline, kept here for tests and benchmarks).

**No host synchronisation, no graph break.** Off the CPU (and whenever ``torch.compile`` traces it) the
clamp is unconditional: deciding whether it is needed would read a value back from the device every layer
and branch on data, which breaks a compiled graph and rules out CUDA graphs. The dense filter matrices
depend only on the layer's geometry: a layer builds them once (:func:`filter_matrices`) and passes them in.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.signal
import scipy.special
import torch
import torch.nn.functional as F

Padding = tuple[int, int, int, int]


# ---- filter design (scipy, float64, then float32) ---------------------------------------------------------

def design_lowpass_filter(taps: int, cutoff: float, width: float, sampling_rate: float,
                          radial: bool = False) -> torch.Tensor | None:
    """A Kaiser-windowed low-pass filter: ``[taps]`` (separable) or ``[taps, taps]`` (``radial``); ``None`` for 1 tap.

    Separable: scipy's ``firwin`` (windowed sinc, Kaiser beta from the transition ``width``, sum 1).
    Radial: the jinc ``J1(2π·cutoff·r) / (π·r)`` on the tap grid, times the outer product of the same Kaiser
    window, normalised to sum 1 (taps are even, so ``r`` is never 0).
    """
    if taps < 1:
        raise ValueError(f"a filter needs at least one tap, got {taps}")
    if taps == 1:
        return None
    if not radial:
        return torch.as_tensor(scipy.signal.firwin(taps, cutoff, width=width, fs=sampling_rate), dtype=torch.float32)
    positions = (np.arange(taps) - (taps - 1) / 2) / sampling_rate
    radius = np.hypot(*np.meshgrid(positions, positions))
    jinc = scipy.special.j1(2 * math.pi * cutoff * radius) / (math.pi * radius)
    beta = scipy.signal.kaiser_beta(scipy.signal.kaiser_atten(taps, width / (sampling_rate / 2)))
    window = np.kaiser(taps, beta)
    kernel = jinc * np.outer(window, window)
    return torch.as_tensor(kernel / kernel.sum(), dtype=torch.float32)


# ---- the fast path --------------------------------------------------------------------------------------

def _phase_weights(taps: torch.Tensor, up: int, channels: int, dtype: torch.dtype) -> torch.Tensor:
    """Depthwise polyphase weights ``[C·up, 1, K]`` of ``taps`` (gain ``up``; zero-padded to ``K·up`` taps).

    Phase ``r`` of the transposed convolution, ``c[up·q + r] = Σ_k x[q − k]·f[up·k + r]``, is a correlation
    of ``x`` (padded by ``K − 1``) with the reversed taps ``f[up·(K − 1 − k) + r]``.
    """
    per_phase = -(-taps.numel() // up)
    padded = F.pad(taps * up, (0, per_phase * up - taps.numel()))
    weight = padded.view(per_phase, up).t().flip(1)  # [up, K]
    return weight.repeat(channels, 1).unsqueeze(1).to(dtype)


def _upsample_width(x: torch.Tensor, taps: torch.Tensor, up: int, lo: int, hi: int) -> torch.Tensor:
    """Zero-insert ×``up``, pad ``(lo, hi)``, convolve with ``taps`` (gain ``up``) along the last axis."""
    batch, channels, height, width = x.shape
    weight = _phase_weights(taps, up, channels, x.dtype)
    per_phase = weight.shape[-1]
    phases = F.conv2d(F.pad(x, (per_phase - 1, per_phase - 1)), weight.unsqueeze(2), groups=channels)
    full = phases.view(batch, channels, up, height, -1).permute(0, 1, 3, 4, 2).reshape(batch, channels, height, -1)
    start = taps.numel() - 1 - lo  # output m is full-convolution sample m + T − 1 − lo
    out_width = width * up + lo + hi - taps.numel() + 1
    return F.pad(full, (-start, out_width - full.shape[3] + start))


def _upsample_height(x: torch.Tensor, taps: torch.Tensor, up: int, lo: int, hi: int) -> torch.Tensor:
    """:func:`_upsample_width` along the height (dim 2)."""
    batch, channels, height, width = x.shape
    weight = _phase_weights(taps, up, channels, x.dtype)
    per_phase = weight.shape[-1]
    phases = F.conv2d(F.pad(x, (0, 0, per_phase - 1, per_phase - 1)), weight.unsqueeze(3), groups=channels)
    full = phases.view(batch, channels, up, -1, width).permute(0, 1, 3, 2, 4).reshape(batch, channels, -1, width)
    start = taps.numel() - 1 - lo
    out_height = height * up + lo + hi - taps.numel() + 1
    return F.pad(full, (0, 0, -start, out_height - full.shape[2] + start))


#: Axes at most this long are filtered by one dense matrix product (BLAS beats a depthwise conv there: the
#: ~L² multiply-adds per row cost less than ~L·T through a convolution); longer axes use the convolutions.
MATMUL_MAX_LENGTH = 128


def upsampling_matrix(length: int, taps: torch.Tensor, up: int, lo: int, hi: int) -> torch.Tensor:
    """``[L, L_out]`` with ``row @ matrix`` = zero-insert ×``up``, pad ``(lo, hi)``, convolve with ``taps``·``up``."""
    count = taps.numel()
    out_length = length * up + lo + hi - count + 1
    index = (torch.arange(out_length, device=taps.device).view(1, -1) + (count - 1 - lo)
             - up * torch.arange(length, device=taps.device).view(-1, 1))
    valid = (index >= 0) & (index < count)
    return torch.where(valid, taps[index.clamp(0, count - 1)] * up, torch.zeros((), device=taps.device))


def downsampling_matrix(length: int, taps: torch.Tensor, down: int) -> torch.Tensor:
    """``[L, L_out]`` with ``row @ matrix`` = valid convolution with ``taps``, every ``down``-th sample kept."""
    count = taps.numel()
    out_length = (length - count) // down + 1
    offset = (torch.arange(length, device=taps.device).view(-1, 1)
              - down * torch.arange(out_length, device=taps.device).view(1, -1))
    valid = (offset >= 0) & (offset < count)
    return torch.where(valid, taps[(count - 1 - offset).clamp(0, count - 1)], torch.zeros((), device=taps.device))


def _along_both_axes(x: torch.Tensor, width_matrix: torch.Tensor, height_matrix: torch.Tensor) -> torch.Tensor:
    return torch.matmul(height_matrix.t().to(x.dtype), torch.matmul(x, width_matrix.to(x.dtype)))


def filter_matrices(up_filter: torch.Tensor | None, down_filter: torch.Tensor | None, up: int, down: int,
                    padding: Padding, size: int, scale: float = 1.0) -> dict[str, torch.Tensor]:
    """The dense matrices :func:`filtered_lrelu` uses on a square ``size`` × ``size`` input (with its up-filter
    ``scale``), built once: ``up_width``/``up_height`` where step 2 takes the matrix path, and
    ``down_width``/``down_height`` where step 4 does (keys absent where the convolutions run)."""
    matrices: dict[str, torch.Tensor] = {}
    x_lo, x_hi, y_lo, y_hi = padding
    if size <= MATMUL_MAX_LENGTH and not (up_filter is None and up == 1):
        taps = torch.ones(1) if up_filter is None else up_filter
        if taps.dim() == 1:
            taps = taps * math.sqrt(scale) if scale != 1.0 else taps
            matrices["up_width"] = upsampling_matrix(size, taps, up, x_lo, x_hi)
            matrices["up_height"] = upsampling_matrix(size, taps, up, y_lo, y_hi)
    taps_up = 1 if up_filter is None else up_filter.numel()
    width, height = size * up + x_lo + x_hi - taps_up + 1, size * up + y_lo + y_hi - taps_up + 1
    if down_filter is not None and down_filter.dim() == 1 and max(height, width) <= MATMUL_MAX_LENGTH:
        matrices["down_width"] = downsampling_matrix(width, down_filter, down)
        matrices["down_height"] = downsampling_matrix(height, down_filter, down)
    return matrices


def _matching(matrices: dict[str, torch.Tensor] | None, width_key: str, height_key: str, width: int,
              height: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The cached ``(width, height)`` matrices when they are there and fit an input of this size."""
    if matrices is None or width_key not in matrices:
        return None
    width_matrix, height_matrix = matrices[width_key], matrices[height_key]
    if width_matrix.shape[0] != width or height_matrix.shape[0] != height:
        return None
    return width_matrix, height_matrix


def upsample_filter(x: torch.Tensor, taps: torch.Tensor | None, up: int, padding: Padding,
                    scale: float = 1.0, matrices: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """Step 2: zero-insert ×``up``, pad/crop by ``padding``, separable ``taps`` with gain ``up²`` (``[N, C, H, W]``).

    ``scale`` multiplies the result at no cost (it is folded into the filter taps). ``matrices``: from
    :func:`filter_matrices` with the same filter, geometry and ``scale`` (used when they fit).
    """
    x_lo, x_hi, y_lo, y_hi = padding
    if taps is None and up == 1:
        x = F.pad(x, (x_lo, x_hi, y_lo, y_hi))
        return x * scale if scale != 1.0 else x
    if taps is None:
        taps = torch.ones(1, device=x.device)
    if taps.dim() != 1:
        raise ValueError("the up-sampling filter must be separable (1-D)")
    if scale != 1.0:
        taps = taps * math.sqrt(scale)  # once per axis
    height, width = x.shape[2:]
    if max(height, width) <= MATMUL_MAX_LENGTH:
        cached = _matching(matrices, "up_width", "up_height", width, height)
        if cached is not None:
            return _along_both_axes(x, *cached)
        return _along_both_axes(x, upsampling_matrix(width, taps, up, x_lo, x_hi),
                                upsampling_matrix(height, taps, up, y_lo, y_hi))
    return _upsample_height(_upsample_width(x, taps, up, x_lo, x_hi), taps, up, y_lo, y_hi)


def downsample_filter(x: torch.Tensor, taps: torch.Tensor | None, down: int,
                      matrices: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """Step 4: valid convolution with ``taps`` (``[T]`` separable or ``[T, T]``), keep every ``down``-th sample
    (``matrices`` as in :func:`upsample_filter`)."""
    channels, height, width = x.shape[1:]
    if taps is None:
        return x[:, :, ::down, ::down] if down > 1 else x
    kernel = taps.flip(list(range(taps.dim()))).to(x.dtype)
    if taps.dim() == 2:
        return F.conv2d(x, kernel.expand(channels, 1, *kernel.shape), stride=down, groups=channels)
    if max(height, width) <= MATMUL_MAX_LENGTH:
        cached = _matching(matrices, "down_width", "down_height", width, height)
        if cached is not None:
            return _along_both_axes(x, *cached)
        return _along_both_axes(x, downsampling_matrix(width, taps, down), downsampling_matrix(height, taps, down))
    count = kernel.numel()
    x = F.conv2d(x, kernel.view(1, 1, 1, count).expand(channels, 1, 1, count), stride=(1, down), groups=channels)
    return F.conv2d(x, kernel.view(1, 1, count, 1).expand(channels, 1, count, 1), stride=(down, 1), groups=channels)


def activate(x: torch.Tensor, gain: float, slope: float, clamp: float | None) -> torch.Tensor:
    """Step 3: leaky ReLU (``slope``; 1 = linear), × ``gain``, clamp to ±``clamp`` (after the gain).

    On the CPU in eager mode the clamp runs only when a value exceeds it (one read-only pass decides; the
    result and its gradient are the same, but the clamp's forward and backward passes at the high rate are
    skipped in the usual case, ``conv_clamp`` 256; measured on the CPU only). On any other device, and while
    ``torch.compile`` traces, it always runs: the decision would be a host sync and a data-dependent branch.
    """
    if slope != 1.0:
        x = F.leaky_relu(x, slope)
    if gain != 1.0:
        x = x * gain
    if clamp is not None:
        if x.device.type != "cpu" or torch.compiler.is_compiling():
            return x.clamp(-clamp, clamp)
        low, high = torch.aminmax(x.detach())
        if bool(high > clamp) or bool(low < -clamp):
            x = x.clamp(-clamp, clamp)
    return x


def filtered_lrelu(x: torch.Tensor, bias: torch.Tensor | None, up_filter: torch.Tensor | None,
                   down_filter: torch.Tensor | None, up: int, down: int, padding: Padding,
                   gain: float = math.sqrt(2.0), slope: float = 0.2, clamp: float | None = None,
                   matrices: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """Bias, up-sample + filter, leaky ReLU·gain + clamp, filter + down-sample (see the module docstring).

    ``matrices``: :func:`filter_matrices` of this geometry with ``scale = gain`` if ``gain > 0`` else 1."""
    if x.dim() != 4:
        raise ValueError(f"filtered_lrelu needs [N, C, H, W], got {tuple(x.shape)}")
    if bias is not None:
        x = x + bias.to(x.dtype).view(1, -1, 1, 1)
    if gain > 0:  # leaky ReLU is positively homogeneous: the gain moves into the up-filter taps
        x = activate(upsample_filter(x, up_filter, up, padding, scale=gain, matrices=matrices), 1.0, slope, clamp)
    else:
        x = activate(upsample_filter(x, up_filter, up, padding, matrices=matrices), gain, slope, clamp)
    return downsample_filter(x, down_filter, down, matrices)


# ---- the textbook pipeline (tests and benchmarks) -------------------------------------------------------

def reference_filtered_lrelu(x: torch.Tensor, bias: torch.Tensor | None, up_filter: torch.Tensor | None,
                             down_filter: torch.Tensor | None, up: int, down: int, padding: Padding,
                             gain: float = math.sqrt(2.0), slope: float = 0.2,
                             clamp: float | None = None) -> torch.Tensor:
    """The same operation done literally: materialise the zero-inserted signal, pad, filter every sample
    at the high rate with the full 2-D kernel (outer product for separable filters), then subsample."""
    batch, channels, height, width = x.shape
    if bias is not None:
        x = x + bias.view(1, -1, 1, 1)
    inserted = x.new_zeros(batch, channels, height * up, width * up)
    inserted[:, :, ::up, ::up] = x
    x_lo, x_hi, y_lo, y_hi = padding
    x = F.pad(inserted, (x_lo, x_hi, y_lo, y_hi))
    x = _full_rate_filter(x, up_filter, gain=float(up * up))
    x = F.leaky_relu(x, slope) * gain
    x = x if clamp is None else x.clamp(-clamp, clamp)
    x = _full_rate_filter(x, down_filter, gain=1.0)
    return x[:, :, ::down, ::down]


def _full_rate_filter(x: torch.Tensor, taps: torch.Tensor | None, gain: float) -> torch.Tensor:
    if taps is None:
        return x * gain if gain != 1.0 else x
    kernel = torch.outer(taps, taps) if taps.dim() == 1 else taps
    kernel = (kernel * gain).flip(0, 1)
    channels = x.shape[1]
    return F.conv2d(x, kernel.view(1, 1, *kernel.shape).repeat(channels, 1, 1, 1), groups=channels)
