"""Degradation operators, checked against independent computations (Pillow, numpy) where one exists."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from mgan_cli.core.degradations import (
    DEGRADATIONS,
    Downsample,
    Identity,
    Luma,
    Mask,
    build_degradation,
    luma_chroma_to_rgb,
    rgb_to_chroma,
    to_luma,
)
from mgan_cli.errors import ConfigurationError


def _image(seed: int = 0, size: int = 16) -> torch.Tensor:
    return torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_registry_holds_every_task_operator() -> None:
    assert {"identity", "luma", "downsample", "mask"} <= set(DEGRADATIONS.names())


def test_identity() -> None:
    x = _image()
    assert torch.equal(Identity()(x), x)


def test_luma_matches_pillow_greyscale() -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    pillow = np.asarray(Image.fromarray(pixels).convert("L"), dtype=np.float64)  # ITU-R 601-2 luma, rounded
    ours = to_luma(torch.from_numpy(pixels).permute(2, 0, 1)[None].double())[0, 0].numpy()
    assert np.abs(ours - pillow).max() <= 0.5 + 1e-9
    y = Luma()(_image())
    assert y.shape == (2, 3, 16, 16) and torch.equal(y[:, 0], y[:, 2])


def test_chroma_round_trip_and_pillow_ycbcr() -> None:
    x = _image(3)
    assert torch.allclose(luma_chroma_to_rgb(to_luma(x), rgb_to_chroma(x)), x, atol=1e-5)
    pixels = np.random.default_rng(2).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    ycbcr = np.asarray(Image.fromarray(pixels).convert("YCbCr"), dtype=np.float64)
    tensor = torch.from_numpy(pixels).permute(2, 0, 1)[None].double() / 127.5 - 1
    chroma = (rgb_to_chroma(tensor)[0].numpy() * 127.5) + 128  # back to Pillow's 0..255 scale
    assert np.abs(chroma - ycbcr[..., 1:].transpose(2, 0, 1)).max() <= 1.0


def test_colorize_output_keeps_the_observed_luma() -> None:
    observed = Luma()(_image(4))  # a grey image
    restored = _image(5) * 0.5
    output = Luma().finalize(restored, observed)
    assert torch.allclose(to_luma(output), to_luma(observed), atol=1e-5)
    assert torch.allclose(rgb_to_chroma(output), rgb_to_chroma(restored), atol=1e-5)


def test_downsample_modes() -> None:
    x = _image(6)
    area = Downsample(4, "area")(x)
    blocks = x.unflatten(2, (4, 4)).unflatten(4, (4, 4)).mean(dim=(3, 5))
    assert torch.allclose(area, blocks, atol=1e-6)
    reference = F.interpolate(x, scale_factor=0.25, mode="bilinear")  # the reference implementation's call
    assert torch.equal(Downsample(4, "bilinear")(x), reference)
    assert Downsample(4, "bicubic")(x).shape == (2, 3, 4, 4)
    assert Downsample(4).observed_size(64) == 16


def test_bicubic_downsample_is_close_to_pillow() -> None:
    pixels = np.random.default_rng(3).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    pillow = np.asarray(Image.fromarray(pixels).resize((8, 8), Image.Resampling.BICUBIC), dtype=np.float64)
    tensor = torch.from_numpy(pixels).permute(2, 0, 1)[None].double()
    ours = Downsample(4, "bicubic")(tensor)[0].permute(1, 2, 0).numpy()
    assert np.abs(ours - pillow).mean() < 1.0


def test_downsample_rejects_bad_scales() -> None:
    with pytest.raises(ConfigurationError, match="does not divide"):
        Downsample(3).observed_size(64)
    with pytest.raises(ConfigurationError, match="mode"):
        Downsample(2, "lanczos")


def test_mask_and_paste_known() -> None:
    x, y = _image(7), _image(8)
    mask = (torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(9)) > 0.5).float()
    assert torch.equal(Mask()(x, mask), x * (1 - mask))
    pasted = Mask(paste_known=True).finalize(x, y, mask)
    assert torch.equal(pasted[mask.expand_as(x) == 0], y[mask.expand_as(x) == 0])
    assert torch.equal(pasted[mask.expand_as(x) == 1], x[mask.expand_as(x) == 1])
    assert torch.equal(Mask(paste_known=False).finalize(x, y, mask), x)
    with pytest.raises(ConfigurationError):
        Mask()(x)


@pytest.mark.parametrize("spec", [{"type": "luma"}, {"type": "downsample", "scale": 2, "mode": "bicubic"},
                                  {"type": "downsample", "scale": 2, "mode": "area"}])
def test_gradients_flow(spec: dict) -> None:
    operator = build_degradation(spec).double()
    x = (torch.rand(1, 3, 8, 8, dtype=torch.float64) * 2 - 1).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: operator(t), (x,))


def test_build_rejects_unknown_kwargs() -> None:
    with pytest.raises(ConfigurationError, match="downsample"):
        build_degradation({"type": "downsample", "factor": 2})
    with pytest.raises(KeyError, match="did you mean"):
        build_degradation({"type": "lumma"})
