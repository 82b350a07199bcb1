"""StyleGAN2: golden outputs of the official genforce / NVlabs code, parameter counts, exact splits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mgan_cli.errors import ConfigurationError
from mgan_cli.generators import ARCHITECTURES
from mgan_cli.generators.stylegan2 import CONFIG_FMAPS_BASE, StyleGAN2
from mgan_cli.weights.formats.genforce_stylegan2 import infer_config
from mgan_cli.weights.formats.nvlabs import config_from_init_kwargs, nvlabs_to_genforce

ATOL = 1e-4


def _load(folder: Path, name: str) -> dict:
    return torch.load(folder / name, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def genforce_golden(shared_dir: Path) -> tuple[StyleGAN2, dict, dict]:
    folder = shared_dir / "golden" / "genforce_stylegan2_32"
    state = _load(folder, "state_dict.pt")
    model = ARCHITECTURES.get("stylegan2")(**infer_config(state), truncation_psi=None)
    model.load_state_dict(state, strict=True)
    return model.freeze(), _load(folder, "inputs.pt"), _load(folder, "outputs.pt")


@pytest.fixture(scope="module")
def nvlabs_golden(shared_dir: Path) -> tuple[StyleGAN2, dict, dict, dict]:
    folder = shared_dir / "golden" / "nvlabs_stylegan2_32"
    config = config_from_init_kwargs(json.loads((folder / "config.json").read_text())["constructor_kwargs"])
    state = nvlabs_to_genforce(_load(folder, "state_dict.pt"))
    model = ARCHITECTURES.get("stylegan2")(**config)
    model.load_state_dict(state, strict=True)
    return model.freeze(), _load(folder, "inputs.pt"), _load(folder, "outputs.pt"), {"config": config, "state": state}


def _record(model: torch.nn.Module) -> tuple[dict[str, torch.Tensor], list]:
    """Forward hooks keyed like the fixtures: module name, then ``name#call1``, … for repeated calls."""
    features: dict[str, torch.Tensor] = {}
    handles = []
    for name, module in model.named_modules():
        def hook(_m: torch.nn.Module, _i: object, out: torch.Tensor, name: str = name) -> None:
            key, n = name, 0
            while key in features:
                n += 1
                key = f"{name}#call{n}"
            features[key] = out.detach().clone()
        if name:
            handles.append(module.register_forward_hook(hook))
    return features, handles


def _maxdiff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    return float((a - b).abs().max())


def test_genforce_images_and_every_feature(genforce_golden: tuple) -> None:
    model, inputs, outputs = genforce_golden
    features, handles = _record(model)
    with torch.no_grad():
        assert _maxdiff(model.mapping(inputs["z"]), inputs["w"]) < ATOL
        assert _maxdiff(model(inputs["z"]), outputs["image"]) < ATOL
        image_features = dict(features)
        features.clear()
        assert _maxdiff(model.render(inputs["wp_mix"], "w+"), outputs["image_mix"]) < ATOL
        mix_features = dict(features)
        assert _maxdiff(model.render(inputs["wp_trunc"], "w+"), outputs["image_trunc"]) < ATOL
    for handle in handles:
        handle.remove()
    for name, expected in outputs["features"].items():
        got = image_features[name]
        assert _maxdiff(got, expected) < ATOL, name
    for name, expected in outputs["features_mix"].items():
        assert _maxdiff(mix_features[name], expected) < ATOL, name
    for name, expected in outputs["substeps_sample0"].items():  # up-conv FIR outputs (fused: [1, M·C, R, R])
        assert _maxdiff(image_features[name].reshape(expected.shape), expected) < ATOL, name


def test_genforce_truncation_in_config(genforce_golden: tuple, shared_dir: Path) -> None:
    model, inputs, outputs = genforce_golden
    truncated = ARCHITECTURES.get("stylegan2")(**infer_config(model.state_dict()), truncation_psi=0.7,
                                               truncation_layers=4)
    truncated.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert _maxdiff(truncated(inputs["z"]), outputs["image_trunc"]) < ATOL
        assert _maxdiff(truncated.to_wplus(inputs["z"]), inputs["wp_trunc"]) < ATOL
        # the default (genforce wrapper) is psi 0.5 on all rows: different from the untruncated image
        default = ARCHITECTURES.get("stylegan2")(**infer_config(model.state_dict()))
        default.load_state_dict(model.state_dict())
        assert _maxdiff(default(inputs["z"]), outputs["image"]) > 1e-2


def test_nvlabs_images_features_and_conv_clamp(nvlabs_golden: tuple) -> None:
    model, inputs, outputs, extra = nvlabs_golden
    features, handles = _record(model)
    with torch.no_grad():
        assert _maxdiff(model.to_wplus(inputs["z"]), inputs["ws"]) < ATOL
        assert _maxdiff(model(inputs["z"]), outputs["image"]) < ATOL
        image_features = dict(features)
        features.clear()
        assert _maxdiff(model.render(inputs["ws_mix"], "w+"), outputs["image_mix"]) < ATOL
        mix_features = dict(features)
        assert _maxdiff(model.render(inputs["ws_trunc"], "w+"), outputs["image_trunc"]) < ATOL
        clamped = ARCHITECTURES.get("stylegan2")(**{**extra["config"], "conv_clamp": 1.0})
        clamped.load_state_dict(extra["state"])
        assert _maxdiff(clamped.render(inputs["ws"], "w+"), outputs["image_conv_clamp1"]) < ATOL
        truncated = ARCHITECTURES.get("stylegan2")(**{**extra["config"], "truncation_psi": 0.7,
                                                      "truncation_layers": 4})
        truncated.load_state_dict(extra["state"])
        assert _maxdiff(truncated(inputs["z"]), outputs["image_trunc"]) < ATOL
    for handle in handles:
        handle.remove()
    # NVlabs module names -> ours: b{R}.conv0/conv1/torgb = layer{2b-1}/layer{2b}/output{b}
    blocks = {4 * 2**b: b for b in range(4)}
    for name, expected in outputs["features"].items():
        parts = name.split(".")
        if parts[0] == "mapping":
            got = image_features[f"mapping.dense{parts[1][2:]}"]
        else:
            b = blocks[int(parts[1][1:])]
            ours = {"conv0": f"layer{2 * b - 1}", "conv1": f"layer{2 * b}", "torgb": f"output{b}"}
            if len(parts) == 2:  # [x, running image]
                image = image_features[f"synthesis.output{b}"]
                if b > 0:
                    image = image + image_features["synthesis.upsample" + ("" if b == 1 else f"#call{b - 1}")]
                assert _maxdiff(image_features[f"synthesis.layer{2 * b}"], expected[0]) < ATOL, name
                assert _maxdiff(image, expected[1]) < ATOL, name
                continue
            # affine outputs include the +1 (torgb's before its 1/sqrt(in) gain), as our style outputs do
            got = image_features[f"synthesis.{ours[parts[2]]}" + (".style" if parts[-1] == "affine" else "")]
        assert _maxdiff(got, expected) < ATOL, name
    for name, expected in outputs["features_mix"].items():
        parts = name.split(".")
        b = blocks[int(parts[1][1:])]
        ours = {"conv0": f"layer{2 * b - 1}", "conv1": f"layer{2 * b}", "torgb": f"output{b}"}[parts[2]]
        assert _maxdiff(mix_features[f"synthesis.{ours}"], expected) < ATOL, name


def test_layers_names_and_shapes(genforce_golden: tuple) -> None:
    model = genforce_golden[0]
    layers = model.layers()
    assert [info.name for info in layers] == ["4x4/conv", "8x8/conv0_up", "8x8/conv1", "16x16/conv0_up",
                                              "16x16/conv1", "32x32/conv0_up", "32x32/conv1"]
    assert [info.index for info in layers] == list(range(1, 8))
    assert layers[0].shape == (64 + 3, 4, 4) and layers[-1].shape == (32 + 3, 32, 32)
    assert model.code_shape("z") == (64,) and model.code_shape("w") == (64,) and model.code_shape("w+") == (8, 64)
    with pytest.raises(ConfigurationError):
        model.layer(8)


@pytest.mark.parametrize("space", ["z", "w", "w+"])
def test_split_is_exact_at_every_layer(genforce_golden: tuple, space: str) -> None:
    model, inputs, _ = genforce_golden
    truncated = ARCHITECTURES.get("stylegan2")(**infer_config(model.state_dict()))  # psi 0.5: z path truncates
    truncated.load_state_dict(model.state_dict())
    truncated.freeze()
    code = {"z": inputs["z"], "w": inputs["w"], "w+": inputs["wp_mix"]}[space]
    with torch.no_grad():
        expected = truncated.render(code, space)
        wplus = truncated.to_wplus(code, space)
        for info in truncated.layers():
            lower, upper = truncated.split(info.index, space)
            features = lower(code)
            assert features.shape[1:] == info.shape
            rows = wplus[:, info.index:]
            assert rows.shape[1:] == truncated.upper_latent_shape(info.index)
            assert torch.equal(upper(features, rows), expected), info.name


def test_upper_latent_initialisation_and_checks(genforce_golden: tuple) -> None:
    model, inputs, _ = genforce_golden
    init = model.initial_upper_latent(3, 2, torch.Generator().manual_seed(0))
    assert init.shape == (2, 5, 64)
    assert torch.equal(init[1, 4], model.truncation.w_avg)
    lower, upper = model.split(3, "z")
    with torch.no_grad():
        image = upper(lower(inputs["z"][:2]), init)
    assert image.shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="needs an upper latent"):
        upper(lower(inputs["z"][:2]), None)


def test_multi_code_composition_mixes_lower_codes(genforce_golden: tuple) -> None:
    """Two codes composed with α = (1, 0) on every channel render the first code's image exactly."""
    model, inputs, _ = genforce_golden
    lower, upper = model.split(4, "w+")
    codes = inputs["wp_mix"][:2]
    with torch.no_grad():
        features = lower(codes)
        alpha = torch.stack([torch.ones(features.shape[1]), torch.zeros(features.shape[1])])
        composed = (features * alpha[:, :, None, None]).sum(dim=0, keepdim=True)
        image = upper(composed, codes[:1, 4:])
        assert torch.allclose(image, model.render(codes[:1], "w+"), atol=1e-5)


@pytest.mark.parametrize(("resolution", "expected"), [(1024, 30_370_060), (256, 30_034_338)])
def test_full_size_parameter_counts(resolution: int, expected: int) -> None:
    with torch.device("meta"):
        model = ARCHITECTURES.get("stylegan2")(resolution=resolution)
    assert sum(p.numel() for p in model.parameters()) == expected
    if resolution == 1024:
        assert sum(b.numel() for b in model.buffers()) == 2_796_850  # noise, FIR kernels, w_avg, truncation
        state = model.state_dict()  # as genforce's converter saves it: without truncation.truncation
        assert len(state) == 165 and sum(v.numel() for v in state.values()) == 33_166_892
        assert model.layers()[-1].shape == (32 + 3, 1024, 1024)
        assert len(model.layers()) == 17


def test_full_size_split_is_exact() -> None:
    torch.manual_seed(0)
    model = ARCHITECTURES.get("stylegan2")(resolution=256, fmaps_base=CONFIG_FMAPS_BASE["e"]).freeze()  # config E
    code = torch.randn(1, 512)
    with torch.no_grad():
        expected = model(code)
        wplus = model.to_wplus(code)
        for layer in (1, 6, 13):
            lower, upper = model.split(layer, "z")
            assert torch.equal(upper(lower(code), wplus[:, layer:]), expected)


@pytest.mark.parametrize("modulated_conv, fir", [("input-scaling", "single-channel"), ("grouped", "depthwise"),
                                                 ("input-scaling", "depthwise")])
def test_the_switchable_implementations_compute_the_same_image(modulated_conv: str, fir: str, monkeypatch) -> None:
    """Issue 19 item 8: each choice the device run may pick renders what the default does."""
    from mgan_cli.generators import ARCHITECTURES, stylegan2

    torch.manual_seed(0)
    model = ARCHITECTURES.get("stylegan2")(resolution=16, z_dim=8, w_dim=8, fmaps_base=64, fmaps_max=8,
                                           num_mapping_layers=2, truncation_psi=None, truncation_layers=None)
    with torch.no_grad():
        for param in model.parameters():
            param.normal_()
        codes = torch.randn(3, 8)
        expected = model(codes)
        monkeypatch.setitem(stylegan2.implementation, "modulated_conv", modulated_conv)
        monkeypatch.setitem(stylegan2.implementation, "filter", fir)
        torch.testing.assert_close(model(codes), expected, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError):
        stylegan2.set_implementation(modulated_conv="winograd")
