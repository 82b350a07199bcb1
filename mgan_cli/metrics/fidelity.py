"""Full-reference pixel fidelity: PSNR and SSIM (Wang et al. 2004) with scikit-image's conventions."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mgan_cli.metrics._common import DATA_RANGE, check_pair, prepare

#: Gaussian window: σ = 1.5 truncated at 3.5 σ, i.e. radius ``int(3.5 * 1.5 + 0.5)`` = 5, 11 taps.
SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5
SSIM_RADIUS = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)
SSIM_WINDOW = 2 * SSIM_RADIUS + 1
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def gaussian_kernel1d(sigma: float, radius: int, *, dtype: torch.dtype = torch.float64,
                      device: torch.device | None = None) -> Tensor:
    """Normalised ``exp(-x² / 2σ²)`` for ``x = -radius..radius`` (scipy.ndimage's Gaussian), shape ``[2r+1]``."""
    x = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def symmetric_indices(length: int, before: int, after: int, device: torch.device | None = None) -> Tensor:
    """Indices that pad a ``length``-long axis by half-sample symmetric reflection (``d c b a | a b c d``).

    That is scipy.ndimage's ``mode='reflect'`` and numpy's ``mode='symmetric'``; it works for any pad
    width, repeating the reflection when the pad is longer than the axis.
    """
    positions = torch.arange(-before, length + after, device=device)
    period = 2 * length
    folded = torch.remainder(positions, period)
    return torch.where(folded < length, folded, period - 1 - folded)


def _filter_axis(x: Tensor, weights: list[float], dim: int) -> Tensor:
    """Correlate ``x`` with ``weights`` along ``dim`` (same size, half-sample-reflected borders).

    A sum of shifted slices: for float64 on the CPU several times faster than a grouped convolution.
    """
    radius = (len(weights) - 1) // 2
    length = x.shape[dim]
    padded = x.index_select(dim, symmetric_indices(length, radius, radius, x.device))
    out = padded.narrow(dim, 0, length) * weights[0]
    for offset in range(1, len(weights)):
        out.add_(padded.narrow(dim, offset, length), alpha=weights[offset])
    return out


def _separable_filter(x: Tensor, kernel: Tensor) -> Tensor:
    """Filter the last two axes of ``x`` with ``kernel`` along H then W, reflect-padded (same size)."""
    weights = kernel.tolist()
    return _filter_axis(_filter_axis(x, weights, -2), weights, -1)


@torch.no_grad()
def psnr(image: Tensor, reference: Tensor, *, crop_border: int = 0, y_channel: bool = False) -> Tensor:
    """PSNR in dB of each image against its reference, with data range 255.

    Args:
        image, reference: ``[N, 3, H, W]`` RGB or ``[N, 1, H, W]`` gray, uint8 or float in [0, 255],
            same shape. Computed in float64 on ``image``'s device.
        crop_border: pixels dropped at each edge before comparing (BasicSR's ``crop_border``).
        y_channel: compare the BT.601 luma ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` (unrounded,
            as BasicSR's ``calculate_psnr(..., test_y_channel=True)``) instead of all RGB channels.

    Returns:
        float64 ``[N]``: ``10 log10(255² / MSE)``, the MSE taken over every pixel and channel (as
        ``skimage.metrics.peak_signal_noise_ratio(..., data_range=255)``). Identical images give ``+inf``.
    """
    check_pair(image, reference)
    a = prepare(image, crop_border=crop_border, y_channel=y_channel)
    b = prepare(reference, crop_border=crop_border, y_channel=y_channel, device=a.device)
    mse = (a - b).square().mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(DATA_RANGE**2 / mse)


@torch.no_grad()
def ssim(image: Tensor, reference: Tensor, *, crop_border: int = 0, y_channel: bool = False) -> Tensor:
    """Mean SSIM of each image against its reference (Gaussian-weighted, Wang et al. 2004).

    Matches ``skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=255, channel_axis=-1)``: local statistics from an 11-tap
    Gaussian (σ = 1.5, truncated at 3.5 σ), images extended by half-sample reflection at the borders,
    K1 = 0.01, K2 = 0.03, population (not sample) covariances; the SSIM map is averaged after dropping
    the window radius (5 pixels) at every edge; RGB gives the mean of the three channel SSIMs.

    Args:
        image, reference: ``[N, 3, H, W]`` RGB or ``[N, 1, H, W]`` gray, uint8 or float in [0, 255],
            same shape. Computed in float64 on ``image``'s device.
        crop_border: pixels dropped at each edge first (BasicSR's ``crop_border``), before SSIM's own
            5-pixel margin.
        y_channel: compare only the BT.601 luma (unrounded; see :func:`psnr`).

    Returns:
        float64 ``[N]`` in [-1, 1]; NaN where the (cropped) image is smaller than the 11×11 window,
        where scikit-image refuses to compute.
    """
    check_pair(image, reference)
    a = prepare(image, crop_border=crop_border, y_channel=y_channel)
    b = prepare(reference, crop_border=crop_border, y_channel=y_channel, device=a.device)
    batch, height, width = a.shape[0], a.shape[2], a.shape[3]
    if min(height, width) < SSIM_WINDOW or batch == 0:
        return torch.full((batch,), math.nan, dtype=torch.float64, device=a.device)
    kernel = gaussian_kernel1d(SSIM_SIGMA, SSIM_RADIUS, device=a.device)
    # The filtering is memory-bound: on the CPU one image at a time stays in cache (3-4x faster than the
    # whole batch at 256x256); on a GPU the whole batch at once.
    chunk = batch if a.device.type == "cuda" else 1
    return torch.cat([_mean_ssim(a[i:i + chunk], b[i:i + chunk], kernel) for i in range(0, batch, chunk)])


def _mean_ssim(a: Tensor, b: Tensor, kernel: Tensor) -> Tensor:
    """Mean SSIM of float64 ``[n, C, H, W]`` pairs (H, W ≥ the window), averaged over channels → ``[n]``."""
    channels, height, width = a.shape[1:]
    # One filter pass over the five local moments of every channel: [n, 5*C, H, W].
    moments = torch.cat([a, b, a * a, b * b, a * b], dim=1)
    ux, uy, uxx, uyy, uxy = _separable_filter(moments, kernel).split(channels, dim=1)
    vx = uxx - ux * ux
    vy = uyy - uy * uy
    vxy = uxy - ux * uy
    c1 = (SSIM_K1 * DATA_RANGE) ** 2
    c2 = (SSIM_K2 * DATA_RANGE) ** 2
    ssim_map = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    r = SSIM_RADIUS
    per_channel = ssim_map[..., r:height - r, r:width - r].mean(dim=(2, 3))
    return per_channel.mean(dim=1)
