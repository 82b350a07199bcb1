"""The interface every generator implements, so the engine can split it at any layer.

Conventions (stated once, here):

* latent codes: ``[M, *code_shape]`` float tensors (``code_shape`` depends on the latent space, e.g.
  ``(100,)`` for a DCGAN's z, ``(L, 512)`` for StyleGAN's w+);
* features at layer ``k``: ``[M, C, H, W]`` with ``(C, H, W) == layer(k).shape``;
* images: ``[M, 3, R, R]``, nominal range [-1, 1] (not clamped: the official generators do not clamp).

Layers are numbered from 1 by the generator's blocks (``layers()[k - 1]`` describes layer ``k``).
``split(k)`` returns ``(lower, upper)`` with ``upper(lower(code)) == generator(code)`` exactly.

Some families need more than the composed feature above the split (StyleGAN's layers above ℓ read
styles from w+). They declare it with :meth:`Generator.upper_latent_shape`; the engine then optimises
one such tensor per image and passes it to ``upper(features, upper_latent)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mgan_cli.errors import ConfigurationError
from mgan_cli.utils.shapes import check_shape


@dataclass(frozen=True)
class LayerInfo:
    """One composable layer: its number (from 1), a readable name, its feature shape (C, H, W) and, for
    generators whose feature maps carry margins at a sampling rate of their own (StyleGAN3), that rate."""

    index: int
    name: str
    shape: tuple[int, int, int]
    sampling_rate: float | None = None


class Generator(nn.Module):
    """Base class of all generators. Subclasses set ``latent_size`` and ``resolution`` and implement
    :meth:`layers`, :meth:`forward` and :meth:`split`; weights are frozen by :meth:`freeze`."""

    #: size of z (the space codes are drawn from)
    latent_size: int
    #: output images are ``resolution`` × ``resolution``
    resolution: int
    #: latent spaces the codes may live in (first = default)
    latent_spaces: tuple[str, ...] = ("z",)
    #: the registry or imported name its weights were loaded under (``None``: built, or read from a file)
    weights_name: str | None = None

    def layers(self) -> list[LayerInfo]:
        raise NotImplementedError

    def layer(self, index: int) -> LayerInfo:
        """The description of layer ``index``; raises :class:`ConfigurationError` with the valid range."""
        layers = self.layers()
        if not 1 <= index <= len(layers):
            raise ConfigurationError(
                f"layer {index} out of range 1..{len(layers)} for {type(self).__name__} "
                f"(see `mgan presets show` for the layers and their shapes)"
            )
        return layers[index - 1]

    def code_shape(self, space: str = "z") -> tuple[int, ...]:
        """Shape of one latent code in ``space`` (without the batch dimension)."""
        self._check_space(space)
        return (self.latent_size,)

    def sample_codes(self, count: int, rng: torch.Generator, space: str = "z",
                     device: torch.device | str = "cpu") -> torch.Tensor:
        """``count`` initial codes in ``space``, drawn from ``rng`` (z ~ N(0, I) by default)."""
        self._check_space(space)
        codes = torch.randn((count, *self.code_shape(space)), generator=rng)
        return codes.to(device)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        """Render codes in the default space: ``[M, *code_shape] -> [M, 3, R, R]`` in ~[-1, 1]."""
        raise NotImplementedError

    def split(self, layer: int, space: str = "z") -> tuple[nn.Module, nn.Module]:
        """``(lower, upper)`` such that ``upper(lower(code)) == self(code)``; lower ends at ``layer``."""
        raise NotImplementedError

    def upper_latent_shape(self, layer: int) -> tuple[int, ...] | None:
        """Shape of the extra per-image latent the upper part reads (``None``: it reads only features)."""
        return None

    def initial_upper_latent(self, layer: int, count: int, rng: torch.Generator) -> torch.Tensor | None:
        """Initial values of that extra latent for ``count`` images (``None`` when there is none)."""
        return None

    def freeze(self) -> Generator:
        """Evaluation mode, no weight gradients: the engine only needs gradients w.r.t. its inputs."""
        self.eval()
        self.requires_grad_(False)
        return self

    def _check_space(self, space: str) -> None:
        if space not in self.latent_spaces:
            raise ConfigurationError(
                f"{type(self).__name__} has no latent space {space!r}; it has {', '.join(self.latent_spaces)}"
            )


def check_upper_inputs(what: str, features: torch.Tensor, feature_shape: tuple[int, int, int] | None,
                       upper_latent: torch.Tensor | None = None,
                       latent_shape: tuple[int, ...] | None = None) -> None:
    """The inputs of an upper part: features ``[M, C, H, W]`` with ``(C, H, W) == feature_shape`` (unchecked when
    ``None``) and, for families that read one, the upper latent ``[M, *latent_shape]``. ``ValueError`` if not."""
    if feature_shape is None:
        batch = {}
    else:
        channels, height, width = feature_shape
        batch = {"M": check_shape(features, "M C H W", f"{what}'s features", C=channels, H=height, W=width)["M"]}
    if latent_shape is not None:
        spec = " ".join(["M", *map(str, latent_shape)])
        if upper_latent is None:
            raise ValueError(f"{what} needs an upper latent [{spec.replace(' ', ', ')}], got None")
        check_shape(upper_latent, spec, f"{what}'s upper latent", **batch)


class SequentialUpper(nn.Module):
    """Upper part built from a slice of blocks; ignores ``upper_latent`` (families that read none).
    ``feature_shape`` ``(C, H, W)``: what the first block reads (checked on every call)."""

    def __init__(self, blocks: nn.Module, feature_shape: tuple[int, int, int] | None = None) -> None:
        super().__init__()
        self.blocks = blocks
        self.feature_shape = feature_shape

    def forward(self, features: torch.Tensor, upper_latent: torch.Tensor | None = None) -> torch.Tensor:
        check_upper_inputs("upper part", features, self.feature_shape)
        return self.blocks(features)
