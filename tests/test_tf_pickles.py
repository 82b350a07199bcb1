"""Official TensorFlow network pickles (PGGAN ``tfutil.Network``, StyleGAN / StyleGAN2
``dnnlib.tflib.network.Network``), read without TensorFlow and without running their code.

No official pickle is available here, so every test writes one in exactly the official format with the
writers of :mod:`bench.official_formats` (shared with ``python -m bench.full_size``): ``pickle.dump((G, D, Gs),
protocol=4)`` of ``tfutil.Network`` / ``dnnlib.tflib.network.Network`` stand-ins whose ``__getstate__`` is the
official state dict. Here ``build_module_src`` holds code that would create a marker file if it were ever
executed.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bench.official_formats import SG2_FUNCS, SG_FUNCS, write_tf_pggan, write_tf_style
from bench.official_formats import randomised as _randomised
from mgan_cli.errors import UnknownFormatError, UnsafePickleError
from mgan_cli.generators.layers import pixel_norm
from mgan_cli.weights.formats import READERS, build, tf_pggan, tf_stylegan, tf_stylegan2

ATOL_ROUND_TRIP = 1e-6
ATOL_GOLDEN = 1e-4


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---- helpers ---------------------------------------------------------------------------------------------------

def _maxdiff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def _golden(shared_dir: Path, fixture: str) -> tuple[dict, dict, dict, dict]:
    folder = shared_dir / "golden" / fixture
    return (json.loads((folder / "config.json").read_text())["constructor_kwargs"],
            torch.load(folder / "state_dict.pt", weights_only=True),
            torch.load(folder / "inputs.pt", weights_only=True),
            torch.load(folder / "outputs.pt", weights_only=True))


PGGAN_CONFIG = {"resolution": 32, "z_dim": 24, "image_channels": 3, "fmaps_base": 512, "fmaps_max": 32}
PGGAN_KWARGS = {"num_channels": 3, "resolution": 32, "label_size": 0, "fmap_base": 256, "fmap_max": 32,
                "latent_size": 24, "normalize_latents": True, "use_wscale": True, "use_pixelnorm": True,
                "use_leakyrelu": True}
STYLEGAN_CONFIG = {"resolution": 32, "z_dim": 16, "w_dim": 16, "image_channels": 3, "mapping_layers": 3,
                   "fmaps_base": 256, "fmaps_max": 16, "truncation_psi": 0.7, "truncation_layers": 8}
STYLE_KWARGS = {"num_channels": 3, "resolution": 32, "label_size": 0, "fmap_base": 128, "fmap_max": 16,
                "latent_size": 16, "dlatent_size": 16, "mapping_fmaps": 16, "mapping_layers": 3}
STYLEGAN2_CONFIG = {"resolution": 32, "z_dim": 16, "w_dim": 16, "image_channels": 3, "fmaps_base": 256,
                    "fmaps_max": 16, "num_mapping_layers": 3, "truncation_psi": 0.5, "truncation_layers": 8}


# ---- PGGAN -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fused_scale", [False, True])
def test_tf_pggan_round_trip(tmp_path: Path, fused_scale: bool) -> None:
    config = {**PGGAN_CONFIG, "fused_scale": fused_scale}
    model = _randomised("pggan", config, seed=1)
    variables = tf_pggan.to_tf_variables(model.state_dict(), config)
    assert ("32x32/Conv0_up/weight" in variables) is fused_scale and "ToRGB_lod0/weight" in variables
    marker = tmp_path / "executed"
    path = tmp_path / "karras2018iclr-test-32x32.pkl"
    write_tf_pggan(path, variables, {**PGGAN_KWARGS, "fused_scale": fused_scale}, marker)
    weights = READERS.get("tf-pggan")(path)
    assert weights.architecture == "pggan" and weights.config == config
    loaded = build(weights)
    z = torch.randn(3, config["z_dim"], generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        assert _maxdiff(loaded(z), model(z)) <= ATOL_ROUND_TRIP
    assert not marker.exists(), "build_module_src was executed"


def test_tf_pggan_dense_layer_follows_tf_semantics(tmp_path: Path) -> None:
    """The TF first layer — dense, reshape [-1, C, 4, 4], bias, LeakyReLU — computed from the TF variables."""
    config = {**PGGAN_CONFIG, "fused_scale": False}
    model = _randomised("pggan", config, seed=2)
    variables = tf_pggan.to_tf_variables(model.state_dict(), config)
    z = torch.randn(2, config["z_dim"], generator=torch.Generator().manual_seed(6))
    dense = torch.from_numpy(variables["4x4/Dense/weight"])
    bias = torch.from_numpy(variables["4x4/Dense/bias"])
    wscale = math.sqrt(2) / 4 / math.sqrt(config["z_dim"])  # G_paper: gain sqrt(2)/4, fan_in = z_dim
    expected = F.leaky_relu((pixel_norm(z) @ dense * wscale).view(2, -1, 4, 4) + bias.view(1, -1, 1, 1), 0.2)
    with torch.no_grad():
        assert _maxdiff(model.layer0(z.view(2, -1, 1, 1)), expected) < 1e-5


def test_tf_pggan_fused_upconv_follows_tf_semantics() -> None:
    """TF ``upscale2d_conv2d``: weight [3, 3, out, in], padded and window-summed to 4×4, ``conv2d_transpose``
    with stride 2 and SAME padding — computed from the TF variable of a layer with in ≠ out channels."""
    config = {**PGGAN_CONFIG, "fused_scale": True}
    model = _randomised("pggan", config, seed=3)
    variables = tf_pggan.to_tf_variables(model.state_dict(), config)
    weight = torch.from_numpy(variables["32x32/Conv0_up/weight"])  # [3, 3, out=16, in=32]
    assert weight.shape == (3, 3, 16, 32)
    bias = torch.from_numpy(variables["32x32/Conv0_up/bias"])
    kernel = F.pad(weight * math.sqrt(2) / math.sqrt(9 * 32), (0, 0, 0, 0, 1, 1, 1, 1))
    kernel = kernel[1:, 1:] + kernel[:-1, 1:] + kernel[1:, :-1] + kernel[:-1, :-1]  # [4, 4, out, in]
    x = torch.randn(2, 32, 16, 16, generator=torch.Generator().manual_seed(4))
    upconv = F.conv_transpose2d(pixel_norm(x), kernel.permute(3, 2, 0, 1), stride=2, padding=1)
    expected = F.leaky_relu(upconv + bias.view(1, -1, 1, 1), 0.2)
    with torch.no_grad():
        assert _maxdiff(model.layer6(x), expected) < 1e-5


def test_tf_pggan_reproduces_golden(tmp_path: Path, shared_dir: Path) -> None:
    official, state, inputs, outputs = _golden(shared_dir, "genforce_pggan32")
    config = {"resolution": official["resolution"], "z_dim": official["z_space_dim"],
              "image_channels": official["image_channels"], "fmaps_base": official["fmaps_base"],
              "fmaps_max": official["fmaps_max"], "fused_scale": official["fused_scale"]}
    path = tmp_path / "golden.pkl"
    kwargs = {"num_channels": 3, "resolution": 32, "label_size": 0, "fused_scale": False}
    write_tf_pggan(path, tf_pggan.to_tf_variables(state, config), kwargs, tmp_path / "executed")
    weights = READERS.get("tf-pggan")(path)
    assert weights.config == config
    with torch.no_grad():
        assert _maxdiff(build(weights)(inputs["z"]), outputs["image"]) < ATOL_GOLDEN
    assert not (tmp_path / "executed").exists()


# ---- StyleGAN --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("fused_scale", "resolution"), [("auto", 128), (True, 32)])
def test_tf_stylegan_round_trip(tmp_path: Path, fused_scale: bool | str, resolution: int) -> None:
    """'auto' at 128²: the 128×128 up-conv is fused (TF-layout weight), the lower ones are not."""
    config = {**STYLEGAN_CONFIG, "fused_scale": fused_scale, "resolution": resolution}
    num_layers = 2 * int(math.log2(resolution)) - 2
    model = _randomised("stylegan", config, seed=3)
    assert hasattr(model.synthesis.layer2, "weight") is (fused_scale is True)
    variables = tf_stylegan.to_tf_variables(model.state_dict(), config)
    assert "synthesis/noise5" in variables and "mapping/Dense2/weight" in variables and "dlatent_avg" in variables
    marker = tmp_path / "executed"
    path = tmp_path / "karras2019stylegan-test.pkl"
    kwargs = {**STYLE_KWARGS, "resolution": resolution}
    if fused_scale is True:
        kwargs["fused_scale"] = True
    write_tf_style(path, variables, kwargs, marker, 3, SG_FUNCS, num_layers=num_layers)
    weights = READERS.get("tf-stylegan")(path)
    assert weights.architecture == "stylegan" and weights.config == config  # truncation: G_style's 0.7 / 8
    loaded = build(weights)
    assert hasattr(loaded.synthesis, "layer10") is False or hasattr(loaded.synthesis.layer10, "weight")
    z = torch.randn(3, config["z_dim"], generator=torch.Generator().manual_seed(7))
    wp = torch.randn(3, num_layers, config["w_dim"], generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        assert _maxdiff(loaded(z), model(z)) <= ATOL_ROUND_TRIP
        assert _maxdiff(loaded.render(wp, "w+"), model.render(wp, "w+")) <= ATOL_ROUND_TRIP
    assert not marker.exists(), "build_module_src was executed"


def test_tf_stylegan_mapping_and_style_follow_tf_semantics() -> None:
    """TF ``dense``: ``x @ W`` with W [in, out] (mapping ×0.01 lr, StyleMod gain 1) from the TF variables."""
    config = {**STYLEGAN_CONFIG, "fused_scale": "auto"}
    model = _randomised("stylegan", config, seed=4)
    tf = {k: torch.from_numpy(np.asarray(v)) for k, v in tf_stylegan.to_tf_variables(model.state_dict(),
                                                                                      config).items()}
    x = pixel_norm(torch.randn(2, 16, generator=torch.Generator().manual_seed(9)))
    coef = math.sqrt(2) / math.sqrt(16) * 0.01
    dense0 = F.leaky_relu(x @ tf["mapping/Dense0/weight"] * coef + tf["mapping/Dense0/bias"] * 0.01, 0.2)
    style = x @ tf["synthesis/8x8/Conv1/StyleMod/weight"] / math.sqrt(16) + tf["synthesis/8x8/Conv1/StyleMod/bias"]
    with torch.no_grad():
        assert _maxdiff(model.mapping.dense0(x), dense0) < 1e-5
        assert _maxdiff(model.synthesis.layer3.epilogue.style_mod.dense(x), style) < 1e-5


@pytest.mark.parametrize("fixture", ["genforce_stylegan32", "genforce_stylegan32_fused"])
def test_tf_stylegan_reproduces_golden(tmp_path: Path, shared_dir: Path, fixture: str) -> None:
    official, state, inputs, outputs = _golden(shared_dir, fixture)
    config = {"resolution": 32, "z_dim": official["z_space_dim"], "w_dim": official["w_space_dim"],
              "image_channels": 3, "fused_scale": official["fused_scale"], "mapping_layers": 8,
              "fmaps_base": official["fmaps_base"], "fmaps_max": official["fmaps_max"]}
    variables = tf_stylegan.to_tf_variables(state, config)
    path = tmp_path / "golden.pkl"
    # the fixture's image_trunc: psi 0.7 on w+ rows 0-3, set as the network's static kwargs
    kwargs = {"resolution": 32, "num_channels": 3, "fused_scale": official["fused_scale"], "truncation_psi": 0.7,
              "truncation_cutoff": 4}
    write_tf_style(path, variables, kwargs, tmp_path / "executed", 3, SG_FUNCS, num_layers=8)
    weights = READERS.get("tf-stylegan")(path)
    assert weights.config == {**config, "truncation_psi": 0.7, "truncation_layers": 4}
    model = build(weights)
    with torch.no_grad():
        assert _maxdiff(model.render(inputs["wp_mix"], "w+"), outputs["image_mix"]) < ATOL_GOLDEN
        assert _maxdiff(model(inputs["z"]), outputs["image_trunc"]) < ATOL_GOLDEN
    assert not (tmp_path / "executed").exists()


# ---- StyleGAN2 -------------------------------------------------------------------------------------------------

def test_tf_stylegan2_round_trip(tmp_path: Path) -> None:
    config = STYLEGAN2_CONFIG
    model = _randomised("stylegan2", config, seed=5)
    variables = tf_stylegan2.to_tf_variables(model.state_dict(), config)
    assert {"synthesis/noise6", "synthesis/32x32/ToRGB/mod_bias", "synthesis/8x8/Conv0_up/noise_strength"} <= set(
        variables)
    assert "synthesis/noise7" not in variables  # TF: num_layers - 1 noise inputs
    marker = tmp_path / "executed"
    path = tmp_path / "stylegan2-test-config-f.pkl"
    write_tf_style(path, variables, {**STYLE_KWARGS, "mapping_lrmul": 0.01}, marker, 4, SG2_FUNCS, num_layers=8)
    weights = READERS.get("tf-stylegan2")(path)
    assert weights.architecture == "stylegan2"
    assert weights.config["truncation_psi"] == 0.5 and weights.config["truncation_layers"] == 8  # G_main default
    loaded = build(weights)
    z = torch.randn(3, config["z_dim"], generator=torch.Generator().manual_seed(10))
    wp = torch.randn(3, 8, config["w_dim"], generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        assert _maxdiff(loaded(z), model(z)) <= ATOL_ROUND_TRIP
        assert _maxdiff(loaded.render(wp, "w+"), model.render(wp, "w+")) <= ATOL_ROUND_TRIP
    assert not marker.exists(), "build_module_src was executed"


def test_tf_stylegan2_modulation_follows_tf_semantics() -> None:
    """TF ``s = w @ mod_weight / sqrt(w_dim) + mod_bias + 1`` from the TF variables."""
    model = _randomised("stylegan2", STYLEGAN2_CONFIG, seed=6)
    tf = {k: torch.from_numpy(np.asarray(v)) for k, v in tf_stylegan2.to_tf_variables(model.state_dict(),
                                                                                       STYLEGAN2_CONFIG).items()}
    w = torch.randn(2, 16, generator=torch.Generator().manual_seed(12))
    expected = w @ tf["synthesis/8x8/Conv0_up/mod_weight"] / 4.0 + tf["synthesis/8x8/Conv0_up/mod_bias"] + 1
    with torch.no_grad():
        assert _maxdiff(model.synthesis.layer1.style(w), expected) < 1e-5


def test_tf_stylegan2_reproduces_golden(tmp_path: Path, shared_dir: Path) -> None:
    official, state, inputs, outputs = _golden(shared_dir, "genforce_stylegan2_32")
    config = {"resolution": 32, "num_mapping_layers": official["num_mapping_layers"]}
    path = tmp_path / "golden.pkl"
    kwargs = {"resolution": 32, "num_channels": 3, "truncation_psi": 0.7, "truncation_cutoff": 4}
    write_tf_style(path, tf_stylegan2.to_tf_variables(state, config), kwargs, tmp_path / "executed", 4, SG2_FUNCS,
                   num_layers=8)
    weights = READERS.get("tf-stylegan2")(path)
    assert weights.config["fmaps_base"] == official["fmaps_base"] and weights.config["truncation_layers"] == 4
    model = build(weights)
    with torch.no_grad():
        assert _maxdiff(model.render(inputs["wp_mix"], "w+"), outputs["image_mix"]) < ATOL_GOLDEN
        assert _maxdiff(model(inputs["z"]), outputs["image_trunc"]) < ATOL_GOLDEN
    assert not (tmp_path / "executed").exists()


# ---- refusals --------------------------------------------------------------------------------------------------

class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("reader", ["tf-pggan", "tf-stylegan", "tf-stylegan2"])
def test_malicious_tf_pickle_is_refused(tmp_path: Path, reader: str) -> None:
    marker = tmp_path / "pwned"
    config = {**PGGAN_CONFIG, "fused_scale": False}
    variables: dict[str, Any] = dict(tf_pggan.to_tf_variables(_randomised("pggan", config, 0).state_dict(), config))
    variables["4x4/Conv/bias"] = _Payload(marker)
    path = tmp_path / "evil.pkl"
    write_tf_pggan(path, variables, PGGAN_KWARGS, tmp_path / "executed")
    with pytest.raises(UnsafePickleError, match="system"):
        READERS.get(reader)(path)
    assert not marker.exists() and not (tmp_path / "executed").exists()


def test_unknown_or_missing_variables_are_named(tmp_path: Path) -> None:
    config = STYLEGAN2_CONFIG
    variables = tf_stylegan2.to_tf_variables(_randomised("stylegan2", config, 7).state_dict(), config)
    extra = {**variables, "synthesis/16x16/Skip/weight": np.zeros((1, 1, 16, 16), np.float32)}
    path = tmp_path / "extra.pkl"
    write_tf_style(path, extra, STYLE_KWARGS, tmp_path / "executed", 4, SG2_FUNCS, num_layers=8)
    with pytest.raises(UnknownFormatError, match="16x16/Skip/weight"):
        READERS.get("tf-stylegan2")(path)
    missing = {k: v for k, v in variables.items() if k != "synthesis/16x16/Conv1/mod_bias"}
    write_tf_style(path, missing, STYLE_KWARGS, tmp_path / "executed", 4, SG2_FUNCS, num_layers=8)
    with pytest.raises(UnknownFormatError, match="16x16/Conv1/mod_bias"):
        READERS.get("tf-stylegan2")(path)


def test_unsupported_options_and_wrong_family_are_rejected(tmp_path: Path) -> None:
    config = {**STYLEGAN_CONFIG, "fused_scale": "auto"}
    variables = tf_stylegan.to_tf_variables(_randomised("stylegan", config, 8).state_dict(), config)
    path = tmp_path / "sg.pkl"
    write_tf_style(path, variables, {**STYLE_KWARGS, "use_pixel_norm": True}, tmp_path / "x", 3, SG_FUNCS, 8)
    with pytest.raises(UnknownFormatError, match="use_pixel_norm"):
        READERS.get("tf-stylegan")(path)
    write_tf_style(path, variables, STYLE_KWARGS, tmp_path / "x", 3, SG_FUNCS, 8)
    with pytest.raises(UnknownFormatError, match="G_style"):
        READERS.get("tf-stylegan2")(path)
    progressive = {**variables, "synthesis/lod": np.float32(1.0)}
    write_tf_style(path, progressive, STYLE_KWARGS, tmp_path / "x", 3, SG_FUNCS, 8)
    with pytest.raises(UnknownFormatError, match="lod"):
        READERS.get("tf-stylegan")(path)
    path.write_bytes(b"not a pickle at all")
    with pytest.raises(UnknownFormatError):
        READERS.get("tf-pggan")(path)
