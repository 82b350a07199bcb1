"""Presets: every built-in one parses and fits its generator; overrides; clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mgan_cli.cli.presets_cmd import generator_layers
from mgan_cli.errors import PresetError
from mgan_cli.presets import apply_overrides, load_preset, preset_files
from mgan_cli.tasks import TASKS


@pytest.mark.parametrize("name", sorted(preset_files()))
def test_builtin_preset_is_valid(name: str) -> None:
    preset = load_preset(name)
    assert preset.task in TASKS
    layers = generator_layers(preset.generator)
    assert 1 <= preset.inversion.layer <= len(layers)


def test_every_task_has_its_default_preset() -> None:
    for name in TASKS:
        task = TASKS.get(name)
        assert load_preset(task.default_preset).task == name


def test_overrides_replace_values_and_are_recorded() -> None:
    base = load_preset("dcgan64-invert")
    changed = apply_overrides(base, codes=5, layer=3, lr=0.2, optimizer="sgd", perceptual_weight=0.0, seed=9,
                              batch_size=2, iterations=None)
    assert (changed.inversion.codes, changed.inversion.layer, changed.inversion.lr) == (5, 3, 0.2)
    assert changed.inversion.optimizer == "sgd" and changed.loss.perceptual_weight == 0.0
    assert (changed.seed, changed.batch_size) == (9, 2)
    assert changed.inversion.iterations == base.inversion.iterations  # None = not given
    assert changed.overrides == {"codes": 5, "layer": 3, "lr": 0.2, "optimizer": "sgd", "perceptual_weight": 0.0,
                                 "seed": 9, "batch_size": 2}
    assert base.inversion.codes != 5  # the original is untouched


def test_scale_override_goes_into_the_degradation() -> None:
    assert apply_overrides(load_preset("dcgan64-superres"), scale=2).degradation["scale"] == 2


def test_preset_file_by_path(tmp_path) -> None:
    data = load_preset("dcgan64-invert").to_dict()
    for key in ("name", "source", "overrides"):
        data.pop(key)
    data["inversion"]["codes"] = 7
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(data))
    preset = load_preset(str(path))
    assert preset.name == "mine" and preset.inversion.codes == 7


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["inversion"].update(lr_rampdwn=0.1), "unknown key 'lr_rampdwn' in inversion"),
        (lambda d: d.update(extra=1), "unknown key 'extra'"),
        (lambda d: d["inversion"].update(optimizer="rmsprop"), "unknown optimizer"),
        (lambda d: d.pop("generator"), "missing 'generator'"),
    ],
)
def test_bad_presets_name_the_file_and_key(tmp_path, edit, message: str) -> None:
    data = yaml.safe_load(Path(load_preset("dcgan64-invert").source).read_text())
    edit(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(PresetError, match=message) as info:
        load_preset(str(path))
    assert "bad.yaml" in str(info.value)


def test_unknown_preset_suggests_the_nearest() -> None:
    with pytest.raises(PresetError, match="did you mean 'dcgan64-invert'"):
        load_preset("dcgan64-invrt")
