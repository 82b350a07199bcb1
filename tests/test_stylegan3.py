"""StyleGAN3 (-t and -r): golden outputs of the official NVlabs code, every intermediate layer, the schedule,
the full-size parameter counts, exact splits, and the filtered leaky ReLU against its textbook pipeline."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from mgan_cli.errors import ConfigurationError
from mgan_cli.generators import ARCHITECTURES
from mgan_cli.generators.filtered_lrelu import (
    activate,
    design_lowpass_filter,
    downsample_filter,
    filtered_lrelu,
    reference_filtered_lrelu,
    upsample_filter,
)
from mgan_cli.generators.stylegan3 import StyleGAN3
from mgan_cli.weights.formats.nvlabs import config_from_sg3_kwargs, nvlabs3_to_mgan

ATOL = 1e-5  # shared/golden/README.md §5: "Suggested tolerance: atol 1e-5"
FIXTURES = ("nvlabs_stylegan3t_32", "nvlabs_stylegan3r_32")


def _load(folder: Path, name: str) -> dict:
    return torch.load(folder / name, map_location="cpu", weights_only=True)


def _maxdiff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a - b).abs().max())


@pytest.fixture(scope="module", params=FIXTURES)
def golden(request: pytest.FixtureRequest, shared_dir: Path) -> dict:
    folder = shared_dir / "golden" / request.param
    meta = json.loads((folder / "config.json").read_text())
    config = config_from_sg3_kwargs(meta["constructor_kwargs"])
    state = nvlabs3_to_mgan(_load(folder, "state_dict.pt"))
    model = ARCHITECTURES.get("stylegan3")(**config)
    model.load_state_dict(state, strict=True)
    return {"model": model.freeze(), "config": config, "state": state, "meta": meta,
            "inputs": _load(folder, "inputs.pt"), "outputs": _load(folder, "outputs.pt")}


def _variant(config: dict, state: dict, **changes: object) -> StyleGAN3:
    model = ARCHITECTURES.get("stylegan3")(**{**config, **changes})
    model.load_state_dict(state, strict=True)
    return model.freeze()


def _record(model: torch.nn.Module) -> tuple[dict[str, torch.Tensor], list]:
    features: dict[str, torch.Tensor] = {}
    handles = []
    for name, module in model.named_modules():
        def hook(_m: torch.nn.Module, _i: object, out: torch.Tensor, name: str = name) -> None:
            features[name] = out.detach().clone()
        if name:
            handles.append(module.register_forward_hook(hook))
    return features, handles


def _sliced(ours: torch.Tensor, expected: torch.Tensor) -> torch.Tensor:
    """The fixture keeps 4-D maps as ``[:1, :4]`` (``[:1, :1]`` at the doubled rate)."""
    if ours.dim() == 4:
        return ours[: expected.shape[0], : expected.shape[1]]
    return ours


def test_images_w_and_every_layer(golden: dict) -> None:
    model, inputs, outputs = golden["model"], golden["inputs"], golden["outputs"]
    features, handles = _record(model)
    with torch.no_grad():
        assert _maxdiff(model.to_wplus(inputs["z"]), inputs["ws"]) < ATOL
        assert _maxdiff(model(inputs["z"]), outputs["image"]) < ATOL
        base = dict(features)
        features.clear()
        assert _maxdiff(model.render(inputs["ws_mix"], "w+"), outputs["image_mix"]) < ATOL
        mixed = dict(features)
    for handle in handles:
        handle.remove()
    names = {f"mapping.fc{i}": f"mapping.dense{i}" for i in range(2)}
    for name, expected in outputs["features"].items():
        if name == "mapping":  # the official mapping returns the broadcast ws
            continue
        got = _sliced(base[names.get(name, name)], expected)
        assert _maxdiff(got, expected) < ATOL, name
    assert any(name.endswith("L13_32_24") or name.endswith("L13_32_48") for name in outputs["features"])
    # features_mix: the affine outputs show which w+ row each layer reads
    for name, expected in outputs["features_mix"].items():
        assert _maxdiff(mixed[name], expected) < ATOL, name


def test_truncation_transforms_and_conv_clamp(golden: dict) -> None:
    model, inputs, outputs = golden["model"], golden["inputs"], golden["outputs"]
    config, state = golden["config"], golden["state"]
    z = inputs["z"][:2]  # two of the four samples: each comparison below is a full forward
    with torch.no_grad():
        truncated = _variant(config, state, truncation_psi=0.7, truncation_layers=8)
        assert _maxdiff(truncated.to_wplus(inputs["z"]), inputs["ws_trunc"]) < ATOL
        assert _maxdiff(truncated(z), outputs["image_trunc"][:2]) < ATOL
        everywhere = _variant(config, state, truncation_psi=0.7)  # NVlabs: cutoff None = every row
        w = model.to_wplus(inputs["z"])
        w_avg = state["truncation.w_avg"]
        assert _maxdiff(everywhere.to_wplus(inputs["z"]), w_avg + 0.7 * (w - w_avg)) < ATOL
        for key in ("transform", "transform_zoom"):
            model.synthesis.input.transform.copy_(inputs[key])
            try:
                assert _maxdiff(model(z), outputs[f"image_{key}"][:2]) < ATOL, key
            finally:
                model.synthesis.input.transform.copy_(torch.eye(3))
        clamped = _variant(config, state, conv_clamp=1.0)
        assert _maxdiff(clamped(z), outputs["image_conv_clamp1"][:2]) < ATOL


def test_transformed_input_features(golden: dict) -> None:
    model, inputs, outputs = golden["model"], golden["inputs"], golden["outputs"]
    with torch.no_grad():
        for key in ("transform", "transform_zoom"):
            model.synthesis.input.transform.copy_(inputs[key])
            try:
                got = model.synthesis.input(inputs["ws"][:, 0])
            finally:
                model.synthesis.input.transform.copy_(torch.eye(3))
            expected = outputs[f"features_{key}"]["synthesis.input"]
            assert _maxdiff(got[: expected.shape[0], : expected.shape[1]], expected) < ATOL, key


def test_substeps_of_the_input_and_the_filtered_lrelu(golden: dict) -> None:
    model, inputs, outputs = golden["model"], golden["inputs"], golden["outputs"]
    steps = outputs["substeps_sample0"]
    synthesis = model.synthesis
    with torch.no_grad():
        ws = inputs["ws"]
        sines, _ = synthesis.input.sines(ws[:, 0])
        expected = steps["synthesis.input.sin"]
        assert _maxdiff(sines[:1, ..., : expected.shape[-1]], expected) < ATOL
        x = synthesis.input(ws[:, 0])
        checked = 0
        for j, name in enumerate(synthesis.layer_names, start=1):
            layer = getattr(synthesis, name)
            prefix = f"synthesis.{name}"
            if f"{prefix}.modulated_conv2d" in steps:
                spec = layer.spec
                assert _maxdiff(layer.magnitude_ema.rsqrt(), steps[f"{prefix}.input_gain"]) < ATOL
                conv = layer.modulated_conv(x, layer.affine(ws[:, j]))
                assert _maxdiff(_sliced(conv, steps[f"{prefix}.modulated_conv2d"]),
                                steps[f"{prefix}.modulated_conv2d"]) < ATOL, name
                biased = conv + layer.bias.view(1, -1, 1, 1)
                assert _maxdiff(_sliced(biased, steps[f"{prefix}.filtered_lrelu.add_bias"]),
                                steps[f"{prefix}.filtered_lrelu.add_bias"]) < ATOL, name
                upsampled = upsample_filter(biased, layer.up_filter, spec.up, spec.padding)
                assert _maxdiff(_sliced(upsampled, steps[f"{prefix}.filtered_lrelu.upsampled"]),
                                steps[f"{prefix}.filtered_lrelu.upsampled"]) < ATOL, name
                activated = activate(upsampled, math.sqrt(2), 0.2, layer.conv_clamp)
                assert _maxdiff(_sliced(activated, steps[f"{prefix}.filtered_lrelu.activated"]),
                                steps[f"{prefix}.filtered_lrelu.activated"]) < ATOL, name
                out = downsample_filter(activated, layer.down_filter, spec.down)
                assert _maxdiff(_sliced(out, steps[f"{prefix}.filtered_lrelu"]),
                                steps[f"{prefix}.filtered_lrelu"]) < ATOL, name
                checked += 1
            x = layer(x, ws[:, j])
    assert checked == 2  # L1 (same rate, padding) and L5 (up 4, cropping)


def test_schedule_and_filters_match_the_official_constructor(golden: dict) -> None:
    meta, config, model = golden["meta"], golden["config"], golden["model"]
    derived = meta["derived"]
    assert model.num_layers == derived["num_ws"] == 16
    schedule = model.synthesis.schedule
    assert (schedule.input_channels, schedule.input_size, schedule.input_sampling_rate,
            schedule.input_bandwidth) == (derived["input"]["channels"], derived["input"]["size"][0],
                                          derived["input"]["sampling_rate"], derived["input"]["bandwidth"])
    for spec, official in zip(schedule.layers, derived["layers"], strict=True):
        assert spec.name == official["name"]
        assert list(spec.padding) == official["padding"], spec.name
        for field in ("in_channels", "out_channels", "in_size", "out_size", "in_sampling_rate",
                      "out_sampling_rate", "tmp_sampling_rate", "conv_kernel", "is_torgb", "is_critically_sampled",
                      "up_taps", "down_taps", "down_radial"):
            assert getattr(spec, field) == official[field], (spec.name, field)
        assert (spec.up, spec.down) == (official["up_factor"], official["down_factor"])
        for field in ("in_cutoff", "out_cutoff", "in_half_width", "out_half_width"):
            assert getattr(spec, field) == pytest.approx(official[field], rel=1e-12), (spec.name, field)
    # the filters designed from the schedule are the official buffers
    fresh = ARCHITECTURES.get("stylegan3")(**config)
    for key, value in fresh.state_dict().items():
        if key.endswith("_filter"):
            assert torch.allclose(value, golden["state"][key], atol=1e-7, rtol=0), key


@pytest.mark.parametrize("key", ["sg3t_ffhq1024", "sg3r_ffhq1024", "sg3t_afhqv2_512"])
def test_full_size_parameter_counts_and_schedules(shared_dir: Path, key: str) -> None:
    meta = json.loads((shared_dir / "golden" / "nvlabs_stylegan3t_32" / "config.json").read_text())
    counts = meta[f"full_size_parameter_counts_{key}"]
    kwargs = meta["full_size_constructor_kwargs"][counts["description"]]
    with torch.device("meta"):
        model = ARCHITECTURES.get("stylegan3")(**config_from_sg3_kwargs(kwargs))
    params = dict(model.named_parameters())
    assert sum(p.numel() for p in params.values()) == counts["parameters_total"]
    assert sum(p.numel() for k, p in params.items() if k.startswith("mapping.")) == counts["parameters_mapping"]
    assert sum(p.numel() for name, p in params.items() if name.startswith("synthesis.")) == \
        counts["parameters_synthesis"]
    for module, count in counts["parameters_per_module"].items():
        assert sum(p.numel() for k, p in params.items() if k.startswith(module + ".")) == count, module
    state = model.state_dict()
    assert len(state) == counts["num_state_dict_keys"] == 114
    assert sum(v.numel() for v in state.values()) == counts["state_dict_numel_total"]
    schedule = meta["full_size_layer_schedules"][counts["description"]]
    for spec, row in zip(model.synthesis.schedule.layers, schedule["layers"], strict=True):
        name, in_size, out_size, in_rate, out_rate, cutoff, half_width, up, down, padding, radial = row
        assert (spec.name, spec.in_size, spec.out_size, spec.in_sampling_rate, spec.out_sampling_rate, spec.up,
                spec.down, list(spec.padding), spec.down_radial) == \
            (name, in_size, out_size, in_rate, out_rate, up, down, padding, radial)
        assert spec.out_cutoff == pytest.approx(cutoff, abs=1e-5) and \
            spec.out_half_width == pytest.approx(half_width, abs=1e-5)


def test_layers_and_exact_splits(golden: dict) -> None:
    model, inputs = golden["model"], golden["inputs"]
    layers = model.layers()
    assert [info.index for info in layers] == list(range(1, 16))
    assert layers[0].name == "input" and layers[0].shape[1:] == (36, 36) and layers[0].sampling_rate == 16
    assert layers[6].name.startswith("L5_52_") and layers[6].sampling_rate == 32
    assert layers[-1].name.startswith("L13_32_") and layers[-1].shape[1:] == (32, 32)
    wp = inputs["ws_mix"][:2]
    with torch.no_grad():
        image = model.render(wp, "w+")
        for layer in (1, 7, 15):
            lower, upper = model.split(layer, "w+")
            features = lower(wp)
            assert tuple(features.shape[1:]) == layers[layer - 1].shape
            assert model.upper_latent_shape(layer) == (16 - layer, 64)
            assert torch.equal(upper(features, wp[:, layer:]), image), layer
        z = inputs["z"][:2]
        lower, upper = model.split(4, "z")
        assert torch.equal(upper(lower(z), model.to_wplus(z)[:, 4:]), model(z))
        with pytest.raises(ValueError, match="needs an upper latent"):
            upper(lower(z), None)
    with pytest.raises(ConfigurationError):
        model.split(16)
    start = model.initial_upper_latent(3, 2, torch.Generator())
    assert start is not None and start.shape == (2, 13, 64)
    assert torch.equal(start[1, 5], model.truncation.w_avg)


@pytest.mark.parametrize(("size", "up", "down", "up_taps", "down_taps", "padding", "radial"), [
    (38, 2, 2, 12, 12, (9, 8, 9, 8), False),          # same-rate layer
    (38, 4, 2, 24, 12, (-6, -9, -6, -9), False),      # rate-doubling layer: crops
    (54, 2, 2, 12, 12, (-11, -12, -11, -12), False),  # the L13 crop
    (36, 2, 2, 12, 12, (11, 10, 11, 10), True),       # stylegan3-r: radial down filter
    (32, 1, 1, 1, 1, (0, 0, 0, 0), False),            # toRGB: bias and clamp only
    (11, 3, 2, 7, 5, (2, -1, 3, 0), False),           # odd taps, taps not a multiple of up, uneven padding
])
@pytest.mark.parametrize("path", ["matmul", "conv"])
def test_filtered_lrelu_matches_the_textbook_pipeline(size: int, up: int, down: int, up_taps: int, down_taps: int,
                                                      padding: tuple[int, int, int, int], radial: bool, path: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import mgan_cli.generators.filtered_lrelu as flr

    monkeypatch.setattr(flr, "MATMUL_MAX_LENGTH", 10_000 if path == "matmul" else 0)
    rng = torch.Generator().manual_seed(size + up)
    x = torch.randn(2, 3, size, size + 1, generator=rng)
    bias = torch.randn(3, generator=rng)
    rate = 16.0 * up
    up_filter = design_lowpass_filter(up_taps, 2.0, 12.0, rate)
    down_filter = design_lowpass_filter(down_taps, 3.0, 10.0, rate, radial=radial)
    slope, gain = (1.0, 1.0) if up == 1 else (0.2, math.sqrt(2))
    fast = filtered_lrelu(x, bias, up_filter, down_filter, up, down, padding, gain, slope, clamp=1.5)
    reference = reference_filtered_lrelu(x, bias, up_filter, down_filter, up, down, padding, gain, slope, clamp=1.5)
    assert fast.shape == reference.shape
    assert _maxdiff(fast, reference) < 1e-5
    assert float(reference.abs().max()) > 0.1  # not trivially zero
    # gradients agree too (the engine differentiates through it)
    x.requires_grad_(True)
    grad_fast, = torch.autograd.grad(filtered_lrelu(x, bias, up_filter, down_filter, up, down, padding, gain,
                                                    slope, 1.5).square().sum(), x)
    grad_ref, = torch.autograd.grad(reference_filtered_lrelu(x, bias, up_filter, down_filter, up, down, padding,
                                                             gain, slope, 1.5).square().sum(), x)
    assert _maxdiff(grad_fast, grad_ref) < 1e-4


def test_sefa_stacks_the_input_and_layer_affines(golden: dict) -> None:
    from mgan_cli.edit import directions

    model = golden["model"]
    found = directions.sefa(model, 5)
    assert found.space == "w"
    rows = torch.cat([v for k, v in model.state_dict().items() if k.endswith("affine.weight")]).double()
    assert rows.shape[0] == 4 + sum(getattr(model.synthesis, n).spec.in_channels for n in model.synthesis.layer_names)
    rows = rows / rows.norm(dim=1, keepdim=True)
    values, vectors = torch.linalg.eigh(rows.T @ rows)
    expected = vectors[:, values.argsort(descending=True)[:5]].T
    cosines = (found.vectors.double() * expected).sum(dim=1).abs()
    assert torch.allclose(cosines, torch.ones(5, dtype=torch.float64), atol=1e-4)
