"""Per-family defaults, `--generator` on every task, and built-in presets for the paper's generators."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from PIL import Image

from mgan_cli.cli import main
from mgan_cli.config import family_defaults
from mgan_cli.config.family_defaults import choose_preset, load_defaults, paper_examples, resolve_defaults
from mgan_cli.config.presets import load_preset, preset_files
from mgan_cli.errors import PresetError, WeightsError
from mgan_cli.generators import ARCHITECTURES
from mgan_cli.weights import store as weight_store
from mgan_cli.weights.importing import import_generator
from mgan_cli.weights.store import WeightStore, load_registry

FAST = ["--iterations", "2", "--codes", "2", "--device", "cpu", "--json"]


def test_reference_layers_and_codes_per_task() -> None:
    """docs/PAPER.md, "Reference implementation defaults": l 8 / 6 / 6 / 4 and N 20 / 20 / 20 / 30 on PGGAN."""
    expected = {  # (generator, task): (layer, codes, perceptual weight)
        ("pggan-bedroom256", "invert"): (8, 20, 1.0),
        ("pggan-bedroom256", "colorize"): (6, 20, 1.0),
        ("pggan-celebahq1024", "superres"): (6, 20, 1.0),
        ("pggan-churchoutdoor256", "inpaint"): (4, 30, 0.1),
    }
    for (generator, task), (layer, codes, weight) in expected.items():
        preset = resolve_defaults(generator, task).preset
        assert (preset.inversion.layer, preset.inversion.codes, preset.loss.perceptual_weight) == (layer, codes, weight)
    assert resolve_defaults("pggan-celebahq1024", "superres").preset.degradation["scale"] == 16  # the paper's x16


def test_layer_rule_picks_the_named_feature_size_for_every_family_and_size() -> None:
    for architecture, config in [("pggan", {"resolution": 64}), ("pggan", {"resolution": 1024}),
                                 ("stylegan", {"resolution": 256}), ("stylegan2", {"resolution": 64}),
                                 ("stylegan2", {"resolution": 1024})]:
        with torch.device("meta"):
            model = ARCHITECTURES.get(architecture)(**config)
        facts = family_defaults.GeneratorFacts("g", architecture, architecture, model.resolution,
                                               tuple(i.shape[-1] for i in model.layers()), model.latent_spaces)
        for size in (8, 16, 32):
            layer = family_defaults.layer_for_feature_resolution(facts, size)
            info = model.layers()[layer - 1]
            assert info.shape[-1] == size and info.name.endswith("conv1" if architecture != "stylegan2" or size > 4
                                                                   else "conv")
            assert all(later.shape[-1] > size for later in model.layers()[layer:])  # the last one of that size


def test_every_default_has_a_reason_and_bad_files_are_refused(tmp_path: Path, monkeypatch) -> None:
    data = load_defaults()
    for entry in [data["common"], *(f["all_tasks"] for f in data["families"].values())]:
        assert all(setting.why for setting in entry.values())
    broken = tmp_path / "defaults" / "families.yaml"
    broken.parent.mkdir()
    raw = yaml.safe_load(family_defaults.defaults_file().read_text())
    raw["common"]["codes"] = 20  # a value without its reason
    broken.write_text(yaml.safe_dump(raw))
    monkeypatch.setattr(family_defaults, "presets_dir", lambda: tmp_path)
    load_defaults.cache_clear()
    try:
        with pytest.raises(PresetError, match="codes must be"):
            load_defaults()
    finally:
        monkeypatch.undo()
        load_defaults.cache_clear()


def test_a_builtin_preset_for_every_paper_generator_and_task() -> None:
    registry = load_registry()
    presets = preset_files()
    assert paper_examples()
    for generator, tasks in paper_examples().items():
        assert registry[generator].kind == "generator"
        for task in tasks:
            name = f"{generator}-{task}"
            assert name in presets, f"no built-in preset {name}"
            preset = load_preset(name)
            assert (preset.generator, preset.task) == (generator, task)
            assert choose_preset(task, None, generator).name == name  # --generator picks it


def test_defaults_never_exceed_the_generator() -> None:
    for generator in ["dcgan64-digiface", "dcgan32-celeba", "pggan-celebahq1024", "stylegan-bedroom256",
                      "stylegan2-ffhq1024"]:
        resolved = resolve_defaults(generator, "superres")
        layers = len(resolved.generator.layer_sizes)
        assert 1 <= resolved.preset.inversion.layer <= layers
        assert resolved.generator.resolution % resolved.preset.degradation["scale"] == 0
        assert resolved.preset.inversion.space in resolved.generator.latent_spaces


def _random(architecture: str, seed: int, **config: object) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = ARCHITECTURES.get(architecture)(**config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.normal_(0.0, 0.3 if "bias" not in name else 0.05)
        for name, buffer in model.named_buffers():
            if name.endswith("noise"):
                buffer.normal_()
    return model


@pytest.fixture()
def imported_64(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A random 64x64 PGGAN and StyleGAN2, written as genforce `.pth` files and imported with `mgan weights import`."""
    store = WeightStore(home=tmp_path / "home", entries=load_registry(), allow_download=False,
                        mirror=weight_store.default_store().mirror)
    monkeypatch.setattr(weight_store, "_default_store", store)
    small = {"resolution": 64, "fmaps_base": 512, "fmaps_max": 32}
    names = []
    for architecture, extra in [("pggan", {"z_dim": 32}), ("stylegan2", {"z_dim": 32, "w_dim": 32})]:
        path = tmp_path / f"{architecture}64.pth"
        torch.save(_random(architecture, 3, **small, **extra).state_dict(), path)
        import_generator(path, f"my-{architecture}", store=store)
        names.append(f"my-{architecture}")
    return names


def test_every_task_runs_an_imported_generator_without_a_preset(imported_64, shared_dir: Path, tmp_path: Path) -> None:
    photo = sorted((shared_dir / "data" / "celeba64").glob("*.jpg"))[0]
    face = tmp_path / "face.png"
    Image.open(photo).convert("RGB").crop((0, 20, 178, 198)).resize((64, 64)).save(face)
    mask = tmp_path / "mask.png"
    hole = np.zeros((64, 64), dtype=np.uint8)
    hole[20:40, 20:40] = 255
    Image.fromarray(hole).save(mask)
    low = tmp_path / "low.png"
    Image.open(face).resize((8, 8), Image.Resampling.BICUBIC).save(low)
    for generator in imported_64:
        for args in (["invert", str(face)], ["colorize", str(face)], ["superres", str(low), "--scale", "8"],
                     ["inpaint", str(face), "--mask", str(mask)], ["denoise", str(face)]):
            out = tmp_path / f"{generator}-{args[0]}"
            result = CliRunner().invoke(main, [*args, "--generator", generator, "-o", str(out), *FAST],
                                        catch_exceptions=False)
            assert result.exit_code == 0, (generator, args, result.output)
            line = json.loads(result.stdout.splitlines()[-1])
            assert line["status"] == "ok"
            assert Image.open(line["output"]).size == (64, 64)
            report = json.loads((out / "report.json").read_text())
            assert report["preset"]["generator"] == generator
            assert report["preset"]["source"].endswith("families.yaml")  # no preset file involved
    shown = CliRunner().invoke(main, ["presets", "show", "--generator", "my-stylegan2", "--task", "superres", "--json"])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)
    assert data["inversion"]["space"] == "w" and data["degradation"]["scale"] == 4
    assert data["defaults_reasons"]["layer"]["why"]


def test_generator_flag_replaces_a_presets_generator() -> None:
    preset = choose_preset("invert", "dcgan64-invert", "dcgan32-celeba")
    assert preset.generator == "dcgan32-celeba"
    assert preset.inversion == load_preset("dcgan64-invert").inversion
    with pytest.raises(WeightsError, match="unknown weights"):
        choose_preset("invert", None, "no-such-generator")


def test_superres_takes_every_scale_dividing_the_resolution(shared_dir: Path, tmp_path: Path) -> None:
    from tests.helpers import celeba_face

    face = celeba_face(sorted((shared_dir / "data" / "celeba64").glob("*.jpg"))[0])
    for scale in (2, 8, 16):
        low = tmp_path / f"x{scale}" / "face.png"
        low.parent.mkdir()
        face.resize((64 // scale, 64 // scale), Image.Resampling.BICUBIC).save(low)
        result = CliRunner().invoke(main, ["superres", str(low), "-o", str(tmp_path / f"out{scale}"), "--scale",
                                           str(scale), *FAST], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert Image.open(json.loads(result.stdout)["output"]).size == (64, 64)
    odd = tmp_path / "odd.png"
    face.resize((20, 20)).save(odd)  # not 64 / 4: --resize fit brings it to 16x16 and says so
    result = CliRunner().invoke(main, ["superres", str(odd), "-o", str(tmp_path / "fit"), "--scale", "4",
                                       "--resize", "fit", *FAST], catch_exceptions=False)
    line = json.loads(result.stdout)
    assert result.exit_code == 0 and any("16x16" in note for note in line["notes"]), line
