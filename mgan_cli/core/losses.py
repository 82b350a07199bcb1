"""The reconstruction loss: pixel MSE + λ · VGG16 perceptual distance, per image.

Matches the reference implementation (``inversion/losses.py``): images in [-1, 1] are mapped to [0, 1],
ImageNet-normalised, optionally resized (nearest) to ``perceptual_resolution``, passed through
``vgg16.features[:vgg_layer]`` (16 = through relu3_3), and compared with a mean L1 (or L2) distance
scaled by 0.001. The loss is returned *per image* (``[B]``) so that images in one batch never influence
each other's gradients (their sum is what the engine differentiates).

The VGG16 weights are a file the caller names (``vgg_weights``: torchvision's ImageNet ``vgg16`` state dict,
read with ``weights_only=True``); :meth:`mgan_cli.config.presets.LossSettings.build` takes it from the weight
store, so this module knows nothing of where weights come from.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from mgan_cli.errors import ConfigurationError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: The reference's fixed scale on the perceptual term.
PERCEPTUAL_SCALE = 0.001
#: indices of the 2×2 max-pools in torchvision's ``vgg16().features`` (31 modules)
VGG16_POOL_INDICES = (4, 9, 16, 23, 30)
VGG16_DEPTH = 31


def min_input_size(vgg_layer: int) -> int:
    """The smallest image side ``vgg16.features[:vgg_layer]`` accepts: 2 ** (its max-pools)."""
    return 2 ** sum(1 for index in VGG16_POOL_INDICES if index < vgg_layer)


@cache
def _vgg16_feature_weights(path: Path) -> dict[str, torch.Tensor]:
    """The ImageNet VGG16 ``features`` tensors of ``path``, read once per process (CPU; never handed out
    uncopied)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {key.removeprefix("features."): value for key, value in state.items()}


def vgg16_features(depth: int, vgg_weights: Path) -> nn.Sequential:
    """The first ``depth`` modules of ImageNet VGG16's ``features``: a new, frozen module with its own copy
    of the weights (the file is read once per process), so changing one loss's modules (``.to(float64)``,
    channels-last, in-place edits) never changes another's."""
    if not 1 <= depth <= VGG16_DEPTH:
        raise ConfigurationError(f"vgg_layer must be in 1..31 (16 = relu3_3, 23 = relu4_3), got {depth}")
    with torch.device("meta"):
        features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"])[:depth]
    wanted = set(features.state_dict())
    state = {key: value.clone() for key, value in _vgg16_feature_weights(Path(vgg_weights)).items()
             if key in wanted}
    features.load_state_dict(state, assign=True)
    return features.eval().requires_grad_(False)


def smallest_input(perceptual_weight: float, vgg_layer: int, perceptual_resolution: int | None) -> int:
    """The smallest image side the loss with these settings can compare: VGG16's max-pools need
    ``2 ** pools`` pixels, unless the images are resized to ``perceptual_resolution`` first or λ = 0."""
    if perceptual_weight <= 0 or perceptual_resolution is not None:
        return 1
    return min_input_size(vgg_layer)


class PerceptualDistance(nn.Module):
    """Mean L1/L2 distance between VGG16 features of two image batches ``[B, 3, H, W]`` in [-1, 1] -> ``[B]``."""

    def __init__(self, vgg_weights: Path, vgg_layer: int = 16, resolution: int | None = None,
                 distance: str = "l1") -> None:
        super().__init__()
        if distance not in ("l1", "l2"):
            raise ConfigurationError(f"perceptual distance must be 'l1' or 'l2', got {distance!r}")
        self.features = vgg16_features(vgg_layer, vgg_weights)
        self.resolution = resolution
        self.distance = distance
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """VGG features of ``[B, 3, H, W]`` images in [-1, 1]."""
        x = ((images * 0.5 + 0.5) - self.mean) / self.std
        if self.resolution is not None and x.shape[-1] != self.resolution:
            x = F.interpolate(x, size=(self.resolution, self.resolution), mode="nearest")
        return self.features(x)

    def forward_features(self, image_features: torch.Tensor, target_features: torch.Tensor) -> torch.Tensor:
        diff = image_features - target_features
        per_element = diff.abs() if self.distance == "l1" else diff.square()
        return per_element.flatten(1).mean(dim=1)

    def forward(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.forward_features(self.embed(images), self.embed(targets))


class ReconstructionLoss(nn.Module):
    """``L(a, y) = mean((a − y)²) + λ · 0.001 · d_VGG(a, y)`` per image, ``a = A(x̂)``.

    ``prepare(targets)`` computes the observed images' VGG features once; ``forward`` then only embeds
    the estimates. λ = 0 skips the VGG network entirely.
    """

    def __init__(self, perceptual_weight: float = 1.0, vgg_layer: int = 16,
                 perceptual_resolution: int | None = None, distance: str = "l1", *,
                 vgg_weights: Path | None = None) -> None:
        super().__init__()
        self.perceptual_weight = perceptual_weight
        self.perceptual = None
        if perceptual_weight > 0:
            if vgg_weights is None:
                raise ConfigurationError("the perceptual term (perceptual_weight > 0) needs vgg_weights, the VGG16 "
                                         "file (LossSettings.build() takes it from the weight store)")
            self.perceptual = PerceptualDistance(vgg_weights, vgg_layer, perceptual_resolution, distance)

    def smallest_input(self) -> int:
        """The smallest image side this loss can compare (see :func:`smallest_input`)."""
        if self.perceptual is None:
            return 1
        return smallest_input(self.perceptual_weight, len(self.perceptual.features), self.perceptual.resolution)

    def prepare(self, targets: torch.Tensor) -> torch.Tensor | None:
        """Target features (or ``None`` without a perceptual term), computed once per batch."""
        if self.perceptual is None:
            return None
        with torch.no_grad():
            return self.perceptual.embed(targets)

    def forward(self, estimates: torch.Tensor, targets: torch.Tensor,
                target_features: torch.Tensor | None = None) -> torch.Tensor:
        loss = (estimates - targets).square().flatten(1).mean(dim=1)
        if self.perceptual is not None:
            if target_features is None:
                target_features = self.prepare(targets)
            distance = self.perceptual.forward_features(self.perceptual.embed(estimates), target_features)
            loss = loss + self.perceptual_weight * PERCEPTUAL_SCALE * distance
        return loss
