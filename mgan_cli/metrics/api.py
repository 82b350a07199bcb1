"""The metric registry and :func:`compute_metrics`, the entry point for reports and ``mgan metrics``.

Rows are plain dicts, one per image: ``{metric: value}`` for every requested metric, where a value is a
float, or ``None`` when the metric is undefined for that image; every ``None`` comes with
``"<metric>_reason"`` saying why (no reference, image too small, weights unavailable, ...).
PSNR of an image identical to its reference is ``math.inf``. JSON has no infinity: :func:`json_row`
writes it as the string ``"inf"`` (the run report's convention; any NaN becomes ``null``); CSV writes
``inf``, which spreadsheets and ``float()`` read back as infinity.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from mgan_cli.errors import ConfigurationError, WeightsError
from mgan_cli.metrics._common import check_batch, check_crop_border, check_pair
from mgan_cli.metrics.fidelity import SSIM_WINDOW, psnr, ssim
from mgan_cli.metrics.naturalness import NIQE_BLOCK, niqe, niqe_blocks
from mgan_cli.metrics.perceptual import LPIPS_BACKBONES, LPIPS_MIN_SIZE, lpips_distance
from mgan_cli.utils.devices import resolve_device
from mgan_cli.utils.jsonsafe import json_safe
from mgan_cli.utils.registry import Registry

DEFAULT_METRICS = ("psnr", "ssim", "lpips", "niqe")
NO_REFERENCE = "no reference image"


class MetricUnavailableWarning(UserWarning):
    """A metric could not be computed at all (e.g. its weights are missing); its values are ``None``."""


@dataclass(frozen=True)
class MetricOptions:
    """Settings shared by all metrics of one :func:`compute_metrics` call (see its docstring)."""

    y_channel: bool = False
    crop_border: int = 0
    lpips_net: str = "alex"


@dataclass(frozen=True)
class MetricValues:
    """One metric over a batch: ``values`` float64 ``[N]`` (NaN = undefined) and a reason for each NaN."""

    values: Tensor
    reasons: tuple[str | None, ...]


@dataclass(frozen=True)
class MetricSpec:
    """A registered metric.

    ``compute(images, references, options)`` takes float/uint8 ``[N, C, H, W]`` batches on the target
    device (``references`` is ``None`` for no-reference metrics) and returns :class:`MetricValues`.
    """

    name: str
    full_reference: bool
    higher_is_better: bool
    description: str
    compute: Callable[[Tensor, Tensor | None, MetricOptions], MetricValues]


METRICS: Registry[MetricSpec] = Registry("metric")


def _register(spec: MetricSpec) -> MetricSpec:
    return METRICS.register(spec.name)(spec)


def _with_reasons(values: Tensor, reason: str) -> MetricValues:
    """Attach ``reason`` to every NaN of ``values``."""
    nan = torch.isnan(values).tolist()
    return MetricValues(values, tuple(reason if is_nan else None for is_nan in nan))


def _size(images: Tensor, crop_border: int) -> str:
    """``WIDTHxHEIGHT`` after cropping (Pillow's order, as in every message of mgan)."""
    height, width = images.shape[-2:]
    return f"{width - 2 * crop_border}x{height - 2 * crop_border}"


def _psnr(images: Tensor, references: Tensor | None, options: MetricOptions) -> MetricValues:
    assert references is not None
    values = psnr(images, references, crop_border=options.crop_border, y_channel=options.y_channel)
    return MetricValues(values, (None,) * len(values))


def _ssim(images: Tensor, references: Tensor | None, options: MetricOptions) -> MetricValues:
    assert references is not None
    values = ssim(images, references, crop_border=options.crop_border, y_channel=options.y_channel)
    return _with_reasons(
        values, f"image ({_size(images, options.crop_border)}) smaller than the {SSIM_WINDOW}x{SSIM_WINDOW} "
        "SSIM window",
    )


def _lpips(images: Tensor, references: Tensor | None, options: MetricOptions) -> MetricValues:
    assert references is not None
    values = lpips_distance(images, references, net=options.lpips_net, crop_border=options.crop_border)
    size = LPIPS_MIN_SIZE[options.lpips_net]
    return _with_reasons(
        values, f"image ({_size(images, options.crop_border)}) smaller than LPIPS-{options.lpips_net} "
        f"accepts ({size}x{size})",
    )


def _niqe(images: Tensor, references: Tensor | None, options: MetricOptions) -> MetricValues:
    del references
    values = niqe(images, crop_border=options.crop_border)
    height, width = images.shape[-2:]
    if niqe_blocks(height, width, options.crop_border) < 2:
        reason = (f"image ({_size(images, options.crop_border)}) has fewer than two whole "
                  f"{NIQE_BLOCK}x{NIQE_BLOCK} blocks, NIQE needs at least two")
    else:
        reason = f"fewer than two {NIQE_BLOCK}x{NIQE_BLOCK} blocks have finite features (flat image?)"
    return _with_reasons(values, reason)


_register(MetricSpec("psnr", True, True, "peak signal-to-noise ratio in dB (data range 255)", _psnr))
_register(MetricSpec("ssim", True, True, "structural similarity, Gaussian window 11, σ 1.5", _ssim))
_register(MetricSpec("lpips", True, False, "LPIPS v0.1 perceptual distance (AlexNet; VGG optional)", _lpips))
_register(MetricSpec("niqe", False, False, "NIQE no-reference naturalness (MATLAB release parameters)", _niqe))

_warned: set[str] = set()


def _warn_once(message: str, on_warning: Callable[[str], None] | None) -> None:
    if message in _warned:
        return
    _warned.add(message)
    if on_warning is not None:
        on_warning(message)
    else:
        warnings.warn(message, MetricUnavailableWarning, stacklevel=3)


def metric_spec(name: str) -> MetricSpec:
    """The registered metric ``name``; an unknown name is a :class:`ConfigurationError` listing the known ones."""
    try:
        return METRICS.get(name)
    except KeyError as exc:
        raise ConfigurationError(str(exc.args[0])) from None


def compute_metrics(
    images: Tensor,
    references: Tensor | None = None,
    names: Sequence[str] = DEFAULT_METRICS,
    *,
    device: str | torch.device = "cpu",
    y_channel: bool = False,
    crop_border: int = 0,
    lpips_net: str = "alex",
    on_warning: Callable[[str], None] | None = None,
) -> list[dict[str, float | str | None]]:
    """Compute the metrics ``names`` for every image of a batch; one row dict per image.

    Args:
        images: ``[N, 3, H, W]`` RGB (or ``[N, 1, H, W]`` gray), uint8 or float with values in [0, 255].
        references: the ground truth, same shape, or ``None``: full-reference metrics (psnr, ssim, lpips)
            are then ``None`` with reason ``"no reference image"``.
        names: registered metric names (:data:`METRICS`), computed in this order.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"auto"`` (CUDA when available).
        y_channel: PSNR and SSIM on BT.601 luma instead of RGB (LPIPS always uses RGB; NIQE always luma).
        crop_border: pixels ignored at each edge, by every metric.
        lpips_net: ``"alex"`` or ``"vgg"``.
        on_warning: receives the message when a metric is unavailable (default: ``warnings.warn`` with
            :class:`MetricUnavailableWarning`); each distinct message is given once per process.

    Returns:
        ``[{"psnr": 27.3, "ssim": 0.81, "lpips": 0.12, "niqe": None, "niqe_reason": "..."}, ...]``:
        floats (PSNR may be ``math.inf``, see :func:`json_row`), ``None`` plus ``"<name>_reason"`` where
        undefined. If a metric's weights cannot be had (e.g. NIQE's pristine parameters), its values are
        ``None`` with that reason, and one warning per process (see ``on_warning``) says how to get them.

    Raises:
        ConfigurationError: unknown metric, LPIPS net, device or a bad ``crop_border``.
        ImageInputError: malformed batches or references of another shape.
    """
    specs = [metric_spec(name) for name in names]
    check_crop_border(crop_border)
    if lpips_net not in LPIPS_BACKBONES:
        raise ConfigurationError(f"unknown LPIPS network {lpips_net!r}; choose one of {', '.join(LPIPS_BACKBONES)}")
    if references is None:
        check_batch(images)
    else:
        check_pair(images, references)
    target = resolve_device(device)
    images = images.to(target)
    references = references.to(target) if references is not None else None
    options = MetricOptions(y_channel=y_channel, crop_border=crop_border, lpips_net=lpips_net)
    count = images.shape[0]
    rows: list[dict[str, float | str | None]] = [{} for _ in range(count)]
    for spec in specs:
        if spec.full_reference and references is None:
            result = MetricValues(torch.full((count,), math.nan), (NO_REFERENCE,) * count)
        else:
            try:
                result = spec.compute(images, references, options)
            except WeightsError as exc:
                _warn_once(f"{spec.name} is unavailable: {exc}", on_warning)
                result = MetricValues(
                    torch.full((count,), math.nan), (f"{spec.name} unavailable: {_first_sentence(exc)}",) * count
                )
        for row, value, reason in zip(rows, result.values.tolist(), result.reasons, strict=True):
            if math.isnan(value):
                row[spec.name] = None
                row[f"{spec.name}_reason"] = reason or "undefined"
            else:
                row[spec.name] = value
    return rows


def _first_sentence(exc: Exception) -> str:
    """The first line of an error (a missing-weights message says what is missing there), to its first full stop."""
    lines = str(exc).splitlines() or [""]
    return lines[0].split(". ", 1)[0]


def json_row(row: dict[str, float | str | None]) -> dict[str, float | str | None]:
    """``row`` made strict-JSON safe: ``±inf`` → the strings ``"inf"``/``"-inf"``, NaN → ``None``."""
    return json_safe(row)


def metric_names() -> list[str]:
    """The registered metric names, sorted."""
    return METRICS.names()
