"""Reading and writing images at the edges of the engine (uint8/PIL outside, [-1, 1] tensors inside).

* :func:`decode_image` -> an 8-bit RGB Pillow image and notes saying what was done to it;
  :func:`read_image` the image alone. Every mode Pillow opens is read by its real value range or refused
  (:func:`to_8bit`): 16-bit grey/RGB keep their high byte (``v >> 8``: 0..65535 -> 0..255), 32-bit integer
  grey must hold 16-bit values (0..65535), float grey must lie in [0, 1] (× 255, rounded); palettes are
  looked up; CMYK uses Pillow's conversion (no colour management); grey is repeated to 3 channels; alpha
  is dropped (noted when some pixel is not opaque). The EXIF orientation is applied
  (``ImageOps.exif_transpose``, noted); an animation gives its first frame (noted). Only the formats in
  :data:`READ_FORMATS` are opened; images over Pillow's decompression-bomb limit are refused.
* :func:`decode_mask` -> an ``L`` mask (white = missing); refused when it marks no pixel, or when its
  hole is only in its alpha channel.
* :func:`fit_to_size` applies the ``--resize`` policy: ``error`` (default: a wrong size is an error that
  names the flag), ``crop`` (centre-crop to a square, then resize, like CelebA's aligned framing) or
  ``fit`` (resize the whole image, aspect ratio not kept). Resizing uses Pillow's bicubic filter and is
  always reported, never silent.
* :func:`encode_png` encodes ``uint8 [3, H, W]``; files are written with :mod:`mgan_cli.utils.atomic`.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from mgan_cli.errors import ConfigurationError, ImageInputError
from mgan_cli.utils.atomic import write_atomic
from mgan_cli.utils.inputs import check_regular, open_regular

#: image formats mgan opens (others, e.g. EPS, which runs Ghostscript, are refused)
READ_FORMATS = ("PNG", "JPEG", "BMP", "WEBP", "TIFF", "GIF", "PPM", "TGA")
Image.init()
#: file suffixes of :data:`READ_FORMATS` (MPO: multi-picture JPEG, opened by the JPEG reader): what a folder
#: scan takes (a named file is tried whatever its suffix)
IMAGE_SUFFIXES = tuple(sorted(ext for ext, fmt in Image.registered_extensions().items()
                              if fmt in (*READ_FORMATS, "MPO")))
RESIZE_POLICIES = ("error", "crop", "fit")
#: the largest image read: Pillow's decompression-bomb limit (2 × ``Image.MAX_IMAGE_PIXELS``)
MAX_PIXELS = 2 * (Image.MAX_IMAGE_PIXELS or 89_478_485)
_ORIENTATION_TAG = 0x0112
_ALPHA_MODES = ("LA", "La", "PA", "RGBA", "RGBa")

# mgan checks the pixel count itself (below); Pillow's warning for large but legal images is not for users
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


@dataclass
class DecodedImage:
    """An image as read (8-bit ``RGB``, or ``L`` for masks) and what was done to it, for the record."""

    image: Image.Image
    notes: list[str] = field(default_factory=list)


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
    if "truncated" in text:
        return "truncated file (" + text + ")" if "(" in text else "truncated file"
    if "broken PNG" in text or "checksum" in text or "crc" in text.lower():
        return f"damaged file, bad checksum or chunk ({text})"
    return text


def _identify_failure(path: Path) -> str:
    """Why no format plugin took ``path``: the plugin whose signature matches, opened alone, says why."""
    try:
        with open_regular(path) as handle:
            head = handle.read(16)
            if not head:
                return "empty file"
            for fmt in READ_FORMATS:
                factory, accept = Image.OPEN[fmt]
                if accept is not None and accept(head):
                    handle.seek(0)
                    try:
                        factory(handle, str(path)).load()
                    except Exception as exc:
                        return f"a damaged {fmt} file: {_reason(exc)}"
    except OSError as exc:
        return exc.strerror or str(exc)
    return f"not an image in a format mgan reads ({', '.join(READ_FORMATS)})"


def _open(path: Path) -> tuple[Image.Image, list[str]]:
    notes: list[str] = []
    try:
        check_regular(path)  # a FIFO or a device would block or never end
    except FileNotFoundError:
        raise ImageInputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageInputError(f"{path}: a folder, not an image file") from None
    except OSError as exc:
        raise ImageInputError(f"{path}: {exc.strerror or exc}") from None
    try:
        image = Image.open(path, formats=READ_FORMATS)
    except FileNotFoundError:
        raise ImageInputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageInputError(f"{path}: a folder, not an image file") from None
    except Image.DecompressionBombError:
        raise ImageInputError(f"{path}: refused, more than {MAX_PIXELS} pixels (a decompression bomb, or far "
                              "too large an image)") from None
    except UnidentifiedImageError:
        raise ImageInputError(f"{path}: not a readable image: {_identify_failure(path)}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageInputError(f"{path}: not a readable image: {_reason(exc)}") from None
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise ImageInputError(f"{path}: refused, {width}x{height} is more than {MAX_PIXELS} pixels")
    frames = int(getattr(image, "n_frames", 1) or 1)
    try:
        image.load()
        if frames > 1:
            notes.append(f"animated ({frames} frames): used the first frame")
        orientation = image.getexif().get(_ORIENTATION_TAG, 1)
        if orientation not in (None, 1):
            image = ImageOps.exif_transpose(image)
            notes.append(f"rotated/flipped upright as its EXIF orientation {orientation} says")
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageInputError(f"{path}: not a readable image: {_reason(exc)}") from None
    return image, notes


def to_8bit(image: Image.Image, path: Path) -> tuple[Image.Image, Image.Image | None, list[str]]:
    """``(colour, alpha, notes)``: colour in ``L`` or ``RGB`` by the mode's real value range (see the module
    docstring), alpha as ``L`` or None; :class:`ImageInputError` for a mode or value range mgan cannot read."""
    mode = image.mode
    notes: list[str] = []
    if mode in ("L", "RGB"):
        return image, None, notes
    if mode == "1":
        return image.convert("L"), None, notes
    if mode == "P":
        if "transparency" in image.info or (image.palette is not None and image.palette.mode == "RGBA"):
            rgba = image.convert("RGBA")
            return rgba.convert("RGB"), rgba.getchannel("A"), notes
        return image.convert("RGB"), None, notes
    if mode in _ALPHA_MODES:
        full = image.convert("LA" if mode in ("LA", "La") else "RGBA")
        colour = full.getchannel("L") if full.mode == "LA" else full.convert("RGB")
        return colour, full.getchannel("A"), notes
    if mode in ("CMYK", "YCbCr"):
        if mode == "CMYK":
            notes.append("CMYK converted to RGB without colour management (no ICC profile applied)")
        return image.convert("RGB"), None, notes
    if mode.startswith("I;16") and not mode.endswith("S"):
        values = np.asarray(image).astype(np.uint16)
        return Image.fromarray((values >> 8).astype(np.uint8), "L"), None, ["16-bit grey reduced to 8 bits"]
    if mode == "I":
        values = np.asarray(image, dtype=np.int64)
        low, high = int(values.min()), int(values.max())
        if low < 0 or high > 65535:
            raise ImageInputError(f"{path}: 32-bit integer grey with values {low}..{high}; mgan reads integer "
                                  "images as 8- or 16-bit (0..65535): save it as an 8- or 16-bit image")
        return (Image.fromarray((values >> 8).astype(np.uint8), "L"), None,
                ["32-bit integer grey read as 16-bit (0..65535) and reduced to 8 bits"])
    if mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if not np.isfinite(values).all():
            raise ImageInputError(f"{path}: floating-point image with NaN or infinite values")
        low, high = float(values.min()), float(values.max())
        if low < 0 or high > 1:
            raise ImageInputError(f"{path}: floating-point image with values in [{low:g}, {high:g}]; mgan reads "
                                  "float images as [0, 1]: scale it, or save it as an 8- or 16-bit image")
        return (Image.fromarray(np.rint(values * 255).astype(np.uint8), "L"), None,
                ["floating-point grey [0, 1] converted to 8 bits"])
    raise ImageInputError(f"{path}: colour mode {mode} is not one mgan reads (grey or RGB of 8/16 bits, palette, "
                          "CMYK, 32-bit integer or [0, 1] float grey)")


def _opaque(alpha: Image.Image | None) -> bool:
    return alpha is None or alpha.getextrema()[0] == 255


def decode_image(path: Path) -> DecodedImage:
    """``path`` as an 8-bit RGB image, with notes for the record (see the module docstring)."""
    image, notes = _open(path)
    colour, alpha, mode_notes = to_8bit(image, path)
    notes += mode_notes
    if not _opaque(alpha):
        notes.append("alpha channel ignored (transparent pixels keep their stored colour)")
    return DecodedImage(colour.convert("RGB") if colour.mode != "RGB" else colour, notes)


def read_image(path: Path) -> Image.Image:
    """An RGB Pillow image from ``path`` (see :func:`decode_image`, which also returns what was done)."""
    return decode_image(path).image


def decode_mask(path: Path) -> DecodedImage:
    """A greyscale mask (white = missing pixel; grey values are partial) with notes.

    Its grey values (luma of a colour mask) say what is missing; an alpha channel is not read. Refused
    (:class:`ImageInputError`) when it marks no pixel at all, or when only its alpha channel varies (the hole
    drawn as transparency): either would silently restore nothing.
    """
    image, notes = _open(path)
    colour, alpha, mode_notes = to_8bit(image, path)
    notes += mode_notes
    mask = colour.convert("L") if colour.mode != "L" else colour
    marked = mask.getextrema()[1] > 0
    if not _opaque(alpha):
        if not marked:
            raise ImageInputError(f"{path}: the mask's hole is only in its alpha channel; mgan reads a mask's "
                                  "grey values (white = missing): paint the hole white on black, without alpha")
        notes.append("mask alpha channel ignored (its grey values say what is missing)")
    if not marked:
        raise ImageInputError(f"{path}: the mask marks no pixel as missing (it is all black; white = missing)")
    return DecodedImage(mask, notes)


def read_mask(path: Path) -> Image.Image:
    """A greyscale Pillow mask (see :func:`decode_mask`)."""
    return decode_mask(path).image


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


def encode_png(pixels: torch.Tensor) -> bytes:
    """``uint8 [3, H, W]`` as PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(pixels.permute(1, 2, 0).cpu().numpy(), "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def write_png(pixels: torch.Tensor, path: Path) -> None:
    """Write ``uint8 [3, H, W]`` to ``path`` atomically (:func:`mgan_cli.utils.atomic.write_atomic`)."""
    write_atomic(path, encode_png(pixels))


def collect_inputs(items: Iterable[str], recursive: bool = False, stdin_lines: Iterable[str] = (),
                   exclude: Path | None = None) -> list[Path]:
    """Expand INPUT arguments (files, directories, ``-`` for paths on stdin) into a sorted, de-duplicated list.

    Directories contribute their image files (by suffix; recursively with ``recursive``); files are
    taken as given, whatever their suffix, so that a bad file is reported rather than silently ignored.
    A folder's files inside ``exclude`` (the output folder) are left out when ``exclude`` is a sub-folder
    of it (a folder given as INPUT and as ``-o`` keeps its files: they are then reported, not overwritten).
    """
    excluded = exclude.resolve() if exclude is not None else None
    paths: list[Path] = []
    for item in items:
        if item == "-":
            paths.extend(Path(line.strip()) for line in stdin_lines if line.strip())
            continue
        path = Path(item)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            found = sorted(p for p in path.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if excluded is not None and excluded != path.resolve():
                found = [p for p in found if not p.resolve().is_relative_to(excluded)]
            paths.extend(found)
        else:
            paths.append(path)
    seen: set[Path] = set()
    unique = []
    for path in paths:
        key = path if "\0" in str(path) else path.resolve()  # a NUL byte cannot be resolved; planning reports it
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique
