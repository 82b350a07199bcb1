"""The reconstruction loss: its value against VGG16 computed here with torchvision, its published weights, and
one loss's modules never changing another's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from mgan_cli.core.losses import vgg16_features
from mgan_cli.weights.store import weight_path
from tests.helpers import celeba_face, vgg16_weights


def _loss_from_settings(**settings: object) -> torch.nn.Module:
    """The loss as mgan builds it from a preset's ``loss:`` block (whatever the constructor's signature)."""
    from mgan_cli.config.presets import LossSettings

    return LossSettings(**settings).build()  # type: ignore[arg-type]


def _reference_terms(estimates: torch.Tensor, targets: torch.Tensor, depth: int,
                     distance: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference implementation's two terms per image, written from its description with torchvision's own
    VGG16: the pixel MSE, and the mean L1/L2 distance of ``vgg16().features[:depth]`` of the images mapped from
    [-1, 1] to [0, 1] and ImageNet-normalised."""
    network = torchvision.models.vgg16()
    state = torch.load(weight_path("vgg16-imagenet"), map_location="cpu", weights_only=True)
    network.features.load_state_dict({key.removeprefix("features."): value for key, value in state.items()})
    features = network.features[:depth].eval()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        a = features(((estimates + 1) / 2 - mean) / std)
        b = features(((targets + 1) / 2 - mean) / std)
    gap = (a - b).abs() if distance == "l1" else (a - b) ** 2
    return ((estimates - targets) ** 2).mean(dim=(1, 2, 3)), gap.mean(dim=(1, 2, 3))


def _faces(shared_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Two fixed 64×64 photos in [-1, 1] (targets) and blurred copies of them (estimates, as an inversion's
    early output), so that the perceptual term is a large part of the loss."""
    files = sorted((shared_dir / "data" / "celeba64").glob("*.jpg"))[:2]
    faces = [celeba_face(f) for f in files]
    blurred = [face.resize((16, 16), Image.Resampling.BOX).resize((64, 64), Image.Resampling.BILINEAR)
               for face in faces]

    def batch(images: list[Image.Image]) -> torch.Tensor:
        return torch.stack([torch.from_numpy(np.asarray(i).copy()).permute(2, 0, 1) for i in images]) / 127.5 - 1

    return batch(blurred), batch(faces)


@pytest.mark.parametrize(("weight", "depth", "distance"), [(1.0, 16, "l1"), (2.5, 23, "l2")])
def test_loss_matches_vgg16_computed_with_torchvision(shared_dir: Path, weight: float, depth: int,
                                                      distance: str) -> None:
    """``L = MSE + λ · 0.001 · d_VGG`` per image, with d_VGG as torchvision's VGG16 gives it (each term checked on
    its own: the perceptual one is a few percent of the total)."""
    estimates, targets = _faces(shared_dir)
    mse, perceptual = _reference_terms(estimates, targets, depth, distance)
    loss = _loss_from_settings(perceptual_weight=weight, vgg_layer=depth, distance=distance)
    with torch.no_grad():
        value = loss(estimates, targets)
    torch.testing.assert_close(value, mse + weight * 0.001 * perceptual, rtol=1e-5, atol=0)
    torch.testing.assert_close((value - mse) / (weight * 0.001), perceptual, rtol=1e-3, atol=0)


def test_vgg16_features_hold_the_published_weights(shared_dir: Path) -> None:
    state = torch.load(shared_dir / "weights" / "backbones" / "vgg16_features_imagenet.pth", map_location="cpu",
                       weights_only=True)
    published = {key.removeprefix("features."): value for key, value in state.items()}
    features = vgg16_features(16, vgg16_weights())
    assert len(features) == 16 and not any(p.requires_grad for p in features.parameters())
    assert torch.equal(features[14].weight, published["14.weight"])
    assert torch.equal(features[14].bias, published["14.bias"])


def test_changing_one_loss_leaves_the_next_alone(shared_dir: Path) -> None:
    """``.to(float64)``, channels-last and an in-place edit of one loss's VGG do not reach a later loss: the later
    one still scores as torchvision's VGG16 does."""
    estimates, targets = _faces(shared_dir)
    edited = _loss_from_settings(perceptual_weight=1.0)
    assert edited.perceptual is not None
    with torch.no_grad():
        edited.perceptual.features[0].weight.mul_(0.0)  # in place, in the loss's own dtype and layout
    changed = _loss_from_settings(perceptual_weight=1.0).to(torch.float64).to(memory_format=torch.channels_last)
    assert changed(estimates.double(), targets.double()).dtype == torch.float64

    later = _loss_from_settings(perceptual_weight=1.0)
    assert later.perceptual is not None
    first_conv = later.perceptual.features[0].weight
    assert first_conv.dtype == torch.float32 and first_conv.is_contiguous()
    with torch.no_grad():
        value = later(estimates, targets)
    mse, perceptual = _reference_terms(estimates, targets, 16, "l1")
    torch.testing.assert_close((value - mse) / 0.001, perceptual, rtol=1e-3, atol=0)
