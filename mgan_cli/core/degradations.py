"""Tasks as differentiable degradation operators A, applied to the generator's output inside the loss.

Every operator maps images ``[B, 3, R, R]`` in [-1, 1] (the generator's resolution R) to the space of
the observed image y, and knows how to turn the restored image x̂ into the task's output. Constants are
made on the input's device and dtype.

=============  =====================================  =========================================
name           A(x)                                   output
=============  =====================================  =========================================
identity       x (inversion, denoising)               x̂
luma           BT.601 luma, repeated to 3 channels    the observed luma + x̂'s chroma (YCbCr)
downsample     resize R → R/s (bicubic/bilinear/area)  x̂ at R
mask           x ⊙ (1 − m), m = 1 on missing pixels   x̂, or y on known pixels (``paste_known``)
=============  =====================================  =========================================
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from mgan_cli.errors import ConfigurationError
from mgan_cli.utils.registry import Registry
from mgan_cli.utils.settings_schema import SpecError, ValueSpec
from mgan_cli.utils.shapes import check_shape

DEGRADATIONS: Registry[type[Degradation]] = Registry("degradation")

#: ITU-R BT.601 luma weights (the reference's colorization loss; Y of full-range YCbCr, as in JPEG/Pillow)
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


class Degradation(nn.Module):
    """Base class: ``forward(images, mask=None)`` applies A; ``finalize`` builds the task's output."""

    #: whether the operator needs a per-image mask ``[B, 1, R, R]`` (1 = missing pixel)
    needs_mask = False
    #: the operator's keyword arguments (a preset's ``degradation`` keys besides ``type``) and their specs
    parameters: ClassVar[dict[str, ValueSpec]] = {}

    def observed_size(self, resolution: int, smallest: int = 1) -> int:
        """Side length of the observed image for a generator of ``resolution`` (at least ``smallest``, the
        loss's minimum: :class:`ConfigurationError` otherwise)."""
        return resolution

    def __call__(self, images: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Check the shapes (images ``[B, 3, H, W]``, mask ``[B, 1, H, W]``), then apply :meth:`forward`."""
        dims = check_shape(images, "B 3 H W", "images")
        if mask is not None:
            check_shape(mask, "B 1 H W", "mask", **dims)
        return super().__call__(images, mask)

    def forward(self, images: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def finalize(self, restored: torch.Tensor, observed: torch.Tensor,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
        """The task's output image ``[B, 3, R, R]`` in [-1, 1] from x̂ and the observed image."""
        return restored


    name = "?"


@DEGRADATIONS.register("identity")
class Identity(Degradation):
    """A(x) = x: plain inversion, and denoising (the prior does the work)."""

    name = "identity"

    def forward(self, images: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return images


def to_luma(images: torch.Tensor) -> torch.Tensor:
    """``[B, 3, H, W] -> [B, 1, H, W]``: 0.299 R + 0.587 G + 0.114 B (same value range as the input).

    >>> to_luma(torch.zeros(2, 3, 4, 4)).shape
    torch.Size([2, 1, 4, 4])
    """
    weights = images.new_tensor(LUMA_WEIGHTS).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True)


def rgb_to_chroma(images: torch.Tensor) -> torch.Tensor:
    """Full-range BT.601 (JPEG) Cb, Cr of ``[B, 3, H, W]`` in [-1, 1] -> ``[B, 2, H, W]`` centred on 0."""
    r, g, b = images.unbind(dim=1)
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b
    return torch.stack([cb, cr], dim=1)


def luma_chroma_to_rgb(luma: torch.Tensor, chroma: torch.Tensor) -> torch.Tensor:
    """Inverse of (luma, chroma) for full-range BT.601: ``[B,1,H,W]`` + ``[B,2,H,W]`` -> ``[B,3,H,W]``."""
    y = luma[:, 0]
    cb, cr = chroma.unbind(dim=1)
    r = y + 1.402 * cr
    g = y - 0.344136 * cb - 0.714136 * cr
    b = y + 1.772 * cb
    return torch.stack([r, g, b], dim=1)


@DEGRADATIONS.register("luma")
class Luma(Degradation):
    """Colorization: A(x) = luma(x) repeated to 3 channels; the output keeps the observed luma."""

    name = "luma"

    def forward(self, images: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return to_luma(images).expand(-1, 3, -1, -1)

    def finalize(self, restored: torch.Tensor, observed: torch.Tensor,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
        return luma_chroma_to_rgb(to_luma(observed), rgb_to_chroma(restored.clamp(-1, 1)))


DOWNSAMPLE_MODES = ("bicubic", "bilinear", "area")
SCALE = ValueSpec("int", minimum=1)
PASTE_KNOWN = ValueSpec("bool")


@DEGRADATIONS.register("downsample")
class Downsample(Degradation):
    """Super-resolution: A(x) = x resized by 1/``scale``.

    ``mode``: ``bicubic`` (antialiased, like Pillow's and MATLAB's ``imresize``, the usual way LR test
    images are made; default), ``bilinear`` (no antialiasing: the reference implementation's
    ``F.interpolate(x, scale_factor=1/s, mode='bilinear')``) or ``area`` (box average).
    """

    name = "downsample"
    parameters: ClassVar[dict[str, ValueSpec]] = {"scale": SCALE, "mode": ValueSpec("choice", choices=DOWNSAMPLE_MODES)}

    def __init__(self, scale: int = 4, mode: str = "bicubic") -> None:
        super().__init__()
        self.scale = check_parameters(self, scale=scale)["scale"]
        self.mode = check_parameters(self, mode=mode)["mode"]

    def observed_size(self, resolution: int, smallest: int = 1) -> int:
        allowed = ", ".join(str(s) for s in allowed_scales(resolution, smallest))
        if resolution % self.scale:
            raise ConfigurationError(f"--scale {self.scale} does not divide the generator's resolution "
                                     f"{resolution} (allowed: {allowed})")
        size = resolution // self.scale
        if size < smallest:
            raise ConfigurationError(
                f"--scale {self.scale} leaves {size}x{size}-pixel inputs, smaller than the {smallest}x{smallest} "
                f"the perceptual loss needs (allowed: {allowed}; or --perceptual-weight 0)")
        return size

    def forward(self, images: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.scale == 1:
            return images
        size = images.shape[-1] // self.scale
        if self.mode == "area":
            return F.avg_pool2d(images, self.scale)
        if self.mode == "bilinear":
            return F.interpolate(images, scale_factor=1 / self.scale, mode="bilinear", align_corners=False)
        return F.interpolate(images, size=(size, size), mode="bicubic", align_corners=False, antialias=True)


@DEGRADATIONS.register("mask")
class Mask(Degradation):
    """Inpainting: A(x) = x ⊙ (1 − m) with m = 1 on missing pixels; optionally paste known pixels back."""

    name = "mask"
    needs_mask = True
    parameters: ClassVar[dict[str, ValueSpec]] = {"paste_known": PASTE_KNOWN}

    def __init__(self, paste_known: bool = True) -> None:
        super().__init__()
        self.paste_known = check_parameters(self, paste_known=paste_known)["paste_known"]

    def forward(self, images: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None:
            raise ConfigurationError("inpainting needs a mask (--mask FILE_OR_DIR)")
        return images * (1 - mask)

    def finalize(self, restored: torch.Tensor, observed: torch.Tensor,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
        if not self.paste_known or mask is None:
            return restored
        return observed * (1 - mask) + restored * mask


def check_parameters(operator: Degradation | type[Degradation], **values: object) -> dict[str, object]:
    """``values`` checked against the operator's :attr:`Degradation.parameters` (:class:`ConfigurationError`)."""
    checked = {}
    for key, value in values.items():
        spec = operator.parameters.get(key)
        if spec is None:
            raise ConfigurationError(f"degradation {operator.name!r} has no parameter {key!r}"
                                     f" (it has: {', '.join(operator.parameters) or 'none'})")
        try:
            checked[key] = spec.check(value)
        except SpecError as exc:
            flag = f"--{key.replace('_', '-')}" if key in ("scale",) else key
            raise ConfigurationError(f"{flag}: {exc}") from None
    return checked


def allowed_scales(resolution: int, smallest: int = 1) -> list[int]:
    """The ``--scale`` values that divide ``resolution`` and leave inputs of at least ``smallest`` pixels."""
    return [s for s in range(1, resolution + 1) if resolution % s == 0 and resolution // s >= smallest]


def build_degradation(spec: dict[str, object]) -> Degradation:
    """``{"type": name, **kwargs}`` -> the registered operator (unknown kwargs are errors)."""
    spec = dict(spec)
    kind = str(spec.pop("type"))
    try:
        return DEGRADATIONS.get(kind)(**spec)
    except TypeError as exc:
        raise ConfigurationError(f"degradation {kind!r}: {exc}") from exc
