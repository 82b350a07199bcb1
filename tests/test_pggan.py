"""PGGAN (genforce layout): golden outputs of the official code, split exactness, mGANprior composition,
parameter counts, and the genforce ``.pth`` reader."""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from mgan_cli.errors import ConfigurationError, UnknownFormatError, UnsafePickleError
from mgan_cli.generators import ARCHITECTURES
from mgan_cli.generators.pggan import PGGAN
from mgan_cli.weights.formats import READERS, build

ATOL = 1e-4


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def golden(shared_dir: Path) -> dict:
    folder = shared_dir / "golden" / "genforce_pggan32"
    config = json.loads((folder / "config.json").read_text())
    kwargs = config["constructor_kwargs"]
    model = ARCHITECTURES.get("pggan")(resolution=kwargs["resolution"], z_dim=kwargs["z_space_dim"],
                                       image_channels=kwargs["image_channels"], fmaps_base=kwargs["fmaps_base"],
                                       fmaps_max=kwargs["fmaps_max"], fused_scale=kwargs["fused_scale"])
    model.load_state_dict(torch.load(folder / "state_dict.pt", weights_only=True))
    return {
        "config": config,
        "model": model.freeze(),
        "inputs": torch.load(folder / "inputs.pt", weights_only=True),
        "outputs": torch.load(folder / "outputs.pt", weights_only=True),
    }


def _randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every float parameter and buffer ~ N(0, 1) (biases too), drawn from one seeded generator."""
    rng = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point() and not name.endswith("lod"):
                tensor.copy_(torch.randn(tensor.shape, generator=rng))
    return model


# ---- golden ----------------------------------------------------------------------------------------------

def test_image_matches_official(golden: dict) -> None:
    image = golden["model"](golden["inputs"]["z"])
    torch.testing.assert_close(image, golden["outputs"]["image"], atol=ATOL, rtol=0)


def test_every_layer_and_torgb_matches_official(golden: dict) -> None:
    model, z, features = golden["model"], golden["inputs"]["z"], golden["outputs"]["features"]
    for layer in model.layers():
        lower, _ = model.split(layer.index)
        feature = lower(z)
        expected = features[f"layer{layer.index - 1}"]  # layer k = genforce layer{k-1}
        assert tuple(feature.shape[1:]) == layer.shape == tuple(expected.shape[1:])
        torch.testing.assert_close(feature, expected, atol=ATOL, rtol=0)
        if layer.index % 2 == 0:  # every block's toRGB (unused by the forward pass, but in the file)
            block = layer.index // 2 - 1
            torgb = getattr(model, f"output{block}")(feature)
            torch.testing.assert_close(torgb, features[f"output{block}"], atol=ATOL, rtol=0)


def test_multi_code_composition_matches_mganprior(golden: dict) -> None:
    """mGANprior's PGGAN_multi_z: features × alpha (per channel) summed over the codes, / z_number, then
    the upper part (whose first unit pixel-normalises the composed map)."""
    model, inputs, outputs = golden["model"], golden["inputs"], golden["outputs"]
    composition = golden["config"]["mganprior_composition"]
    layer, count = composition["composing_layer"], composition["z_number"]
    lower, upper = model.split(layer)
    codes, alpha = inputs["mganprior_z_estimate"], inputs["mganprior_alpha_estimate"]
    assert alpha.shape[-1] == model.layer(layer).shape[0]
    fused = sum(lower(codes[:, j]) * alpha[:, j, :, None, None] for j in range(count)) / count
    torch.testing.assert_close(fused, outputs["mganprior_fused_feature"], atol=ATOL, rtol=0)
    torch.testing.assert_close(upper(fused), outputs["mganprior_image"], atol=ATOL, rtol=0)


# ---- split ----------------------------------------------------------------------------------------------

def test_split_is_exact_at_every_layer(golden: dict) -> None:
    model, z = golden["model"], golden["inputs"]["z"]
    image = model(z)
    for layer in model.layers():
        lower, upper = model.split(layer.index)
        assert torch.equal(upper(lower(z)), image), layer
    assert model.upper_latent_shape(3) is None
    with pytest.raises(ConfigurationError, match="out of range"):
        model.split(len(model.layers()) + 1)
    with pytest.raises(ConfigurationError):
        model.split(2, space="w")


@pytest.mark.parametrize(("resolution", "layers"), [(256, (1, 7, 14)), (1024, (15,))])
def test_split_is_exact_at_full_size(resolution: int, layers: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    model = PGGAN(resolution=resolution).freeze()
    z = torch.randn(1, 512)
    image = model(z)
    for layer in layers:
        lower, upper = model.split(layer)
        assert torch.equal(upper(lower(z)), image)


# ---- architecture ---------------------------------------------------------------------------------------

def test_full_size_parameter_counts(golden: dict) -> None:
    """Learnable parameters as counted from the official nets (README: 23,079,115 / 23,044,309, + lod)."""
    config = golden["config"]
    for key, kwargs in (("full_size_parameter_counts", {}),
                        ("full_size_parameter_counts_lsun256", {"resolution": 256})):
        official = config[key]
        with torch.device("meta"):
            model = PGGAN(**kwargs)
        assert sum(p.numel() for p in model.parameters()) == official["parameters_total_excluding_lod"]
        state = model.state_dict()
        assert len(state) == official["num_state_dict_keys"]
        assert sum(v.numel() for v in state.values()) == official["state_dict_numel_as_saved_by_official_converter"]


def test_layer_table_at_1024() -> None:
    """README: 512 channels up to 32×32, then 256, 128, 64, 32, 16; two layers per resolution."""
    with torch.device("meta"):
        model = PGGAN(resolution=1024)
    layers = model.layers()
    channels = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}
    assert len(layers) == 18
    assert [layer.index for layer in layers] == list(range(1, 19))
    for layer in layers:
        res = 4 * 2 ** ((layer.index - 1) // 2)
        assert layer.shape == (channels[res], res, res)
    assert (layers[0].name, layers[1].name, layers[2].name, layers[3].name) == (
        "4x4/dense", "4x4/conv", "8x8/conv0_up", "8x8/conv1")


def test_fused_upconv_equals_upsample_then_true_convolution() -> None:
    """fused_scale=True (TF kernel [3, 3, in, out]) computes nearest ×2 + convolution with that kernel."""
    kwargs = {"resolution": 16, "z_dim": 32, "fmaps_base": 256, "fmaps_max": 32}
    fused = _randomise(PGGAN(fused_scale=True, **kwargs), seed=3).freeze()
    plain = PGGAN(fused_scale=False, **kwargs)
    state = dict(fused.state_dict())
    for i in (2, 4):
        weight = state.pop(f"layer{i}.weight")
        state[f"layer{i}.conv.weight"] = weight.permute(3, 2, 0, 1).flip(2, 3)
    plain.load_state_dict(state)
    z = torch.randn(3, 32, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(fused(z), plain.freeze()(z), atol=1e-4, rtol=1e-5)


# ---- genforce reader ------------------------------------------------------------------------------------

@pytest.mark.parametrize("fused_scale", [False, True])
def test_genforce_reader_round_trip(tmp_path: Path, fused_scale: bool) -> None:
    kwargs = {"resolution": 32, "z_dim": 48, "image_channels": 3, "fmaps_base": 512, "fmaps_max": 64,
              "fused_scale": fused_scale}
    model = _randomise(PGGAN(**kwargs), seed=1).freeze()
    path = tmp_path / "pggan_test.pth"
    torch.save(OrderedDict(model.state_dict()), path)
    weights = READERS.get("genforce-pggan")(path)
    assert weights.architecture == "pggan"
    assert weights.config == kwargs
    loaded = build(weights)
    z = torch.randn(2, 48, generator=torch.Generator().manual_seed(2))
    assert torch.equal(loaded(z), model(z))


def test_genforce_reader_reads_the_golden_file(golden: dict, shared_dir: Path) -> None:
    path = shared_dir / "golden" / "genforce_pggan32" / "state_dict.pt"
    model = build(READERS.get("genforce-pggan")(path))
    torch.testing.assert_close(model(golden["inputs"]["z"]), golden["outputs"]["image"], atol=ATOL, rtol=0)


def test_genforce_reader_rejects_unknown_missing_and_lod(tmp_path: Path) -> None:
    model = PGGAN(resolution=16, z_dim=16, fmaps_base=128, fmaps_max=16)
    state = OrderedDict(model.state_dict())
    reader = READERS.get("genforce-pggan")
    extra = OrderedDict(state, **{"layer3.extra": torch.zeros(1)})
    torch.save(extra, tmp_path / "extra.pth")
    with pytest.raises(UnknownFormatError, match="unknown keys"):
        reader(tmp_path / "extra.pth")
    missing = OrderedDict((k, v) for k, v in state.items() if k != "output1.wscale.bias")
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(UnknownFormatError, match="missing keys"):
        reader(tmp_path / "missing.pth")
    torch.save(OrderedDict(state, lod=torch.tensor(1.0)), tmp_path / "lod.pth")
    with pytest.raises(UnknownFormatError, match="lod"):
        reader(tmp_path / "lod.pth")
    torch.save({"a": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(UnknownFormatError):
        reader(tmp_path / "other.pth")
    (tmp_path / "text.pth").write_text("not a weights file")
    with pytest.raises(UnknownFormatError):
        reader(tmp_path / "text.pth")


class _Payload:
    """Unpickling this would call os.system; a safe reader must refuse before calling anything."""

    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_genforce_reader_refuses_malicious_pickle(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save(OrderedDict(payload=_Payload()), path)
    with pytest.raises(UnsafePickleError):
        READERS.get("genforce-pggan")(path)
