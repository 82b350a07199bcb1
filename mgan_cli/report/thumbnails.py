"""Small JPEG copies of the images of a run, for the HTML report (``OUT/.mgan/thumbs/<stem>.<role>.jpg``).

Roles: ``input`` (what mgan saw, after ``--resize``), ``output``, ``reference`` and ``baseline``. A
thumbnail is the image shrunk (never enlarged) to fit :data:`THUMB_SIZE` pixels; the page scales it for
display. Files are written atomically, so a page never links a half-written image, into a folder the caller
made (:func:`mgan_cli.utils.atomic.make_folder`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from PIL import Image

from mgan_cli.errors import ImageInputError
from mgan_cli.utils.atomic import write_atomic
from mgan_cli.utils.imageio import read_image

THUMB_DIR = Path(".mgan") / "thumbs"
THUMB_SIZE = 128
ROLES = ("input", "output", "reference", "baseline")
#: the longest file name most file systems take, in bytes
MAX_NAME_BYTES = 255
#: bytes of a stem kept whole in a thumbnail's name: the rest of the name is at most ``.reference.jpg``
_STEM_BYTES = MAX_NAME_BYTES - max(len(f".{role}.jpg") for role in ROLES)


def _short_stem(stem: str) -> str:
    """``stem`` itself when its thumbnails' names fit in :data:`MAX_NAME_BYTES`; else its longest prefix that
    leaves room for ``~`` and 16 hex digits of its sha256 (so two long stems with one prefix stay apart)."""
    encoded = os.fsencode(stem)
    if len(encoded) <= _STEM_BYTES:
        return stem
    digest = hashlib.sha256(encoded).hexdigest()[:16]
    prefix = stem
    while len(os.fsencode(prefix)) > _STEM_BYTES - 1 - len(digest):
        prefix = prefix[:-1]
    return f"{prefix}~{digest}"


def thumbnail_name(stem: str, role: str) -> str:
    """The file name of ``stem``'s thumbnail for ``role`` (the role is last, so stems never collide). Stems too
    long for a file name with the role are shortened (:func:`_short_stem`)."""
    if role not in ROLES:
        raise ValueError(f"unknown thumbnail role {role!r}; known: {', '.join(ROLES)}")
    return f"{_short_stem(stem)}.{role}.jpg"


def _save(image: Image.Image, path: Path) -> None:
    image = image.convert("RGB")
    image.thumbnail((THUMB_SIZE, THUMB_SIZE), Image.Resampling.LANCZOS)
    write_atomic(path, lambda handle: image.save(handle, format="JPEG", quality=90))


def write_thumbnail(pixels: torch.Tensor, path: Path) -> None:
    """Write uint8 ``[3, H, W]`` ``pixels`` as a thumbnail JPEG at ``path``."""
    if pixels.dtype != torch.uint8 or pixels.dim() != 3 or pixels.shape[0] != 3:
        raise ValueError(f"a thumbnail takes a uint8 [3, H, W] image, got {pixels.dtype} {tuple(pixels.shape)}")
    _save(Image.fromarray(pixels.permute(1, 2, 0).cpu().numpy(), "RGB"), path)


def write_thumbnails(thumb_dir: Path, stem: str, images: dict[str, torch.Tensor | None]) -> None:
    """Thumbnails of one image's ``{role: uint8 [3, H, W] or None}`` (``None``: that role has no image)."""
    for role, pixels in images.items():
        if pixels is not None:
            write_thumbnail(pixels, thumb_dir / thumbnail_name(stem, role))


def thumbnail_from_file(source: Path, path: Path) -> bool:
    """A thumbnail of the image file ``source`` at ``path`` (skipped if ``path`` is newer); False if unreadable."""
    try:
        if path.exists() and path.stat().st_mtime >= source.stat().st_mtime:
            return True
        _save(read_image(source), path)
    except (ImageInputError, OSError):
        return False
    return True
