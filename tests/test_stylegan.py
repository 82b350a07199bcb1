"""StyleGAN v1 (genforce layout): golden outputs of the official code (plain and fused up-convs, truncation,
per-layer w), split exactness in every latent space, the upper latent, parameter counts, and the genforce
``.pth`` reader."""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from mgan_cli.errors import ConfigurationError, UnknownFormatError, UnsafePickleError
from mgan_cli.generators import ARCHITECTURES
from mgan_cli.generators.layers import pixel_norm
from mgan_cli.generators.stylegan import StyleGAN
from mgan_cli.weights.formats import READERS, build

ATOL = 1e-4
FIXTURES = ("genforce_stylegan32", "genforce_stylegan32_fused")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _kwargs(official: dict, truncation_psi: float | None, truncation_layers: int | None) -> dict:
    return {"resolution": official["resolution"], "z_dim": official["z_space_dim"],
            "w_dim": official["w_space_dim"], "image_channels": official["image_channels"],
            "fused_scale": official["fused_scale"], "truncation_psi": truncation_psi,
            "truncation_layers": truncation_layers, "mapping_layers": official["num_mapping_layers"],
            "fmaps_base": official["fmaps_base"], "fmaps_max": official["fmaps_max"]}


@pytest.fixture(scope="module", params=FIXTURES)
def golden(request: pytest.FixtureRequest, shared_dir: Path) -> dict:
    folder = shared_dir / "golden" / request.param
    config = json.loads((folder / "config.json").read_text())
    state = torch.load(folder / "state_dict.pt", weights_only=True)

    def make(psi: float | None, layers: int | None) -> StyleGAN:
        model = ARCHITECTURES.get("stylegan")(**_kwargs(config["constructor_kwargs"], psi, layers))
        model.load_state_dict(state)
        return model.freeze()

    return {
        "folder": folder,
        "config": config,
        "model": make(None, None),
        "truncated": make(0.7, 4),  # the fixture's image_trunc: psi 0.7 on rows 0-3
        "inputs": torch.load(folder / "inputs.pt", weights_only=True),
        "outputs": torch.load(folder / "outputs.pt", weights_only=True),
    }


def _randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every float parameter and buffer except lod and blur kernels ~ N(0, 1), from one seeded generator."""
    rng = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not name.endswith(("lod", "blur.kernel")):
                tensor.copy_(torch.randn(tensor.shape, generator=rng))
    return model


# ---- golden ----------------------------------------------------------------------------------------------

def test_mapping_matches_official(golden: dict) -> None:
    model, inputs, features = golden["model"], golden["inputs"], golden["outputs"]["features"]
    x = inputs["z"]
    torch.testing.assert_close(model.mapping(x), inputs["w"], atol=ATOL, rtol=0)
    x = pixel_norm(x)
    torch.testing.assert_close(x, features["mapping.normalize"], atol=1e-6, rtol=0)
    for i in range(model.mapping.num_layers):
        x = getattr(model.mapping, f"dense{i}")(x)
        expected = features[f"mapping.dense{i}"]
        torch.testing.assert_close(x, expected, atol=ATOL * max(1.0, float(expected.abs().max())), rtol=0)


def test_images_match_official(golden: dict) -> None:
    model, inputs, outputs = golden["model"], golden["inputs"], golden["outputs"]
    torch.testing.assert_close(model(inputs["z"]), outputs["image"], atol=ATOL, rtol=0)
    torch.testing.assert_close(model.render(inputs["w"], "w"), outputs["image"], atol=ATOL, rtol=0)
    torch.testing.assert_close(model.render(inputs["wp_mix"], "w+"), outputs["image_mix"], atol=ATOL, rtol=0)
    truncated = golden["truncated"]
    torch.testing.assert_close(truncated.to_wplus(inputs["z"], "z"), inputs["wp_trunc"], atol=1e-5, rtol=0)
    torch.testing.assert_close(truncated(inputs["z"]), outputs["image_trunc"], atol=ATOL, rtol=0)


def test_every_layer_style_and_torgb_matches_official(golden: dict) -> None:
    model, inputs, outputs = golden["model"], golden["inputs"], golden["outputs"]
    for run, code, space in (("features", inputs["z"], "z"), ("features_mix", inputs["wp_mix"], "w+")):
        features = outputs[run]
        wp = model.to_wplus(code, space)
        for layer in model.layers():
            lower, _ = model.split(layer.index, space)
            feature = lower(code)
            name = f"synthesis.layer{layer.index - 1}"  # layer k = genforce synthesis.layer{k-1}
            assert tuple(feature.shape[1:]) == layer.shape == tuple(features[name].shape[1:])
            torch.testing.assert_close(feature, features[name], atol=ATOL, rtol=0)
            if f"{name}.epilogue.style_mod.dense" in features:
                style = getattr(model.synthesis, f"layer{layer.index - 1}").epilogue.style_mod.dense(
                    wp[:, layer.index - 1])
                torch.testing.assert_close(style, features[f"{name}.epilogue.style_mod.dense"], atol=ATOL, rtol=0)
            if layer.index % 2 == 0:
                block = layer.index // 2 - 1
                torgb = getattr(model.synthesis, f"output{block}")(feature)
                torch.testing.assert_close(torgb, features[f"synthesis.output{block}"], atol=ATOL, rtol=0)


# ---- split and the upper latent --------------------------------------------------------------------------

@pytest.mark.parametrize("space", ["z", "w", "w+"])
def test_split_is_exact_at_every_layer(golden: dict, space: str) -> None:
    model, inputs = golden["truncated"], golden["inputs"]
    code = {"z": inputs["z"], "w": inputs["w"], "w+": inputs["wp_mix"]}[space]
    assert tuple(code.shape[1:]) == model.code_shape(space)
    image = model.render(code, space)
    wp = model.to_wplus(code, space)
    for layer in model.layers():
        lower, upper = model.split(layer.index, space)
        upper_latent = wp[:, layer.index:].clone()
        assert tuple(upper_latent.shape[1:]) == model.upper_latent_shape(layer.index)
        assert torch.equal(upper(lower(code), upper_latent), image), (space, layer)


def test_upper_latent_defaults_and_errors(golden: dict) -> None:
    model = golden["model"]
    rows = model.num_layers - 3
    start = model.initial_upper_latent(3, 2, torch.Generator().manual_seed(0))
    assert start.shape == (2, rows, model.w_dim)
    assert torch.equal(start, model.truncation.w_avg.expand(2, rows, -1))
    lower, upper = model.split(3, "w+")
    features = lower(golden["inputs"]["wp_mix"])
    with pytest.raises(ValueError, match="upper latent"):
        upper(features)
    with pytest.raises(ValueError, match=rf"upper latent must be \[M=\d+, {rows}, {model.w_dim}\], got"):
        upper(features, golden["inputs"]["wp_mix"])  # full w+ instead of the rows above layer 3
    with pytest.raises(ConfigurationError, match="no latent space"):
        model.split(3, "s")


def test_multi_code_composition_at_a_style_layer(golden: dict) -> None:
    """The engine's formula (features × alpha summed / N) with the upper latent: N copies of one code with
    alpha = 1 and that code's own upper rows give back the code's image."""
    model, code = golden["model"], golden["inputs"]["wp_mix"]
    layer, count = 4, 3
    lower, upper = model.split(layer, "w+")
    alpha = torch.ones(code.shape[0], count, model.layer(layer).shape[0])
    fused = sum(lower(code) * alpha[:, j, :, None, None] for j in range(count)) / count
    torch.testing.assert_close(upper(fused, code[:, layer:]), model.render(code, "w+"), atol=1e-5, rtol=0)


def test_sample_codes_shapes(golden: dict) -> None:
    model = golden["model"]
    for space in model.latent_spaces:
        codes = model.sample_codes(3, torch.Generator().manual_seed(0), space)
        assert codes.shape == (3, *model.code_shape(space))
    w = model.sample_codes(2, torch.Generator().manual_seed(4), "w")
    z = torch.randn(2, model.latent_size, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(w, model.mapping(z))


@pytest.mark.parametrize(("resolution", "layers"), [(256, (2, 9, 13)), (1024, (16,))])
def test_split_is_exact_at_full_size(resolution: int, layers: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    model = StyleGAN(resolution=resolution).freeze()
    z = torch.randn(1, 512)
    image = model(z)
    wp = model.to_wplus(z, "z")
    for layer in layers:
        lower, upper = model.split(layer, "z")
        assert torch.equal(upper(lower(z), wp[:, layer:]), image)


# ---- architecture ---------------------------------------------------------------------------------------

def test_full_size_parameter_counts(shared_dir: Path) -> None:
    """README: FFHQ 1024 26,219,627 learnable (file 29,034,620 in 152 keys); 256: 26,086,229."""
    config = json.loads((shared_dir / "golden" / "genforce_stylegan32" / "config.json").read_text())
    for key, kwargs in (("full_size_parameter_counts_ffhq1024", {}), ("full_size_parameter_counts_256",
                                                                       {"resolution": 256})):
        official = config[key]
        with torch.device("meta"):
            model = StyleGAN(**kwargs)
        assert sum(p.numel() for p in model.parameters()) == official["parameters_total_excluding_lod"]
        assert sum(p.numel() for p in model.mapping.parameters()) == official["parameters_mapping"]
        state = model.state_dict()
        assert sum(v.numel() for v in state.values()) == official["state_dict_numel_as_saved_by_official_converter"]
        assert len(state) == official["num_state_dict_keys"] - 1  # minus truncation.truncation
    with torch.device("meta"):
        model = StyleGAN()
    assert [layer.name for layer in model.layers()[:4]] == ["4x4/const", "4x4/conv", "8x8/conv0_up", "8x8/conv1"]
    assert model.layer(18).shape == (16, 1024, 1024)
    assert model.code_shape("w+") == (18, 512)
    # fused_scale="auto": TF-layout weights exactly at resolutions >= 128 (layers 10/12/14/16)
    fused = sorted((k for k in model.state_dict() if k.endswith(".weight") and k.count(".") == 2 and ".layer" in k),
                   key=lambda k: int(k.split(".")[1][5:]))
    assert fused == [f"synthesis.layer{i}.weight" for i in (10, 12, 14, 16)]


# ---- genforce reader ------------------------------------------------------------------------------------

@pytest.mark.parametrize("fused_scale", [True, False, "auto"])
def test_genforce_reader_round_trip(tmp_path: Path, fused_scale: bool | str) -> None:
    kwargs = {"resolution": 16, "z_dim": 24, "w_dim": 20, "image_channels": 3, "fused_scale": fused_scale,
              "truncation_psi": 0.7, "truncation_layers": 8, "mapping_layers": 3, "fmaps_base": 256,
              "fmaps_max": 32}
    model = _randomise(StyleGAN(**kwargs), seed=1).freeze()
    path = tmp_path / "stylegan_test.pth"
    torch.save(OrderedDict(model.state_dict()), path)
    weights = READERS.get("genforce-stylegan")(path)
    assert weights.architecture == "stylegan"
    expected = dict(kwargs, fused_scale="auto" if fused_scale is False else fused_scale)  # same at 16×16
    assert weights.config == expected
    loaded = build(weights)
    z = torch.randn(2, 24, generator=torch.Generator().manual_seed(2))
    assert torch.equal(loaded(z), model(z))


def test_genforce_reader_reads_the_golden_files(shared_dir: Path) -> None:
    for fixture in FIXTURES:
        folder = shared_dir / "golden" / fixture
        weights = READERS.get("genforce-stylegan")(folder / "state_dict.pt")
        official = json.loads((folder / "config.json").read_text())["constructor_kwargs"]
        assert weights.config["fused_scale"] == official["fused_scale"]
        model = build(weights)
        inputs, outputs = torch.load(folder / "inputs.pt", weights_only=True), torch.load(
            folder / "outputs.pt", weights_only=True)
        torch.testing.assert_close(model.render(inputs["wp_mix"], "w+"), outputs["image_mix"], atol=ATOL, rtol=0)


def test_genforce_reader_accepts_full_state_dict_and_rejects_bad_keys(tmp_path: Path, shared_dir: Path) -> None:
    model = StyleGAN(resolution=8, z_dim=8, w_dim=8, mapping_layers=2, fmaps_base=64, fmaps_max=8)
    state = OrderedDict(model.state_dict())
    reader = READERS.get("genforce-stylegan")
    torch.save(OrderedDict(state, **{"truncation.truncation": torch.ones(1, 4, 1)}), tmp_path / "full.pth")
    assert reader(tmp_path / "full.pth").config["resolution"] == 8
    torch.save(OrderedDict(state, **{"synthesis.layer1.mystery": torch.zeros(2)}), tmp_path / "extra.pth")
    with pytest.raises(UnknownFormatError, match="unknown keys"):
        reader(tmp_path / "extra.pth")
    missing = OrderedDict((k, v) for k, v in state.items() if k != "truncation.w_avg")
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(UnknownFormatError, match="missing keys"):
        reader(tmp_path / "missing.pth")
    with pytest.raises(UnknownFormatError, match="StyleGAN"):
        reader(shared_dir / "golden" / "genforce_pggan32" / "state_dict.pt")


class _Payload:
    """Unpickling this would call os.system; a safe reader must refuse before calling anything."""

    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_genforce_reader_refuses_malicious_pickle(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"synthesis.layer0.const": torch.zeros(1), "payload": _Payload()}, path)
    with pytest.raises(UnsafePickleError):
        READERS.get("genforce-stylegan")(path)
