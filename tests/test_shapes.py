"""The shape contract at the boundaries: one helper, used by the engine, compose, degradations, upper parts."""

from __future__ import annotations

import pytest
import torch

from mgan_cli.core.composition import compose
from mgan_cli.core.degradations import Downsample, Mask
from mgan_cli.utils.shapes import check_shape
from tests.helpers import tiny_generator


def test_names_bind_and_numbers_fix() -> None:
    assert check_shape(torch.zeros(2, 3, 8, 8), "B 3 R R") == {"B": 2, "R": 8}
    assert check_shape(torch.zeros(2, 5, 4), "B N C", "alphas", B=2, C=4) == {"B": 2, "N": 5, "C": 4}
    with pytest.raises(ValueError, match=r"images must be \[B, 3, R, R\], got \[2, 3, 8, 6\]"):
        check_shape(torch.zeros(2, 3, 8, 6), "B 3 R R", "images")
    with pytest.raises(ValueError, match=r"alphas must be \[B=2, N, C=4\], got \[3, 5, 4\]"):
        check_shape(torch.zeros(3, 5, 4), "B N C", "alphas", B=2, C=4)
    with pytest.raises(ValueError, match=r"got \[2, 3\]"):
        check_shape(torch.zeros(2, 3), "B 3 H W")


def test_compose_names_both_shapes() -> None:
    with pytest.raises(ValueError, match=r"alphas must be \[B=2, N=3, C=4\], got \[2, 3, 5\]"):
        compose(torch.ones(2, 3, 4, 5, 5), torch.ones(2, 3, 5))


def test_degradations_check_images_and_masks() -> None:
    with pytest.raises(ValueError, match="images must be"):
        Downsample(2, "area")(torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match=r"mask must be \[B=2, 1, H=8, W=8\], got \[2, 1, 4, 4\]"):
        Mask()(torch.zeros(2, 3, 8, 8), torch.zeros(2, 1, 4, 4))


def test_the_engine_and_upper_parts_check_their_inputs() -> None:
    from mgan_cli.core.degradations import Identity
    from mgan_cli.core.engine import InversionSettings, invert
    from mgan_cli.core.losses import ReconstructionLoss

    generator = tiny_generator()
    settings = InversionSettings(codes=2, layer=2, iterations=1)
    with pytest.raises(ValueError, match="observed must be"):
        invert(generator, torch.zeros(1, 32, 32), Identity(), ReconstructionLoss(0.0), settings, [0])
    with pytest.raises(ValueError, match=r"mask must be \[B=1, 1, R=32, R=32\]"):
        invert(generator, torch.zeros(1, 3, 32, 32), Mask(), ReconstructionLoss(0.0), settings, [0],
               mask=torch.zeros(1, 1, 16, 16))
    _, upper = generator.split(2)
    with pytest.raises(ValueError, match=r"upper part's features must be \[M, C=16, H=4, W=4\], got \[1, 8, 4, 4\]"):
        upper(torch.zeros(1, 8, 4, 4))
