"""StyleGAN3 network pickles: written in the exact official layout (``torch_utils.persistence`` records with
``module_src``, nn.Module ``__dict__`` states, buffers incl. the toRGB's ``None`` filters, ``dnnlib.EasyDict``
kwargs), read as data by ``nvlabs-pickle`` (never executing the source), every init kwarg checked."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from bench.official_formats import write_stylegan3_snapshot as _write_snapshot
from mgan_cli.cli import main
from mgan_cli.errors import UnknownFormatError
from mgan_cli.weights import store as weight_store
from mgan_cli.weights.formats import READERS, build
from mgan_cli.weights.loading import load_generator
from mgan_cli.weights.store import WeightStore, load_registry

ATOL = 1e-5

def _golden(shared_dir: Path, fixture: str) -> tuple[dict, dict, dict, dict]:
    folder = shared_dir / "golden" / fixture
    load = lambda name: torch.load(folder / name, map_location="cpu", weights_only=True)  # noqa: E731
    kwargs = json.loads((folder / "config.json").read_text())["constructor_kwargs"]
    return load("state_dict.pt"), kwargs, load("inputs.pt"), load("outputs.pt")


@pytest.mark.parametrize(("fixture", "conv_clamp", "key"), [("nvlabs_stylegan3t_32", 256, "image"),
                                                             ("nvlabs_stylegan3r_32", 1.0, "image_conv_clamp1")])
def test_golden_snapshot_reads_as_data_and_renders_officially(tmp_path: Path, shared_dir: Path,
                                                              official_modules: types.SimpleNamespace,
                                                              fixture: str, conv_clamp: float, key: str) -> None:
    state, kwargs, inputs, outputs = _golden(shared_dir, fixture)
    marker = tmp_path / "source_was_executed"
    path = tmp_path / "network-snapshot-000400.pkl"
    _write_snapshot(path, official_modules, state, {**kwargs, "conv_clamp": conv_clamp},
                    module_src=f"import os\nos.system('touch {marker}')\n")
    weights = READERS.get("nvlabs-pickle")(path)
    assert weights.architecture == "stylegan3" and weights.config["conv_clamp"] == conv_clamp
    assert weights.config["truncation_psi"] is None
    assert weights.config["conv_kernel"] == kwargs["conv_kernel"]
    model = build(weights)
    with torch.no_grad():
        assert float((model(inputs["z"][:2]) - outputs[key][:2]).abs().max()) < ATOL
    assert not marker.exists()


@pytest.mark.parametrize(("change", "message"), [
    ({"use_noise": True}, "use_noise=True is not one mgan knows"),
    ({"mapping_kwargs": {"num_layers": 2, "layer_features": 256}}, "layer_features=256 is not one mgan knows"),
    ({"conv_kernel": 2.5}, "conv_kernel=2.5 is not supported"),
    ({"use_radial_filters": 1}, "use_radial_filters=1 is not supported"),
    ({"img_channels": 1}, "img_channels=1 is not supported"),
    ({"c_dim": 10}, "class-conditional"),
    ({"channel_base": 1024}, "does not fit stylegan3"),  # kwargs that disagree with the tensors
])
def test_unimplemented_or_inconsistent_kwargs_are_refused(tmp_path: Path, shared_dir: Path,
                                                          official_modules: types.SimpleNamespace,
                                                          change: dict, message: str) -> None:
    state, kwargs, _, _ = _golden(shared_dir, "nvlabs_stylegan3t_32")
    path = tmp_path / "snapshot.pkl"
    _write_snapshot(path, official_modules, state, {**kwargs, **change})
    with pytest.raises(UnknownFormatError, match=message):
        READERS.get("nvlabs-pickle")(path)


def test_snapshot_without_constructor_record_is_refused(tmp_path: Path, shared_dir: Path,
                                                        official_modules: types.SimpleNamespace) -> None:
    state, _, _, _ = _golden(shared_dir, "nvlabs_stylegan3t_32")
    path = tmp_path / "snapshot.pkl"
    _write_snapshot(path, official_modules, state, None)
    with pytest.raises(UnknownFormatError, match="without its constructor record"):
        READERS.get("nvlabs-pickle")(path)


def test_weights_import_then_use_by_name(tmp_path: Path, shared_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                         official_modules: types.SimpleNamespace) -> None:
    state, kwargs, inputs, outputs = _golden(shared_dir, "nvlabs_stylegan3r_32")
    source = tmp_path / "stylegan3-r-mine.pkl"
    _write_snapshot(source, official_modules, state, kwargs)
    store = WeightStore(home=tmp_path / "home", entries=load_registry(), allow_download=False)
    monkeypatch.setattr(weight_store, "_default_store", store)
    result = CliRunner().invoke(main, ["weights", "import", str(source), "--name", "my-sg3r", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert record["source_format"] == "nvlabs-pickle" and record["architecture"] == "stylegan3"
    assert record["layers"] == 15
    model = load_generator("my-sg3r", store)
    with torch.no_grad():
        assert float((model.render(inputs["ws_mix"][:2], "w+") - outputs["image_mix"][:2]).abs().max()) < ATOL
    shown = CliRunner().invoke(main, ["presets", "show", "--generator", "my-sg3r", "--task", "invert"])
    assert shown.exit_code == 0, shown.output
    assert "L5_52_96" in shown.output and "sampling_rate: 32" in shown.output


FAST = ["--iterations", "2", "--codes", "2", "--device", "cpu", "--json"]


def test_every_task_runs_an_imported_stylegan3(tmp_path: Path, shared_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                               official_modules: types.SimpleNamespace) -> None:
    """A small random 64x64 StyleGAN3-r pickle, imported, then every task by --generator (per-family defaults)."""
    import numpy as np
    from PIL import Image

    from mgan_cli.generators import ARCHITECTURES
    from mgan_cli.weights.formats.nvlabs import mgan_to_nvlabs3

    _, kwargs, _, _ = _golden(shared_dir, "nvlabs_stylegan3r_32")
    kwargs = {**kwargs, "img_resolution": 64, "z_dim": 32, "w_dim": 32, "channel_base": 512, "channel_max": 16}
    torch.manual_seed(0)
    model = ARCHITECTURES.get("stylegan3")(resolution=64, z_dim=32, w_dim=32, channel_base=512, channel_max=16,
                                           conv_kernel=1, use_radial_filters=True)
    source = tmp_path / "sg3r64.pkl"
    _write_snapshot(source, official_modules, mgan_to_nvlabs3(model.state_dict()), kwargs)
    store = WeightStore(home=tmp_path / "home", entries=load_registry(), allow_download=False,
                        mirror=weight_store.default_store().mirror)
    monkeypatch.setattr(weight_store, "_default_store", store)
    assert CliRunner().invoke(main, ["weights", "import", str(source), "--name", "sg3r64"]).exit_code == 0
    face = tmp_path / "face.png"
    photo = sorted((shared_dir / "data" / "celeba64").glob("*.jpg"))[0]
    Image.open(photo).convert("RGB").crop((0, 20, 178, 198)).resize((64, 64)).save(face)
    mask = tmp_path / "mask.png"
    hole = Image.new("L", (64, 64))
    hole.paste(255, (20, 20, 40, 40))
    hole.save(mask)
    low = tmp_path / "low.png"
    Image.open(face).resize((16, 16), Image.Resampling.BICUBIC).save(low)
    for args in (["invert", str(face)], ["colorize", str(face)], ["superres", str(low), "--scale", "4"],
                 ["inpaint", str(face), "--mask", str(mask)], ["denoise", str(face)]):
        out = tmp_path / args[0]
        result = CliRunner().invoke(main, [*args, "--generator", "sg3r64", "-o", str(out), *FAST],
                                    catch_exceptions=False)
        assert result.exit_code == 0, (args, result.output)
        line = json.loads(result.stdout.splitlines()[-1])
        assert line["status"] == "ok" and Image.open(line["output"]).size == (64, 64)
        report = json.loads((out / "report.json").read_text())
        assert report["preset"]["inversion"]["space"] == "w"
    # editing along a SeFa direction of this generator (w space: the upper latent's rows move too)
    out = tmp_path / "edit"
    result = CliRunner().invoke(main, ["edit", str(face), "-o", str(out), "--generator", "sg3r64", "--direction",
                                       "sefa:0", "--strengths", "-2,0,2", *FAST], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    frames = sorted((out / "frames").glob("*.png"))
    assert len(frames) == 3
    pixels = [np.asarray(Image.open(frame), dtype=np.float64) for frame in frames]
    assert np.abs(pixels[0] - pixels[-1]).mean() > 0.5  # the edit changes the image
    # the layer analysis: pairs at the Fourier input and at a rate-32 layer, with contribution maps
    out = tmp_path / "analysis"
    result = CliRunner().invoke(main, ["analyze", str(face), "-o", str(out), "--generator", "sg3r64", "--layers", "1,7",
                                       "--codes", "1,2", "--iterations", "2", "--device", "cpu", "--quiet",
                                       "--contributions", "7:2"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = json.loads((out / "analysis.json").read_text())["rows"]
    assert sorted({(row["layer"], row["codes"]) for row in rows}) == [(1, 1), (1, 2), (7, 1), (7, 2)]
