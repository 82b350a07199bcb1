"""The reconstruction loss's VGG16: the published weights, and one loss's modules never change another's."""

from __future__ import annotations

from pathlib import Path

import torch

from mgan_cli.core.losses import ReconstructionLoss, vgg16_features
from tests.helpers import vgg16_weights


def test_vgg16_features_hold_the_published_weights(shared_dir: Path) -> None:
    state = torch.load(shared_dir / "weights" / "backbones" / "vgg16_features_imagenet.pth", map_location="cpu",
                       weights_only=True)
    published = {key.removeprefix("features."): value for key, value in state.items()}
    features = vgg16_features(16, vgg16_weights())
    assert len(features) == 16 and not any(p.requires_grad for p in features.parameters())
    assert torch.equal(features[14].weight, published["14.weight"])
    assert torch.equal(features[14].bias, published["14.bias"])


def test_changing_one_loss_leaves_the_next_alone() -> None:
    """``.to(float64)``, channels-last and an in-place edit of one loss's VGG do not reach a later loss."""
    torch.manual_seed(0)
    images, targets = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    before = ReconstructionLoss(perceptual_weight=1.0, vgg_weights=vgg16_weights())(images, targets)

    changed = ReconstructionLoss(perceptual_weight=1.0, vgg_weights=vgg16_weights())
    changed = changed.to(torch.float64).to(memory_format=torch.channels_last)
    assert changed.perceptual is not None
    with torch.no_grad():
        changed.perceptual.features[0].weight.mul_(0.0)
    assert changed(images.double(), targets.double()).dtype == torch.float64

    later = ReconstructionLoss(perceptual_weight=1.0, vgg_weights=vgg16_weights())
    assert later.perceptual is not None
    first_conv = later.perceptual.features[0].weight
    assert first_conv.dtype == torch.float32 and first_conv.abs().sum() > 0
    assert first_conv.is_contiguous()
    torch.testing.assert_close(later(images, targets), before, rtol=0, atol=0)
