"""Peak signal-to-noise ratio (full reference)."""

from __future__ import annotations

import torch
from torch import Tensor

from mgan_cli.metrics._common import DATA_RANGE, check_pair, prepare


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
