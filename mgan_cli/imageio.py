"""Reading and writing images at the edges of the engine (uint8/PIL outside, [-1, 1] tensors inside).

* :func:`read_image` -> ``uint8 [3, H, W]`` RGB (greyscale is repeated to 3 channels; alpha is dropped).
* :func:`fit_to_size` applies the ``--resize`` policy: ``error`` (default: a wrong size is an error that
  names the flag), ``crop`` (centre-crop to a square, then resize, like CelebA's aligned framing) or
  ``fit`` (resize the whole image, aspect ratio not kept). Resizing uses Pillow's bicubic filter and is
  always reported, never silent.
* :func:`write_png` writes atomically (temporary name, then rename), never half-written files.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from mgan_cli.errors import ConfigurationError, ImageInputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
RESIZE_POLICIES = ("error", "crop", "fit")


def _open(path: Path) -> Image.Image:
    try:
        image = Image.open(path)
        image.load()
        return image
    except FileNotFoundError:
        raise ImageInputError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageInputError(f"{path}: not a readable image ({exc.__class__.__name__})") from None


def read_image(path: Path) -> Image.Image:
    """An RGB Pillow image from ``path`` (greyscale repeated, alpha and palettes flattened)."""
    image = _open(path)
    if image.mode == "RGBA" or image.mode == "LA" or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA").convert("RGB")
    return image.convert("RGB") if image.mode != "RGB" else image


def read_mask(path: Path) -> Image.Image:
    """A greyscale Pillow mask (white = missing pixel; grey values are partial; alpha is ignored)."""
    image = _open(path)
    if image.mode in ("RGBA", "LA"):
        image = image.convert("RGB")
    return image.convert("L")


def fit_to_size(
    image: Image.Image, size: int, policy: str, path: Path, what: str = "image"
) -> tuple[Image.Image, str | None]:
    """``image`` at ``size`` × ``size`` under ``policy``; returns it and a note saying what was done (or None)."""
    if policy not in RESIZE_POLICIES:
        raise ConfigurationError(f"--resize must be one of {', '.join(RESIZE_POLICIES)}, got {policy!r}")
    width, height = image.size
    if (width, height) == (size, size):
        return image, None
    if policy == "error":
        raise ImageInputError(
            f"{path}: {what} is {width}x{height} but must be {size}x{size}; resize it, or pass "
            f"--resize crop (centre-crop then resize) or --resize fit (resize the whole image)"
        )
    if policy == "crop":
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        image = image.crop((left, top, left + side, top + side))
        note = f"centre-cropped {width}x{height} to {side}x{side} and resized to {size}x{size}"
    else:
        note = f"resized {width}x{height} to {size}x{size}"
    resample = Image.Resampling.BILINEAR if image.mode == "L" else Image.Resampling.BICUBIC
    return image.resize((size, size), resample), note


def to_tensor(image: Image.Image) -> torch.Tensor:
    """Pillow RGB -> ``float32 [3, H, W]`` in [-1, 1]; greyscale ``L`` -> ``[1, H, W]`` in [0, 1] (masks)."""
    array = np.array(image, dtype=np.float32)
    if image.mode == "L":
        return torch.from_numpy(array / 255.0)[None]
    return torch.from_numpy(array / 127.5 - 1.0).permute(2, 0, 1).contiguous()


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """``[B, 3, H, W]`` in [-1, 1] -> ``uint8`` (clamped, rounded: (x + 1) · 127.5)."""
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def write_png(pixels: torch.Tensor, path: Path) -> None:
    """Write ``uint8 [3, H, W]`` to ``path`` atomically (``.<name>.tmp`` in the same folder, then rename)."""
    array = pixels.permute(1, 2, 0).cpu().numpy()
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        Image.fromarray(array, "RGB").save(temporary, format="PNG")
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


def collect_inputs(items: Iterable[str], recursive: bool = False, stdin_lines: Iterable[str] = ()) -> list[Path]:
    """Expand INPUT arguments (files, directories, ``-`` for paths on stdin) into a sorted, de-duplicated list.

    Directories contribute their image files (by suffix; recursively with ``recursive``); files are
    taken as given, whatever their suffix, so that a bad file is reported rather than silently ignored.
    """
    paths: list[Path] = []
    for item in items:
        if item == "-":
            paths.extend(Path(line.strip()) for line in stdin_lines if line.strip())
            continue
        path = Path(item)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            paths.extend(sorted(p for p in path.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
        else:
            paths.append(path)
    seen: set[Path] = set()
    unique = []
    for path in paths:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique
