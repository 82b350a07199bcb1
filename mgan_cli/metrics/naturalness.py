"""NIQE, the Natural Image Quality Evaluator (Mittal, Soundararajan, Bovik 2013), no-reference.

Follows the MATLAB reference release as re-implemented by BasicSR's ``calculate_niqe(img, crop_border,
convert_to='y')``: the image's BT.601 luma, rounded to integers, is cut into whole 96×96 blocks (the
remainder at the right and bottom is dropped); each block gives 18 features (fits of a generalised
Gaussian to the locally normalised luminance, and of asymmetric generalised Gaussians to its products with
four shifted copies) at full size and at half size (MATLAB-compatible antialiased bicubic resize); a
multivariate Gaussian fitted to the blocks' 36 features is compared with the pristine model (LIVE's
parameters, registry entry ``niqe-pristine``). Lower is better.

Precision: float64 throughout, except that the local mean/variance normalisation is rounded to single
precision as the references effectively compute it (see :func:`_normalise`): baboon.png gives 5.7295736
(MATLAB 5.72957338, BasicSR 5.7295726). Luma is rounded half to even, like numpy (MATLAB's uint8 Y rounds
exact halves away from zero; they are rare).

Memory is bounded by the image's width, not its area: the image is processed in bands of
:data:`BAND_BLOCKS` block rows (with the rows the 7×7 normalisation window and the half-size resize read
around each band), columns resized in windows (:func:`~mgan_cli.metrics.imresize.resize_window`); a
band's features are those of the whole image's blocks, so the value is the whole image's.

Undefined cases give NaN: fewer than two whole 96×96 blocks (the covariance of the features needs two;
BasicSR fails on such images and the MATLAB release computes a degenerate value), or fewer than two blocks
whose features are finite (e.g. flat images).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mgan_cli.metrics._common import check_batch, crop, rgb_to_y, to_float64
from mgan_cli.metrics.imresize import resize_window
from mgan_cli.weights.store import weight_path

NIQE_BLOCK = 96
#: block rows per band (see the module docstring); columns are resized this many blocks at a time
BAND_BLOCKS = 4
_WINDOW_HALO = 3  # rows each side the 7×7 local-statistics window reads
NIQE_WEIGHTS = "niqe-pristine"
#: Shifts of the pairwise products (horizontal, vertical, two diagonals), as ``(rows, cols)``.
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


@dataclass(frozen=True)
class NiqePristine:
    """The pristine model: ``mu`` [36], ``cov`` [36, 36], ``window`` [7, 7] (local-statistics Gaussian), float64."""

    mu: Tensor
    cov: Tensor
    window: Tensor

    def to(self, device: torch.device) -> NiqePristine:
        return NiqePristine(self.mu.to(device), self.cov.to(device), self.window.to(device))


@lru_cache(maxsize=1)
def _pristine_cpu() -> NiqePristine:
    with np.load(weight_path(NIQE_WEIGHTS)) as data:
        return NiqePristine(
            mu=torch.from_numpy(np.asarray(data["mu_pris_param"], dtype=np.float64).reshape(-1)),
            cov=torch.from_numpy(np.asarray(data["cov_pris_param"], dtype=np.float64)),
            window=torch.from_numpy(np.asarray(data["gaussian_window"], dtype=np.float64)),
        )


def load_pristine(device: torch.device | str = "cpu") -> NiqePristine:
    """The pristine parameters from ``weight_path("niqe-pristine")`` on ``device`` (read once per process).

    Raises :class:`~mgan_cli.errors.WeightsNotFoundError` (saying how to get the file) when unavailable.
    """
    return _pristine_cpu().to(torch.device(device))


@lru_cache(maxsize=8)
def _aggd_tables(device: torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The shape grid α = 0.2, 0.201, …, 10 with ρ(α) = Γ(2/α)² / (Γ(1/α) Γ(3/α)) and Γ(k/α), k = 1, 2, 3."""
    grid = np.arange(0.2, 10.001, 0.001)  # the reference's grid, 9801 values, built the same way
    g1 = np.array([math.gamma(1.0 / a) for a in grid])
    g2 = np.array([math.gamma(2.0 / a) for a in grid])
    g3 = np.array([math.gamma(3.0 / a) for a in grid])
    rho = g2**2 / (g1 * g3)  # strictly increasing in α, so the nearest value can be found by bisection
    return tuple(torch.from_numpy(t).to(device) for t in (grid, rho, g1, g2, g3))  # type: ignore[return-value]


def _aggd_fit(x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Moment-matching AGGD fit of every row of ``x`` [R, M]: returns α, β_left, β_right and the mean, each [R].

    α is the grid value whose ρ(α) is nearest (first on ties) to the normalised moment ratio, as the
    reference's ``argmin`` over the grid; rows without negative (or positive) values give NaN βs and, like
    the reference's argmin over NaN, α = 0.2.
    """
    grid, rho, g1, g2, g3 = _aggd_tables(x.device)
    square = x * x
    negative, positive = x < 0, x > 0
    left_std = torch.sqrt((square * negative).sum(1) / negative.sum(1))
    right_std = torch.sqrt((square * positive).sum(1) / positive.sum(1))
    gamma_hat = left_std / right_std
    r_hat = x.abs().mean(1) ** 2 / square.mean(1)
    r_hat_norm = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1) ** 2
    upper = torch.searchsorted(rho, r_hat_norm.contiguous()).clamp(1, rho.numel() - 1)
    lower = upper - 1
    pick_lower = (rho[lower] - r_hat_norm) ** 2 <= (rho[upper] - r_hat_norm) ** 2
    index = torch.where(pick_lower, lower, upper)
    index = torch.where(torch.isfinite(r_hat_norm), index, torch.zeros_like(index))
    alpha = grid[index]
    ratio = torch.sqrt(g1[index] / g3[index])
    beta_left, beta_right = left_std * ratio, right_std * ratio
    mean = (beta_right - beta_left) * g2[index] / g1[index]
    return alpha, beta_left, beta_right, mean


def _block_features(normalised: Tensor, block: int) -> Tensor:
    """18 features of each ``block``×``block`` tile of ``normalised`` [N, H, W] → [N, tiles, 18]."""
    n, height, width = normalised.shape
    tiles = normalised.reshape(n, height // block, block, width // block, block).permute(0, 1, 3, 2, 4)
    tiles = tiles.reshape(n, -1, block, block)
    flat = tiles.reshape(-1, block * block)
    alpha, beta_left, beta_right, _ = _aggd_fit(flat)
    features = [alpha, (beta_left + beta_right) / 2]
    for shift in _SHIFTS:
        # The reference shifts circularly within the block (MATLAB circshift / numpy roll).
        product = (tiles * torch.roll(tiles, shifts=shift, dims=(-2, -1))).reshape(-1, block * block)
        alpha, beta_left, beta_right, mean = _aggd_fit(product)
        features += [alpha, mean, beta_left, beta_right]
    return torch.stack(features, dim=1).reshape(n, -1, 18)


def _normalise(luma: Tensor, window: Tensor) -> Tensor:
    """Mean-subtracted contrast-normalised ``(I - μ) / (σ + 1)`` of [N, H, W], local statistics from ``window``.

    ``window`` is applied as a convolution with edge replication (scipy.ndimage ``convolve``, mode
    'nearest'; MATLAB ``imfilter(..., 'replicate')``). The filtered moments are rounded to single precision
    and σ and the quotient are computed in single precision, as the references effectively do (MATLAB's
    ``imfilter``, and BasicSR on float32 images): ``E[I²] − μ²`` cancels badly in flat regions, and the
    AGGD grid search is discontinuous, so this rounding moves NIQE by ~1e-4 (baboon.png: 5.7295736 with
    it, MATLAB 5.72957338; 5.72996 in plain double precision). The result is returned as float64.
    """
    pad = window.shape[-1] // 2
    kernel = window.flip(0, 1)[None, None]
    stack = torch.stack([luma, luma * luma], dim=1).reshape(-1, 1, *luma.shape[-2:])
    padded = F.pad(stack, (pad, pad, pad, pad), mode="replicate")
    step = BAND_BLOCKS * NIQE_BLOCK  # columns at a time: the convolution's unfolded copy stays small
    filtered = torch.cat([F.conv2d(padded[..., left:min(left + step, luma.shape[-1]) + 2 * pad], kernel)
                          for left in range(0, luma.shape[-1], step)], dim=-1)
    filtered = filtered.reshape(luma.shape[0], 2, *luma.shape[-2:]).float()
    mu, mu_sq = filtered[:, 0], filtered[:, 1]
    sigma = torch.sqrt((mu_sq - mu * mu).abs())
    return ((luma.float() - mu) / (sigma + 1)).double()


def niqe_blocks(height: int, width: int, crop_border: int = 0) -> int:
    """How many whole 96×96 blocks NIQE uses for an ``height``×``width`` image after ``crop_border``."""
    usable_h, usable_w = height - 2 * crop_border, width - 2 * crop_border
    return max(usable_h, 0) // NIQE_BLOCK * (max(usable_w, 0) // NIQE_BLOCK)


@torch.no_grad()
def niqe(images: Tensor, *, crop_border: int = 0, pristine: NiqePristine | None = None) -> Tensor:
    """NIQE of each image (no reference; lower is better).

    Args:
        images: ``[N, 3, H, W]`` RGB or ``[N, 1, H, W]`` luma, uint8 or float in [0, 255]. RGB becomes
            BT.601 luma ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` (BasicSR's ``convert_to='y'``),
            then is rounded to integers (half to even, as numpy). Computed in float64 on ``images``' device.
        crop_border: pixels dropped at each edge before the blocks are cut.
        pristine: the pristine model (default: :func:`load_pristine`, which may raise
            :class:`~mgan_cli.errors.WeightsNotFoundError`).

    Returns:
        float64 ``[N]``; NaN where NIQE is undefined: fewer than two whole 96×96 blocks after cropping
        (see :func:`niqe_blocks`), or fewer than two blocks with finite features (flat images).
    """
    check_batch(images)
    source = crop(images, crop_border)  # a view: each band is converted on its own
    n, _, height, width = source.shape
    blocks_h, blocks_w = height // NIQE_BLOCK, width // NIQE_BLOCK
    result = torch.full((n,), math.nan, dtype=torch.float64, device=images.device)
    if blocks_h * blocks_w < 2 or n == 0:
        return result
    params = (pristine or load_pristine()).to(images.device)
    for i in range(n):
        features = _image_features(source[i:i + 1, :, : blocks_h * NIQE_BLOCK, : blocks_w * NIQE_BLOCK],
                                   params.window)
        mu = torch.nanmean(features, dim=0)
        valid = features[~torch.isnan(features).any(dim=1)]
        if valid.shape[0] < 2:
            continue
        cov = torch.cov(valid.T)  # sample covariance (N - 1), as numpy.cov / MATLAB nancov
        diff = params.mu - mu
        inverse = torch.linalg.pinv((params.cov + cov) / 2)
        result[i] = torch.sqrt(diff @ inverse @ diff)
    return result


def _luma(source: Tensor, start: int, stop: int) -> Tensor:
    """Rounded BT.601 luma ``[1, stop - start, W]`` (float64) of rows ``start … stop - 1`` of ``source``."""
    return rgb_to_y(to_float64(source[:, :, start:stop])).round()[:, 0]


def _half_rows(source: Tensor, start: int, stop: int) -> Tensor:
    """Rows ``start … stop - 1`` of the half-size luma (MATLAB ``imresize(luma, 0.5)``) ``[1, rows, W / 2]``,
    reading only the full-size rows and columns they need."""
    height, width = source.shape[-2:]
    rows, first = resize_window(height, start, stop, 0.5)
    luma = rows @ _luma(source, first, first + rows.shape[1])
    step = BAND_BLOCKS * NIQE_BLOCK // 2
    out_width = math.ceil(width / 2)
    pieces = []
    for column in range(0, out_width, step):
        cols, left = resize_window(width, column, min(column + step, out_width), 0.5)
        pieces.append(luma[..., left:left + cols.shape[1]] @ cols.transpose(0, 1))
    return torch.cat(pieces, dim=-1)


def _image_features(source: Tensor, window: Tensor) -> Tensor:
    """The 36 features ``[blocks, 36]`` of one image ``[1, C, H, W]`` (whole blocks only), band by band."""
    height = source.shape[-2]
    half_height = height // 2
    bands = []
    for top in range(0, height, BAND_BLOCKS * NIQE_BLOCK):
        bottom = min(top + BAND_BLOCKS * NIQE_BLOCK, height)
        start, stop = max(top - _WINDOW_HALO, 0), min(bottom + _WINDOW_HALO, height)
        full = _normalise(_luma(source, start, stop), window)[:, top - start:bottom - start]
        half_top, half_bottom = top // 2, bottom // 2
        start, stop = max(half_top - _WINDOW_HALO, 0), min(half_bottom + _WINDOW_HALO, half_height)
        half = _normalise(_half_rows(source, start, stop), window)[:, half_top - start:half_bottom - start]
        bands.append(torch.cat([_block_features(full, NIQE_BLOCK), _block_features(half, NIQE_BLOCK // 2)], dim=2))
    return torch.cat(bands, dim=1)[0]
