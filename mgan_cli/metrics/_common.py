"""Input checks and small helpers shared by the metrics.

Every metric takes image batches as tensors of shape ``[N, C, H, W]`` with ``C`` = 3 (RGB) or 1
(grayscale), ``dtype`` uint8 or floating point, values in ``[0, 255]`` (the uint8 scale; floats are not
rounded, except where a reference implementation rounds). Full-reference metrics compare two batches of
the same shape, image ``i`` against reference ``i``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mgan_cli.errors import ConfigurationError, ImageInputError

#: Largest value of the uint8 scale every metric works on; the PSNR/SSIM data range.
DATA_RANGE = 255.0

#: ITU-R BT.601 luma weights of MATLAB's ``rgb2ycbcr`` (and BasicSR's ``rgb2ycbcr(y_only=True)``),
#: for R, G, B in [0, 1] giving Y in [16, 235]; on the [0, 255] scale: Y = 16 + (w · RGB) / 255.
BT601_Y_WEIGHTS = (65.481, 128.553, 24.966)
BT601_Y_OFFSET = 16.0


def check_batch(images: Tensor, what: str = "images") -> None:
    """Raise :class:`ImageInputError` unless ``images`` is ``[N, 1|3, H, W]`` uint8 or floating point."""
    if not isinstance(images, Tensor):
        raise ImageInputError(f"{what} must be a torch.Tensor [N, C, H, W]; got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ImageInputError(f"{what} must have shape [N, 3, H, W] or [N, 1, H, W]; got {list(images.shape)}")
    if images.dtype != torch.uint8 and not images.dtype.is_floating_point:
        raise ImageInputError(f"{what} must be uint8 or floating point (values 0..255); got {images.dtype}")


def check_pair(images: Tensor, references: Tensor) -> None:
    """Both batches valid and of identical shape (else :class:`ImageInputError` naming both shapes)."""
    check_batch(images, "images")
    check_batch(references, "references")
    if images.shape != references.shape:
        raise ImageInputError(
            f"images and references differ in shape: {list(images.shape)} vs {list(references.shape)}"
        )


def check_crop_border(crop_border: int) -> None:
    if isinstance(crop_border, bool) or not isinstance(crop_border, int) or crop_border < 0:
        raise ConfigurationError(f"crop_border must be an integer >= 0; got {crop_border!r}")


def crop(images: Tensor, crop_border: int) -> Tensor:
    """Drop ``crop_border`` pixels at each of the four edges of ``[..., H, W]``."""
    check_crop_border(crop_border)
    if crop_border == 0:
        return images
    height, width = images.shape[-2:]
    if 2 * crop_border >= min(height, width):
        raise ConfigurationError(
            f"crop_border={crop_border} leaves nothing of a {width}x{height} image"
        )
    return images[..., crop_border:-crop_border, crop_border:-crop_border]


def rgb_to_y(images: Tensor) -> Tensor:
    """BT.601 luma of ``[N, 3, H, W]`` RGB on [0, 255] → ``[N, 1, H, W]`` in [16, 235], not rounded.

    Same convention as MATLAB's ``rgb2ycbcr`` and BasicSR's ``rgb2ycbcr(img, y_only=True)``:
    ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255``. Grayscale ``[N, 1, H, W]`` is returned unchanged
    (it is taken to be luma already).
    """
    if images.shape[1] == 1:
        return images
    weights = torch.tensor(BT601_Y_WEIGHTS, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return BT601_Y_OFFSET + (images * weights).sum(dim=1, keepdim=True) / DATA_RANGE


def to_float64(images: Tensor, device: torch.device | None = None) -> Tensor:
    """The batch as float64 on ``device`` (default: where it already is), values unchanged."""
    return images.to(device=device if device is not None else images.device, dtype=torch.float64)


def prepare(
    images: Tensor, *, crop_border: int, y_channel: bool, device: torch.device | None = None
) -> Tensor:
    """float64 copy on ``device``, optionally reduced to BT.601 luma, then edge-cropped."""
    out = to_float64(images, device)
    if y_channel:
        out = rgb_to_y(out)
    return crop(out, crop_border)
