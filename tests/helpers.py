"""Small helpers shared by the tests (not fixtures)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def celeba_face(path: Path, size: int = 64) -> Image.Image:
    """An aligned CelebA photo framed as the dataset does: centre square crop, then bicubic resize."""
    image = Image.open(path).convert("RGB")
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BICUBIC)


def psnr_uint8(a: np.ndarray, b: np.ndarray) -> float:
    """Textbook PSNR of two uint8 arrays (data range 255), written independently of mgan's metrics."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)
