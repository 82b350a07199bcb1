"""Restored face crops blended back into their photo (``--paste-back``)."""

from __future__ import annotations

import numpy as np

from mgan_cli.faces.alignment import FaceTransform, warp_to_photo

#: width of the mask's linear ramp, as a fraction of the crop side
FEATHER = 0.1


def feather_mask(size: int, feather: float = FEATHER) -> np.ndarray:
    """``[size, size, 1]`` float32: 1 in the middle, falling linearly to 0 at the crop's border over
    ``feather * size`` pixels, so that the seam between restored face and photo is invisible."""
    ramp = max(1.0, feather * size)
    centres = np.arange(size, dtype=np.float32) + 0.5
    edge = np.minimum(centres, size - centres) / ramp
    profile = np.clip(edge, 0.0, 1.0)
    return np.minimum(profile[:, None], profile[None, :])[:, :, None].astype(np.float32)


def paste_back(photo: np.ndarray, crop: np.ndarray, transform: FaceTransform, feather: float = FEATHER) \
        -> tuple[np.ndarray, np.ndarray]:
    """``photo`` (uint8 ``[H, W, 3]``) with ``crop`` (uint8 ``[S, S, 3]``, aligned by ``transform``) warped back
    and blended with a feathered mask; returns ``(composite, mask [H, W])``. Pixels where the mask is 0 (every
    pixel farther than the crop's footprint) are the photo's own bytes."""
    height, width = photo.shape[:2]
    mask = warp_to_photo(feather_mask(transform.size, feather), transform, (width, height))[:, :, 0]
    mask = np.clip(mask, 0.0, 1.0)
    restored = warp_to_photo(crop.astype(np.float32), transform, (width, height))
    blended = photo.astype(np.float32) * (1.0 - mask[:, :, None]) + restored * mask[:, :, None]
    composite = np.where(mask[:, :, None] > 0, np.clip(np.round(blended), 0, 255).astype(np.uint8), photo)
    return composite, mask
