"""Multi-code composition: shapes, conventions, and N = 1 with α = 1 equals the plain generator."""

from __future__ import annotations

import pytest
import torch

from mgan_cli.core.composition import compose, initial_alphas
from mgan_cli.core.engine import MultiCodeModel
from mgan_cli.errors import ConfigurationError
from mgan_cli.weights.loading import load_generator


@pytest.mark.parametrize("convention", ["sum", "mean"])
@pytest.mark.parametrize("layer", [1, 2, 3, 4])
def test_single_code_with_unit_alpha_is_the_generator(layer: int, convention: str) -> None:
    generator = load_generator("dcgan64-digiface")
    z = torch.randn(2, 1, 100, generator=torch.Generator().manual_seed(layer))
    model = MultiCodeModel(generator, layer, "z", convention)
    channels = generator.layer(layer).shape[0]
    composed = model(z, torch.ones(2, 1, channels))
    assert torch.allclose(composed, generator(z[:, 0]), atol=1e-6)


def test_sum_and_mean_conventions() -> None:
    features = torch.randn(2, 3, 4, 5, 5)
    alphas = torch.rand(2, 3, 4)
    expected = sum(features[:, n] * alphas[:, n, :, None, None] for n in range(3))
    assert torch.allclose(compose(features, alphas, "sum"), expected, atol=1e-6)
    assert torch.allclose(compose(features, alphas, "mean"), expected / 3, atol=1e-6)


def test_initial_alphas_make_the_mean_feature() -> None:
    features = torch.randn(1, 4, 2, 3, 3)
    composed = compose(features, initial_alphas(1, 4, 2), "sum")
    assert torch.allclose(composed, features.mean(dim=1), atol=1e-6)


def test_bad_shapes_and_conventions_are_errors() -> None:
    with pytest.raises(ValueError, match="alphas"):
        compose(torch.zeros(2, 3, 4, 5, 5), torch.zeros(2, 3, 5))
    with pytest.raises(ConfigurationError, match="unknown composition"):
        compose(torch.zeros(1, 1, 1, 1, 1), torch.zeros(1, 1, 1), "max")
