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


#: pixels around the crop's footprint that bicubic warping may still touch
_MARGIN = 3


def footprint(transform: FaceTransform, width: int, height: int) -> tuple[int, int, int, int] | None:
    """The box ``(left, top, right, bottom)`` of the photo that the crop can change (its square mapped back,
    plus a margin), clipped to the photo; ``None`` if it misses the photo."""
    side = transform.size
    corners = np.array([[0, 0, 1], [side, 0, 1], [0, side, 1], [side, side, 1]], dtype=np.float64)
    points = corners @ transform.inverse().T
    left, top = np.floor(points.min(0)).astype(int) - _MARGIN
    right, bottom = np.ceil(points.max(0)).astype(int) + _MARGIN
    left, top, right, bottom = max(left, 0), max(top, 0), min(right, width), min(bottom, height)
    return None if left >= right or top >= bottom else (int(left), int(top), int(right), int(bottom))


def paste_into(canvas: np.ndarray, crop: np.ndarray, transform: FaceTransform, feather: float = FEATHER) \
        -> np.ndarray | None:
    """Blend ``crop`` into ``canvas`` (uint8 ``[H, W, 3]``, changed in place) within the crop's footprint only,
    so memory is that of the footprint, not of the photo. Returns the mask of the footprint box (``None``
    if the crop misses the canvas)."""
    height, width = canvas.shape[:2]
    box = footprint(transform, width, height)
    if box is None:
        return None
    left, top, right, bottom = box
    matrix = transform.matrix.copy()
    matrix[:, 2] = matrix[:, 2] + matrix[:, :2] @ np.array([left, top], dtype=np.float64)
    local = FaceTransform(matrix, transform.size)
    size = (right - left, bottom - top)
    mask = np.clip(warp_to_photo(feather_mask(transform.size, feather), local, size)[:, :, 0], 0.0, 1.0)
    restored = warp_to_photo(crop.astype(np.float32), local, size)
    region = canvas[top:bottom, left:right]
    blended = region.astype(np.float32) * (1.0 - mask[:, :, None]) + restored * mask[:, :, None]
    region[...] = np.where(mask[:, :, None] > 0, np.clip(np.round(blended), 0, 255).astype(np.uint8), region)
    return mask


def paste_back(photo: np.ndarray, crop: np.ndarray, transform: FaceTransform, feather: float = FEATHER) \
        -> tuple[np.ndarray, np.ndarray]:
    """``photo`` (uint8 ``[H, W, 3]``) with ``crop`` (uint8 ``[S, S, 3]``, aligned by ``transform``) warped back
    and blended with a feathered mask; returns ``(composite, mask [H, W])``. Pixels where the mask is 0 (every
    pixel farther than the crop's footprint) are the photo's own bytes. Runs need only :func:`paste_into`
    (no photo-sized float arrays)."""
    height, width = photo.shape[:2]
    composite = photo.copy()
    full_mask = np.zeros((height, width), np.float32)
    mask = paste_into(composite, crop, transform, feather)
    box = footprint(transform, width, height)
    if mask is not None and box is not None:
        full_mask[box[1]:box[3], box[0]:box[2]] = mask
    return composite, full_mask
