"""``mgan presets list | show NAME``."""

from __future__ import annotations

import json

import click
import yaml
from rich.table import Table

from mgan_cli.cli.common import reports_errors, stdout_console
from mgan_cli.cli.options import COMMON_OVERRIDES, override_options
from mgan_cli.config.family_defaults import choose_preset, defaults_file, resolve_defaults
from mgan_cli.config.presets import load_preset, preset_files
from mgan_cli.config.tasks import TASKS
from mgan_cli.weights.formats.config_checks import build_architecture
from mgan_cli.weights.importing import generator_identity


@click.group("presets")
def presets_group() -> None:
    """List the built-in presets, or show one fully resolved with its generator's layers."""


@presets_group.command("list")
@click.option("--json", "json_lines", is_flag=True, help="One JSON object per preset.")
@reports_errors
def list_presets(json_lines: bool) -> None:
    """List built-in presets (name, task, generator, description)."""
    table = Table()
    table.add_column("preset", no_wrap=True)
    table.add_column("task")
    table.add_column("description")
    for name in preset_files():
        preset = load_preset(name)
        if json_lines:
            click.echo(json.dumps({"name": name, "task": preset.task, "generator": preset.generator,
                                   "description": preset.description}))
        else:
            table.add_row(name, preset.task, preset.description)
    if not json_lines:
        stdout_console.print(table)


def generator_layers(generator_name: str) -> list[dict[str, object]]:
    """The composable layers of a registered generator, built on the meta device (no weights needed)."""
    architecture, config, _ = generator_identity(generator_name)
    model = build_architecture(architecture, config, f"generator {generator_name!r}")
    return [{"layer": info.index, "name": info.name, "shape": list(info.shape)}
            | ({} if info.sampling_rate is None else {"sampling_rate": info.sampling_rate}) for info in model.layers()]


@presets_group.command("show")
@click.argument("name", required=False)
@click.option("--generator", help="Show what `mgan TASK --generator NAME` runs (with --task) instead of preset NAME.")
@click.option("--task", type=click.Choice(TASKS.names()), help="The task, with --generator.")
@override_options((*COMMON_OVERRIDES, "scale", "paste_known"))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of YAML.")
@reports_errors
def show_preset(name: str | None, generator: str | None, task: str | None, as_json: bool,
                **overrides: object) -> None:
    """Print preset NAME (or a YAML file) resolved, with any overrides (the task flags), and its generator's layers.

    With --generator NAME --task TASK (and no preset NAME), print what `mgan TASK --generator NAME` runs:
    the generator's built-in preset for the task, or the per-family defaults with the reason for each value.

    \b
    Examples:
      mgan presets show dcgan64-invert
      mgan presets show dcgan64-invert --codes 30 --layer 3
      mgan presets show --generator my-stylegan2 --task superres --scale 8
    """
    from mgan_cli.config.presets import apply_overrides

    reasons: dict[str, object] = {}
    if name is None:
        if generator is None or task is None:
            raise click.UsageError("give a preset NAME, or --generator NAME and --task TASK")
        base = choose_preset(task, None, generator)
        if base.source == str(defaults_file()):
            reasons = {key: {"value": s.value, "why": s.why, "from": s.source}
                       for key, s in sorted(resolve_defaults(generator, task).settings.items())}
    else:
        base = choose_preset(task or load_preset(name).task, name, generator)
    preset = apply_overrides(base, **overrides)
    data = preset.to_dict()
    if reasons:
        data["defaults_reasons"] = reasons
    data["generator_layers"] = generator_layers(preset.generator)
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        layers = data.pop("generator_layers")
        click.echo(yaml.safe_dump(data, sort_keys=False).rstrip())
        click.echo(f"generator_layers:  # --layer L composes at the output of layer L of {preset.generator}")
        for layer in layers:
            shape = "x".join(str(s) for s in layer["shape"])
            rate = f", sampling_rate: {layer['sampling_rate']:g}" if "sampling_rate" in layer else ""
            click.echo(f"  - {{layer: {layer['layer']}, name: {layer['name']}, shape: {shape}{rate}}}")
