"""Presets: every built-in one parses and fits its generator; overrides; clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

from mgan_cli.cli.presets_cmd import generator_layers
from mgan_cli.config.presets import MAX_PRESET_BYTES, apply_overrides, load_preset, preset_files
from mgan_cli.config.tasks import TASKS
from mgan_cli.errors import PresetError


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
        (lambda d: d["inversion"].update(optimizer="rmsprop"),
         "inversion.optimizer: 'rmsprop' is not allowed: must be one of adam, sgd"),
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


# ---- one validation place: preset values and flags pass exactly the same checks ----------------------------

def _write_preset(tmp_path: Path, edit) -> Path:
    data = yaml.safe_load(Path(load_preset("dcgan64-superres").source).read_text())
    edit(data)
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _set(block: str | None, key: str, value):
    return lambda d: (d if block is None else d[block]).__setitem__(key, value)


BAD_VALUES = [
    ("inversion", "codes", 2.5, "inversion.codes: 2.5 is not allowed: must be an integer ≥ 1"),
    ("inversion", "codes", "three", "inversion.codes: 'three' is not allowed: must be an integer ≥ 1"),
    ("inversion", "lr", "fast", "inversion.lr: 'fast' is not allowed: must be a finite number > 0"),
    ("inversion", "lr", float("nan"), "inversion.lr: nan is not allowed"),
    (None, "seed", "abc", "seed: 'abc' is not allowed: must be an integer"),
    ("inversion", "composition", "maen", "inversion.composition: 'maen' is not allowed: must be one of sum, mean"),
    ("inversion", "space", "q", "inversion.space: 'q' is not allowed: must be one of z, w, w\\+"),
    ("loss", "perceptual_resolution", -4, "loss.perceptual_resolution: -4 is not allowed: must be null or an integer"),
    ("loss", "perceptual_resolution", 2, "perceptual_resolution: 2 is not allowed: VGG16 up to layer 16 needs at "
                                         "least 4 pixels"),
    ("loss", "perceptual_weight", -5, "loss.perceptual_weight: -5 is not allowed: must be a finite number ≥ 0"),
    (None, "batch_size", 0, "batch_size: 0 is not allowed: must be an integer ≥ 1"),
    ("degradation", "scale", 0, "degradation.scale: 0 is not allowed: must be an integer ≥ 1"),
    ("degradation", "mode", "lanczos", "degradation.mode: 'lanczos' is not allowed"),
    ("inversion", "warmup", 1.0, "inversion.warmup: 1.0 is not allowed: must be a finite number ≥ 0 and < 1"),
    ("inversion", "early_stop_window", True, "inversion.early_stop_window: true is not allowed"),
]


@pytest.mark.parametrize(("block", "key", "value", "message"), BAD_VALUES)
def test_bad_preset_values_name_the_file_key_value_and_what_is_allowed(tmp_path, block, key, value,
                                                                        message) -> None:
    path = _write_preset(tmp_path, _set(block, key, value))
    with pytest.raises(PresetError, match=message) as info:
        load_preset(str(path))
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)


CANDIDATES = ["0", "1", "3", "-1", "2.5", "1e-3", "0.5", "nan", "inf", "-inf", "abc", "", "adam", "sgd", "rmsprop",
              "2.0", " 4 "]


@pytest.mark.parametrize("flag", ["codes", "layer", "iterations", "lr", "optimizer", "perceptual_weight", "seed",
                                  "batch_size", "scale"])
def test_a_flag_accepts_exactly_what_its_preset_key_accepts(tmp_path, flag: str) -> None:
    import click

    from mgan_cli.cli.options import override_option
    from mgan_cli.config.presets import OVERRIDE_TARGETS

    @click.command()
    @override_option(flag)
    def command(**kwargs) -> None:
        click.echo(repr(kwargs[flag]))

    block, key = OVERRIDE_TARGETS[flag]
    for text in CANDIDATES:
        result = CliRunner().invoke(command, [f"--{flag.replace('_', '-')}", text])
        flag_ok = result.exit_code == 0
        assert result.exit_code in (0, 2), result.output
        # the same text as a quoted YAML value, and as the YAML scalar it reads as unquoted (3 -> int, 2.5 -> float)
        for value in (text, yaml.safe_load(f"v: {text}")["v"] if text.strip() else text):
            path = _write_preset(tmp_path, _set(block, key, value))
            try:
                load_preset(str(path))
                preset_ok = True
            except PresetError as exc:
                preset_ok = False
                assert "is not allowed: must be" in str(exc)
            assert flag_ok == preset_ok, (flag, text, value, result.output)


def test_overrides_from_python_pass_the_same_checks() -> None:
    base = load_preset("dcgan64-superres")
    with pytest.raises(PresetError, match="lr: inf is not allowed"):
        apply_overrides(base, lr=float("inf"))
    with pytest.raises(PresetError, match="batch_size: 0 is not allowed"):
        apply_overrides(base, batch_size=0)
    with pytest.raises(PresetError, match="has no parameter 'scale'"):
        apply_overrides(load_preset("dcgan64-invert"), scale=2)


def test_hostile_preset_files_are_refused_in_one_line_quickly(tmp_path) -> None:
    from tests.helpers import run_bounded

    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    (tmp_path / "bomb.yaml").write_text("\n".join([*lines, "description: *a9", ""]))
    assert (tmp_path / "bomb.yaml").stat().st_size < 700
    (tmp_path / "binary.yaml").write_bytes(bytes(range(256)) * 8)
    (tmp_path / "list.yaml").write_text("- generator\n- task\n")
    (tmp_path / "loop.yaml").write_text("description: &a [*a]\ngenerator: x\n")
    (tmp_path / "deep.yaml").write_text("description: " + "[" * 5000 + "]" * 5000 + "\n")
    (tmp_path / "widest.yaml").write_text("description: " + "[" * (MAX_PRESET_BYTES - 20) + "\n")  # at the size limit
    (tmp_path / "indented.yaml").write_text("".join(" " * i + f"k{i}:\n" for i in range(600)))  # block-style depth
    code = f"""
import time
from mgan_cli.config.presets import load_preset
from mgan_cli.errors import PresetError
for name in ('bomb', 'binary', 'list', 'loop', 'deep', 'widest', 'indented'):
    started = time.perf_counter()
    try:
        load_preset({str(tmp_path)!r} + '/' + name + '.yaml')
    except PresetError as exc:
        print(name, round(time.perf_counter() - started, 3), str(exc).replace('\\n', '|'))
"""
    status, output, _, _ = run_bounded(code, timeout=60, max_rss_mb=1500)
    assert status == 0, output
    refused = {line.split()[0]: line for line in output.splitlines() if line.split()[:1] != ["PEAK_RSS_KB"]}
    assert set(refused) == {"bomb", "binary", "list", "loop", "deep", "widest", "indented"}, output
    for name, line in refused.items():
        assert float(line.split()[1]) < 0.5, line
        assert f"{name}.yaml: " in line and "|" not in line
    assert "nested YAML aliases" in refused["bomb"] and "not UTF-8" in refused["binary"]
    assert "must be a YAML mapping" in refused["list"] and "got a list" in refused["list"]
    assert all("nested more than 20 levels" in refused[name] for name in ("deep", "widest", "indented"))


@pytest.mark.parametrize(("edit", "message"), [
    (_set("inversion", "composition", "maen"), "inversion.composition: 'maen' is not allowed"),
    (_set("inversion", "codes", "three"), "inversion.codes: 'three' is not allowed"),
])
def test_cli_refuses_a_bad_preset_before_creating_the_output_folder(tmp_path, edit, message: str) -> None:
    from mgan_cli.cli import main

    path = _write_preset(tmp_path, edit)
    image = tmp_path / "a.png"
    Image.new("RGB", (16, 16)).save(image)
    out = tmp_path / "out"
    run = CliRunner().invoke(main, ["superres", str(image), "-o", str(out), "--preset", str(path), "--quiet"])
    assert run.exit_code == 2 and message in run.output and not out.exists()
    assert len(run.output.strip().splitlines()) == 1, run.output
    shown = CliRunner().invoke(main, ["presets", "show", str(path)])
    assert shown.exit_code == 2 and message in shown.output


@pytest.mark.parametrize(("args", "message"), [
    (["--lr", "nan"], "'nan' is not allowed: must be a finite number > 0"),
    (["--lr", "inf"], "'inf' is not allowed: must be a finite number > 0"),
    (["--scale", "64"], "--scale 64 leaves 1x1-pixel inputs, smaller than the 4x4 the perceptual loss needs "
                        "(allowed: 1, 2, 4, 8, 16; or --perceptual-weight 0)"),
    (["--scale", "3"], "--scale 3 does not divide the generator's resolution 64"),
    (["--layer", "9"], "layer 9 out of range 1..4"),
])
def test_cli_refuses_bad_flags_up_front(tmp_path, args, message: str) -> None:
    from mgan_cli.cli import main

    image = tmp_path / "a.png"
    Image.new("RGB", (1, 1)).save(image)
    out = tmp_path / "out"
    run = CliRunner().invoke(main, ["superres", str(image), "-o", str(out), "--quiet", "--iterations", "1", *args])
    assert run.exit_code == 2, run.output
    assert message in run.output and not out.exists()
