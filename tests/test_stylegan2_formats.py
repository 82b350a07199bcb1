"""StyleGAN2 weight readers: each file is written in its exact official format and read back.

* ``nvlabs-pickle``: a snapshot dict pickled with stand-ins whose module paths are the official ones
  (``torch_utils.persistence._reconstruct_persistent_obj(meta)`` with ``module_src``/``class_name``/``state``,
  ``dnnlib.util.EasyDict`` kwargs, real ``nn.Parameter`` pickling; the writers are in
  :mod:`bench.official_formats`, the stand-ins are the ``official_modules`` fixture of ``conftest.py``), read as data;
* ``rosinality``: ``torch.save({'g_ema': ..., 'latent_avg': ..., 'args': Namespace})``;
* ``genforce-stylegan2``: ``torch.save(OrderedDict state dict)``.

Golden weights (official layouts) go through each reader and must give the official images.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import pickle
import types
from pathlib import Path

import pytest
import torch

from bench.official_formats import nv_kwargs as _nv_kwargs
from bench.official_formats import persistent_tree as _persistent_tree
from bench.official_formats import write_nvlabs_snapshot
from mgan_cli.errors import UnknownFormatError, UnsafePickleError
from mgan_cli.generators import ARCHITECTURES
from mgan_cli.generators.stylegan2 import StyleGAN2
from mgan_cli.weights.formats import READERS, build
from mgan_cli.weights.formats.nvlabs import genforce_to_nvlabs
from mgan_cli.weights.formats.rosinality import genforce_to_rosinality

ATOL = 1e-4
SMALL = {"resolution": 32, "z_dim": 64, "w_dim": 64, "fmaps_base": 1024, "fmaps_max": 64}


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _random_model(seed: int, **config: object) -> StyleGAN2:
    """A small StyleGAN2 with every parameter and buffer redrawn (realistic scales, w_avg included)."""
    torch.manual_seed(seed)
    model = ARCHITECTURES.get("stylegan2")(**{**SMALL, "truncation_psi": None, **config})
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.startswith("mapping.") and name.endswith("fc.weight"):
                tensor.normal_(0.0, 100.0)
            elif not name.endswith("kernel"):
                tensor.normal_(0.0, 0.3 if "bias" in name or "strength" in name else 1.0)
    return model.freeze()


# ---- NVlabs pickles -------------------------------------------------------------------------------------

def _write_snapshot(path: Path, env: types.SimpleNamespace, nv_state: dict[str, torch.Tensor], kwargs: dict,
                    module_src: str = "# training/networks.py source would be here\n") -> None:
    write_nvlabs_snapshot(path, env, nv_state, kwargs, module_src)


def test_nvlabs_pickle_random_model_round_trip(tmp_path: Path, official_modules: types.SimpleNamespace) -> None:
    model = _random_model(1, mapping_hidden=64)
    marker = tmp_path / "source_was_executed"
    path = tmp_path / "network-snapshot-000100.pkl"
    _write_snapshot(path, official_modules, genforce_to_nvlabs(model.state_dict()),
                    _nv_kwargs(official_modules, 256.0), module_src=f"import os\nos.system('touch {marker}')\n")
    weights = READERS.get("nvlabs-pickle")(path)
    assert weights.architecture == "stylegan2" and weights.config["conv_clamp"] == 256.0
    assert weights.config["truncation_psi"] is None
    loaded = build(weights)
    reference = ARCHITECTURES.get("stylegan2")(**{**SMALL, "truncation_psi": None, "conv_clamp": 256.0})
    reference.load_state_dict(model.state_dict())
    z = torch.randn(3, 64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        assert torch.allclose(loaded(z), reference.freeze()(z), atol=1e-5)
    assert not marker.exists()  # the pickled module source is data, never executed


@pytest.mark.parametrize(("conv_clamp", "flat", "key"), [(None, False, "image"), (1.0, False, "image_conv_clamp1"),
                                                         (None, True, "image")])
def test_nvlabs_pickle_golden(tmp_path: Path, shared_dir: Path, official_modules: types.SimpleNamespace,
                              conv_clamp: float | None, flat: bool, key: str) -> None:
    folder = shared_dir / "golden" / "nvlabs_stylegan2_32"
    path = tmp_path / "golden.pkl"
    _write_snapshot(path, official_modules, _load(folder / "state_dict.pt"),
                    _nv_kwargs(official_modules, conv_clamp, flat))
    model = build(READERS.get("nvlabs-pickle")(path))
    inputs, outputs = _load(folder / "inputs.pt"), _load(folder / "outputs.pt")
    with torch.no_grad():
        assert float((model(inputs["z"]) - outputs[key]).abs().max()) < ATOL
        if key == "image":
            assert float((model.render(inputs["ws_mix"], "w+") - outputs["image_mix"]).abs().max()) < ATOL


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def test_nvlabs_malicious_pickle_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": _Evil(marker), "G": None, "D": None}))
    with pytest.raises(UnsafePickleError):
        READERS.get("nvlabs-pickle")(path)
    assert not marker.exists()


class _StorageRecord:
    """Pickles as ``torch.storage._load_from_bytes(data)``, the way NVlabs snapshots hold legacy storages."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __reduce__(self) -> tuple:
        return (torch.storage._load_from_bytes, (self.data,))


def test_nvlabs_storage_record_that_runs_code_is_refused_in_mgans_words(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = tmp_path / "payload"
    torch.save(_Evil(marker), payload, _use_new_zipfile_serialization=False)
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": _StorageRecord(payload.read_bytes()), "G": None, "D": None}, protocol=2))
    with pytest.raises(UnsafePickleError) as info:
        READERS.get("nvlabs-pickle")(path)
    message = str(info.value)
    assert "refused a storage record that names 'posix.system'" in message or "'nt.system'" in message
    assert "weights_only" not in message and "\n" not in message
    assert not marker.exists()


def test_nvlabs_rejects_other_files(tmp_path: Path) -> None:
    path = tmp_path / "not.pkl"
    path.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    with pytest.raises(UnknownFormatError):
        READERS.get("nvlabs-pickle")(path)


# ---- rosinality -----------------------------------------------------------------------------------------

def test_rosinality_random_model_round_trip(tmp_path: Path) -> None:
    model = _random_model(2, mapping_hidden=64)
    path = tmp_path / "550000.pt"
    state = genforce_to_rosinality(model.state_dict())
    torch.save({"g": state, "d": {"convs.0.0.weight": torch.randn(8, 3, 1, 1)}, "g_ema": state,
                "g_optim": {}, "d_optim": {}, "args": argparse.Namespace(size=32, latent=64, n_mlp=8),
                "ada_aug_p": 0.0, "latent_avg": model.truncation.w_avg.clone()}, path)
    weights = READERS.get("rosinality")(path)
    loaded = build(weights)
    z = torch.randn(3, 64, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        assert torch.allclose(loaded(z), model(z), atol=1e-5)
    assert torch.equal(loaded.truncation.w_avg, model.truncation.w_avg)


def test_rosinality_golden_and_official_layout(tmp_path: Path, shared_dir: Path) -> None:
    folder = shared_dir / "golden" / "genforce_stylegan2_32"
    genforce = _load(folder / "state_dict.pt")
    state = genforce_to_rosinality(genforce)
    # rosinality's convert_weight.py stores conv kernels like NVlabs (up-convs flipped), styles with the +1
    nvlabs = _load(folder / "nvlabs_equivalent_state_dict.pt")
    assert torch.equal(state["convs.0.conv.weight"][0], nvlabs["synthesis.b8.conv0.weight"])
    assert torch.equal(state["convs.1.conv.weight"][0], nvlabs["synthesis.b8.conv1.weight"])
    assert torch.equal(state["to_rgbs.2.conv.weight"][0], nvlabs["synthesis.b32.torgb.weight"])
    assert torch.allclose(state["conv1.conv.modulation.bias"], nvlabs["synthesis.b4.conv1.affine.bias"])
    path = tmp_path / "converted.pt"
    torch.save({"g_ema": state}, path)  # no latent_avg: w_avg is estimated from the mapping
    model = build(READERS.get("rosinality")(path))
    inputs, outputs = _load(folder / "inputs.pt"), _load(folder / "outputs.pt")
    with torch.no_grad():
        assert float((model(inputs["z"]) - outputs["image"]).abs().max()) < ATOL
        assert float((model.render(inputs["wp_mix"], "w+") - outputs["image_mix"]).abs().max()) < ATOL
    assert torch.allclose(model.truncation.w_avg, genforce["truncation.w_avg"], atol=0.5, rtol=0.05)


def test_rosinality_malicious_checkpoint_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"g_ema": _Evil(marker)}, path)
    with pytest.raises(UnsafePickleError):
        READERS.get("rosinality")(path)
    assert not marker.exists()


# ---- genforce -------------------------------------------------------------------------------------------

def test_genforce_stylegan2_reader(tmp_path: Path, shared_dir: Path) -> None:
    folder = shared_dir / "golden" / "genforce_stylegan2_32"
    path = tmp_path / "stylegan2_ffhq1024_generator.pth"
    torch.save(collections.OrderedDict(_load(folder / "state_dict.pt")), path)
    weights = READERS.get("genforce-stylegan2")(path)
    assert (weights.config["truncation_psi"], weights.config["truncation_layers"]) == (0.5, 8)
    model = build(weights)
    inputs, outputs = _load(folder / "inputs.pt"), _load(folder / "outputs.pt")
    with torch.no_grad():
        assert float((model.render(inputs["wp"], "w+") - outputs["image"]).abs().max()) < ATOL
        assert float((model.render(inputs["wp_trunc"], "w+") - outputs["image_trunc"]).abs().max()) < ATOL
        w_avg = model.truncation.w_avg
        expected = w_avg + (inputs["w"] - w_avg) * 0.5  # genforce wrapper: psi 0.5 on every row
        assert torch.allclose(model.to_wplus(inputs["z"]), expected[:, None].expand(-1, 8, -1), atol=ATOL)


def test_genforce_stylegan2_random_model_and_bad_file(tmp_path: Path) -> None:
    model = _random_model(3, resolution=64, fmaps_base=2048)
    path = tmp_path / "random.pth"
    torch.save(model.state_dict(), path)
    loaded = build(READERS.get("genforce-stylegan2")(path))
    assert loaded.resolution == 64
    wp = torch.randn(2, model.num_layers, 64)
    with torch.no_grad():
        assert torch.equal(loaded.render(wp, "w+"), model.render(wp, "w+"))
    bad = tmp_path / "bad.pth"
    torch.save({"synthesis.layer0.weight": torch.zeros(3, 3, 4, 4)}, bad)
    with pytest.raises(UnknownFormatError):
        READERS.get("genforce-stylegan2")(bad)


def test_nvlabs_config_json_matches_reader_kwargs(shared_dir: Path) -> None:
    """The golden fixture's recorded constructor kwargs are exactly what the reader understands."""
    from mgan_cli.weights.formats.nvlabs import config_from_init_kwargs

    kwargs = json.loads((shared_dir / "golden" / "nvlabs_stylegan2_32" / "config.json").read_text())
    config = config_from_init_kwargs(kwargs["constructor_kwargs"])
    assert (config["resolution"], config["fmaps_base"], config["fmaps_max"], config["mapping_hidden"]) == \
        (32, 1024, 64, 64)


# ---- NVlabs init kwargs: every one checked against what mgan's stylegan2 implements -----------------------

def _edit_kwargs(env: types.SimpleNamespace, block: str | None, key: str, value: object) -> dict:
    kwargs = _nv_kwargs(env, None)
    target = kwargs if block is None else kwargs[block]
    target[key] = value
    return kwargs


@pytest.mark.parametrize(("block", "key", "value", "message"), [
    ("mapping_kwargs", "activation", "relu", "mapping_kwargs.activation='relu' is not supported: mgan implements "
                                             "'lrelu'"),
    ("synthesis_kwargs", "activation", "relu", "synthesis_kwargs.activation='relu' is not supported"),
    ("synthesis_kwargs", "architecture", "resnet", "architecture='resnet' is not supported: mgan implements 'skip'"),
    ("synthesis_kwargs", "architecture", "orig", "architecture='orig' is not supported"),
    ("synthesis_kwargs", "resample_filter", [1, 2, 1], "resample_filter=[1, 2, 1] is not supported"),
    ("synthesis_kwargs", "use_noise", False, "use_noise=False is not supported"),
    ("synthesis_kwargs", "kernel_size", 5, "kernel_size=5 is not supported"),
    ("synthesis_kwargs", "magnitude_ema_beta", 0.99, "magnitude_ema_beta=0.99 is not one mgan knows"),
    ("mapping_kwargs", "lr_multiplier", -1.0, "lr_multiplier=-1.0 is not supported: -1.0 is not allowed"),
    (None, "img_channels", 1, "img_channels=1 is not supported: mgan implements 3 (RGB; single-channel"),
    (None, "c_dim", 10, "c_dim=10 is not supported"),
    (None, "extra_option", 1, "extra_option=1 is not one mgan knows"),
])
def test_nvlabs_init_kwargs_mgan_does_not_implement_are_refused(tmp_path: Path,
                                                                official_modules: types.SimpleNamespace,
                                                                block, key, value, message: str) -> None:
    model = _random_model(2, mapping_hidden=64)
    state = genforce_to_nvlabs(model.state_dict())
    if key == "architecture" and value == "orig":  # an 'orig' net has a toRGB only in its last block
        state = {k: v for k, v in state.items() if "torgb" not in k or k.startswith("synthesis.b32.")}
    path = tmp_path / "snapshot.pkl"
    _write_snapshot(path, official_modules, state, _edit_kwargs(official_modules, block, key, value))
    with pytest.raises(UnknownFormatError, match=message.replace("[", r"\[").replace("(", r"\(")) as info:
        READERS.get("nvlabs-pickle")(path)
    assert "missing" not in str(info.value)  # said before any weight is converted


def test_nvlabs_flat_kwargs_are_checked_too(tmp_path: Path, official_modules: types.SimpleNamespace) -> None:
    kwargs = {**_nv_kwargs(official_modules, None, flat=True), "activation": "relu"}
    path = tmp_path / "flat.pkl"
    _write_snapshot(path, official_modules, genforce_to_nvlabs(_random_model(3, mapping_hidden=64).state_dict()),
                    kwargs)
    with pytest.raises(UnknownFormatError, match="activation='relu' is not supported"):
        READERS.get("nvlabs-pickle")(path)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda s: {**s, "synthesis.b8.skip.weight": torch.zeros(64, 64, 1, 1)}, "'resnet' architecture"),
    (lambda s: {k: v for k, v in s.items() if "torgb" not in k or k.startswith("synthesis.b32.")},
     "'orig' architecture"),
])
def test_nvlabs_architecture_from_tensors_without_kwargs(tmp_path: Path, official_modules: types.SimpleNamespace,
                                                         edit, message: str) -> None:
    state = edit(genforce_to_nvlabs(_random_model(4, mapping_hidden=64).state_dict()))
    path = tmp_path / "nokwargs.pkl"
    _write_snapshot(path, official_modules, state, {})
    with pytest.raises(UnknownFormatError, match=message):
        READERS.get("nvlabs-pickle")(path)


def test_nvlabs_tensor_larger_than_its_storage_is_refused(tmp_path: Path,
                                                          official_modules: types.SimpleNamespace) -> None:
    from tests.helpers import run_bounded

    class Stride0:  # pickles like a tensor: 500 M float32 elements (2 GB) seen through a 1-element storage
        def __reduce__(self) -> tuple:
            with pytest.warns(UserWarning):  # TypedStorage is what torch itself pickles
                storage = torch.zeros(1).storage()
            return torch._utils._rebuild_tensor_v2, (storage, 0, (500_000_000,), (0,), False,
                                                     collections.OrderedDict())

    state = genforce_to_nvlabs(_random_model(5, mapping_hidden=64).state_dict())
    g_ema = _persistent_tree(official_modules, state, _nv_kwargs(official_modules, None), "# source\n")
    g_ema.state["_modules"]["mapping"].state["_buffers"]["w_avg"] = Stride0()
    path = tmp_path / "stride0.pkl"
    with open(path, "wb") as handle:
        pickle.dump({"G": g_ema, "D": None, "G_ema": g_ema}, handle)
    assert path.stat().st_size < 2_000_000
    code = f"""
import torch
from mgan_cli.weights.formats import READERS
from mgan_cli.errors import UnsafePickleError
try:
    READERS.get('nvlabs-pickle')({str(path)!r})
except UnsafePickleError as exc:
    print('refused', exc)
"""
    status, output, _, _ = run_bounded(code, timeout=120, max_rss_mb=1500)
    assert status == 0 and "refused" in output and "500000000 elements over a storage of 1" in output, output
