"""Image-quality metrics that agree with their reference implementations.

**Public API** (``import mgan_cli as mgan; mgan.metrics.psnr(...)``): :func:`psnr`, :func:`ssim`, :func:`lpips`
and :func:`niqe` take images ``[B, 3, H, W]`` as floats in [0, 1] or uint8, checked
(:mod:`mgan_cli.metrics.public`). Everything below is the layer under it, on the 0–255 scale:

Inside, images are tensors ``[N, 3, H, W]`` (RGB) or ``[N, 1, H, W]`` (gray), uint8 or float, values in [0, 255]
(the uint8 scale, whatever the dtype); a batch runs on the device its tensor is on. PSNR, SSIM and NIQE
compute in float64, LPIPS in float32.

- :func:`~mgan_cli.metrics.fidelity.psnr` — scikit-image's ``peak_signal_noise_ratio`` (data range 255);
  ``+inf`` for identical images.
- :func:`~mgan_cli.metrics.fidelity.ssim` — scikit-image's ``structural_similarity`` with
  ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255``.
- :func:`lpips_distance` — the ``lpips`` package (v0.1 heads), AlexNet or VGG backbone from the weight store.
- :func:`~mgan_cli.metrics.naturalness.niqe` — BasicSR's ``calculate_niqe(img, crop_border, convert_to='y')``
  / the MATLAB release.
- :func:`compute_metrics` — several metrics at once, as report rows with ``None`` + reason where undefined.

Undefined values (image too small for the window, for NIQE's two 96×96 blocks, ...) are NaN in the tensor
functions and ``None`` with a ``"<name>_reason"`` in :func:`compute_metrics`'s rows.
"""

from mgan_cli.metrics._common import BT601_Y_WEIGHTS, DATA_RANGE, rgb_to_y
from mgan_cli.metrics.api import (
    DEFAULT_METRICS,
    METRICS,
    MetricOptions,
    MetricSpec,
    MetricUnavailableWarning,
    MetricValues,
    compute_metrics,
    json_row,
    metric_names,
    metric_spec,
)
from mgan_cli.metrics.imresize import imresize
from mgan_cli.metrics.naturalness import NIQE_BLOCK, NiqePristine, load_pristine, niqe_blocks
from mgan_cli.metrics.perceptual import LPIPS_BACKBONES, LPIPS_MIN_SIZE, lpips_distance, lpips_model
from mgan_cli.metrics.public import lpips, niqe, psnr, ssim
from mgan_cli.utils.devices import resolve_device

__all__ = [
    "BT601_Y_WEIGHTS",
    "DATA_RANGE",
    "DEFAULT_METRICS",
    "LPIPS_BACKBONES",
    "LPIPS_MIN_SIZE",
    "METRICS",
    "NIQE_BLOCK",
    "MetricOptions",
    "MetricSpec",
    "MetricUnavailableWarning",
    "MetricValues",
    "NiqePristine",
    "compute_metrics",
    "imresize",
    "json_row",
    "load_pristine",
    "lpips",
    "lpips_distance",
    "lpips_model",
    "metric_names",
    "metric_spec",
    "niqe",
    "niqe_blocks",
    "psnr",
    "resolve_device",
    "rgb_to_y",
    "ssim",
]
