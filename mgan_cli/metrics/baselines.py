"""What a user gets without mgan: one classical baseline per task, scored against the same reference.

A baseline maps the observed image (uint8 ``[3, r, r]``, r = the degradation's observed size), the mask
(float ``[1, R, R]`` in [0, 1], 1 = missing, or ``None``) and the generator's resolution R to a uint8
``[3, R, R]`` image. Tasks name theirs (:attr:`mgan_cli.config.tasks.Task.baseline`); the report stores its
``baseline_psnr``, ``baseline_ssim`` and ``baseline_lpips`` next to mgan's values.

=========  ============  ==========================================================================
task       baseline      what it is
=========  ============  ==========================================================================
superres   ``bicubic``   the input up-sampled to R with Pillow's bicubic filter (a = −0.5, as MATLAB)
colorize   ``observed``  the grey input itself
denoise    ``observed``  the noisy input itself
inpaint    ``telea``     the input with every pixel the mask touches filled by OpenCV's Telea method
invert     none          (the input is the reference)
=========  ============  ==========================================================================
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from mgan_cli.errors import ConfigurationError
from mgan_cli.utils.registry import Registry

#: radius (pixels) of the neighbourhood Telea's method fills each missing pixel from (OpenCV's usual 3)
TELEA_RADIUS = 3


@dataclass(frozen=True)
class Baseline:
    """A registered baseline: ``make(observed, mask, resolution) -> uint8 [3, R, R]`` (see the module)."""

    name: str
    description: str
    make: Callable[[torch.Tensor, torch.Tensor | None, int], torch.Tensor]


BASELINES: Registry[Baseline] = Registry("baseline")


def _register(name: str, description: str) -> Callable[[Callable[..., torch.Tensor]], Callable[..., torch.Tensor]]:
    def add(make: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        BASELINES.register(name)(Baseline(name, description, make))
        return make

    return add


def _check_observed(observed: torch.Tensor) -> None:
    if observed.dtype != torch.uint8 or observed.dim() != 3 or observed.shape[0] != 3:
        raise ValueError(f"a baseline takes a uint8 [3, H, W] image, got {observed.dtype} {tuple(observed.shape)}")


def _to_pil(pixels: torch.Tensor) -> Image.Image:
    return Image.fromarray(pixels.permute(1, 2, 0).cpu().numpy(), "RGB")


def _from_array(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(array, dtype=np.uint8)).permute(2, 0, 1).contiguous()


@_register("observed", "the input itself")
def observed_as_is(observed: torch.Tensor, mask: torch.Tensor | None, resolution: int) -> torch.Tensor:
    """The observed image unchanged (colourisation: the grey input; denoising: the noisy input)."""
    _check_observed(observed)
    if observed.shape[-1] != resolution or observed.shape[-2] != resolution:
        raise ConfigurationError(f"baseline 'observed' needs a {resolution}x{resolution} input, got "
                                 f"{observed.shape[-1]}x{observed.shape[-2]}")
    return observed.cpu().clone()


@_register("bicubic", "bicubic up-sampling of the input (Pillow)")
def bicubic_upsampling(observed: torch.Tensor, mask: torch.Tensor | None, resolution: int) -> torch.Tensor:
    """The observed (low-resolution) image resized to ``resolution`` with Pillow's bicubic filter."""
    _check_observed(observed)
    resized = _to_pil(observed).resize((resolution, resolution), Image.Resampling.BICUBIC)
    return _from_array(np.asarray(resized))


@_register("telea", f"OpenCV Telea inpainting of the masked pixels (radius {TELEA_RADIUS})")
def telea_inpainting(observed: torch.Tensor, mask: torch.Tensor | None, resolution: int) -> torch.Tensor:
    """Every pixel with mask > 0 (fully or partly missing) filled by Telea's fast marching method."""
    import cv2  # opencv-python-headless; imported here so that only inpainting runs pay for it

    _check_observed(observed)
    if mask is None:
        raise ConfigurationError("baseline 'telea' needs the inpainting mask")
    missing = (mask[0].cpu().numpy() > 0).astype(np.uint8) * 255
    if missing.shape != tuple(observed.shape[1:]):
        raise ConfigurationError(f"mask {missing.shape} and image {tuple(observed.shape[1:])} differ in size")
    filled = cv2.inpaint(np.ascontiguousarray(observed.permute(1, 2, 0).cpu().numpy()), missing, TELEA_RADIUS,
                         cv2.INPAINT_TELEA)
    return _from_array(filled)


def make_baselines(name: str, observed: torch.Tensor, masks: torch.Tensor | None, resolution: int) -> torch.Tensor:
    """The baseline ``name`` of a batch: observed uint8 ``[B, 3, r, r]``, masks ``[B, 1, R, R]`` or ``None``
    -> uint8 ``[B, 3, R, R]``."""
    baseline = BASELINES.get(name)
    return torch.stack([baseline.make(observed[i], None if masks is None else masks[i], resolution)
                        for i in range(observed.shape[0])])


#: metrics a baseline is scored with (the full-reference ones), and whether higher is better
BASELINE_METRICS = {"psnr": True, "ssim": True, "lpips": False}


def baseline_summary(rows: list[dict[str, Any]]) -> dict[str, float | int | None]:
    """Per metric: ``mean_baseline_<m>`` over the rows that have it, and ``gain_<m>``, mgan's mean
    improvement over the baseline on the rows that have both values (PSNR, SSIM: mgan − baseline;
    LPIPS: baseline − mgan; positive = mgan is better). Infinite values are left out of both."""
    summary: dict[str, float | int | None] = {}
    for name, higher_is_better in BASELINE_METRICS.items():
        key = f"baseline_{name}"
        values = [r[key] for r in rows if _finite(r.get(key))]
        summary[f"mean_{key}"] = sum(values) / len(values) if values else None
        pairs = [(r[name], r[key]) for r in rows if _finite(r.get(name)) and _finite(r.get(key))]
        gains = [(m - b) if higher_is_better else (b - m) for m, b in pairs]
        summary[f"gain_{name}"] = sum(gains) / len(gains) if gains else None
        summary[f"count_gain_{name}"] = len(gains)
    return summary


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def score_baselines(name: str | None, observed: Sequence[torch.Tensor], masks: Sequence[torch.Tensor | None],
                    references: Sequence[torch.Tensor | None], resolution: int, metrics: Sequence[str],
                    device: torch.device) -> tuple[torch.Tensor | None, list[dict[str, float | str | None]], list[str]]:
    """A batch's baseline images and scores: observed float ``[3, r, r]`` in [-1, 1], masks ``[1, R, R]`` or
    ``None``, references uint8 ``[3, R, R]`` or ``None`` -> (uint8 ``[B, 3, R, R]`` or ``None`` when the task has
    no baseline, per image ``{"baseline_<metric>": value}`` for those with a reference, warnings)."""
    from mgan_cli.metrics.measure import measure
    from mgan_cli.utils.imageio import to_uint8

    scores: list[dict[str, float | str | None]] = [{} for _ in observed]
    if name is None or not observed:
        return None, scores, []
    stacked_masks = None if masks[0] is None else torch.stack(list(masks))  # type: ignore[arg-type]
    images = make_baselines(name, to_uint8(torch.stack(list(observed))), stacked_masks, resolution)
    names = [m for m in metrics if m in BASELINE_METRICS]
    with_reference = [i for i, reference in enumerate(references) if reference is not None]
    if not names or not with_reference:
        return images, scores, []
    measured, warnings = measure(images[with_reference], [references[i] for i in with_reference], names, device)
    for i, row in zip(with_reference, measured, strict=True):
        scores[i] = {f"baseline_{key}": value for key, value in row.items()}
    return images, scores, [f"baseline: {message}" for message in warnings]
