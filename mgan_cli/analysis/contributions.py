"""Which latent code explains which region: each code's share of the composed feature map.

The composed feature at layer ℓ is ``F = Σ_n α_n ⊙ F_n`` (:mod:`mgan_cli.core.composition`). Code n's share at
a position (h, w) is the L1 size of its term over the channels, relative to all terms there:

    s_n(h, w) = Σ_c |α_nc F_nc(h, w)| / Σ_m Σ_c |α_mc F_mc(h, w)|

so shares are in [0, 1] and sum to 1 at every position. They are up-sampled (bilinear) from the layer's
H × W to the image and drawn as a colour map: each pixel takes the colour of its dominant code, brighter the
larger that code's share; the figure also shows each code's mean share with the same colours.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mgan_cli.generators.base import Generator
from mgan_cli.utils.atomic import write_atomic


@torch.no_grad()
def code_shares(generator: Generator, layer: int, space: str, codes: torch.Tensor, alphas: torch.Tensor,
                size: int) -> torch.Tensor:
    """Shares ``[B, N, size, size]`` (see the module) of codes ``[B, N, *code_shape]`` with importances
    ``[B, N, C]`` composed at ``layer``."""
    lower, _ = generator.split(layer, space)
    batch, count = codes.shape[:2]
    features = lower(codes.flatten(0, 1)).unflatten(0, (batch, count)).float()  # [B, N, C, H, W]
    if alphas.shape != features.shape[:3]:
        raise ValueError(f"alphas {tuple(alphas.shape)} do not match features {tuple(features.shape)}")
    magnitude = (features * alphas[..., None, None].float()).abs().sum(dim=2)  # [B, N, H, W]
    magnitude = F.interpolate(magnitude, size=(size, size), mode="bilinear", align_corners=False).clamp_min(0)
    total = magnitude.sum(dim=1, keepdim=True)
    uniform = torch.full_like(magnitude, 1.0 / count)
    return torch.where(total > 0, magnitude / total.clamp_min(1e-12), uniform)


def palette(count: int) -> np.ndarray:
    """``count`` distinct RGB colours in [0, 1] (matplotlib's tab20, then evenly spaced hues)."""
    from matplotlib import colormaps

    if count <= 20:
        return np.asarray(colormaps["tab20"].colors[:count])
    return np.asarray(colormaps["hsv"](np.linspace(0, 1, count, endpoint=False))[:, :3])


def colour_map(shares: np.ndarray) -> np.ndarray:
    """Shares ``[N, H, W]`` -> RGB ``[H, W, 3]`` in [0, 1]: the dominant code's colour, scaled by its share
    relative to the largest possible (1) and the smallest (1/N)."""
    count = shares.shape[0]
    dominant = shares.argmax(axis=0)
    strength = shares.max(axis=0)
    if count > 1:
        strength = (strength - 1.0 / count) / (1.0 - 1.0 / count)
    return palette(count)[dominant] * (0.35 + 0.65 * np.clip(strength, 0, 1))[..., None]


def write_figure(path: Path, observed: np.ndarray, restored: np.ndarray, shares: np.ndarray, title: str) -> Path:
    """A PNG of the input, the restoration, the colour map over the restoration and each code's mean share.

    ``observed``, ``restored``: uint8 ``[H, W, 3]``; ``shares``: ``[N, R, R]``."""
    from matplotlib.figure import Figure

    colours = colour_map(shares)
    count = shares.shape[0]
    figure = Figure(figsize=(13, 3.4), layout="constrained")
    axes = figure.subplots(1, 4, width_ratios=[1, 1, 1, 1.4])
    axes[0].imshow(observed, interpolation="nearest")
    axes[0].set_title("input")
    axes[1].imshow(restored, interpolation="nearest")
    axes[1].set_title("restored")
    axes[2].imshow(0.55 * colours + 0.45 * (restored.astype(np.float64) / 255.0).mean(axis=2, keepdims=True))
    axes[2].set_title("dominant code per pixel")
    for axis in axes[:3]:
        axis.set_axis_off()
    mean_share = shares.reshape(count, -1).mean(axis=1)
    axes[3].bar(np.arange(1, count + 1), mean_share, color=palette(count))
    if count <= 30:
        axes[3].set_xticks(np.arange(1, count + 1, 1 if count <= 10 else 5 if count > 15 else 2))
    axes[3].set_xlabel("code n")
    axes[3].set_ylabel("mean share of the composed feature")
    figure.suptitle(title)
    write_atomic(path, lambda handle: figure.savefig(handle, format="png", dpi=90))
    return path
