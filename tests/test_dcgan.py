"""DCGAN generators with their real weights: layer numbering, exact split, loaders."""

from __future__ import annotations

import pytest
import torch

from mgan_cli.errors import ConfigurationError, UnknownFormatError
from mgan_cli.weights.formats import READERS
from mgan_cli.weights.loading import load_generator


@pytest.fixture(scope="module")
def dcgan64() -> torch.nn.Module:
    return load_generator("dcgan64-digiface")


def test_dcgan64_layers_match_the_issue(dcgan64) -> None:
    shapes = [info.shape for info in dcgan64.layers()]
    assert shapes == [(512, 4, 4), (256, 8, 8), (128, 16, 16), (64, 32, 32)]
    assert dcgan64.latent_size == 100 and dcgan64.resolution == 64


@pytest.mark.parametrize("name", ["dcgan64-digiface", "dcgan32-celeba"])
def test_split_is_exact_at_every_layer(name: str) -> None:
    generator = load_generator(name)
    z = torch.randn(3, generator.latent_size, generator=torch.Generator().manual_seed(7))
    image = generator(z)
    assert image.shape == (3, 3, generator.resolution, generator.resolution)
    assert image.abs().max() <= 1.0  # tanh output
    for info in generator.layers():
        lower, upper = generator.split(info.index)
        features = lower(z)
        assert features.shape[1:] == info.shape
        assert torch.equal(upper(features), image)


def test_layer_out_of_range_names_the_valid_range(dcgan64) -> None:
    with pytest.raises(ConfigurationError, match=r"out of range 1\.\.4"):
        dcgan64.split(5)


def test_generator_is_frozen(dcgan64) -> None:
    assert not dcgan64.training
    assert not any(p.requires_grad for p in dcgan64.parameters())


def test_dcgan_tutorial_reader_rejects_other_files(tmp_path, shared_dir) -> None:
    not_torch = tmp_path / "weights.tar"
    not_torch.write_bytes(b"definitely not a checkpoint")
    with pytest.raises(UnknownFormatError):
        READERS.get("dcgan-tutorial-tar")(not_torch)
    wrong = tmp_path / "wrong.tar"
    torch.save({"netG_state_dict": {"other.0.weight": torch.zeros(1)}}, wrong)
    with pytest.raises(UnknownFormatError, match=r"other\.0\.weight"):
        READERS.get("dcgan-tutorial-tar")(wrong)
