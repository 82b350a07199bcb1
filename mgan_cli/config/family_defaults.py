"""Per-family defaults: the preset ``mgan TASK --generator NAME`` runs when no ``--preset`` is given.

The values and the reason for each live in ``presets/defaults/families.yaml`` (read once, validated here);
:func:`default_preset` resolves them for one generator (registry entry or imported) and one task into an
ordinary :class:`~mgan_cli.config.presets.Preset`, and :func:`resolve_defaults` also returns where each value came
from and why. The composing layer is given either as an index (``layer``) or as the side of the feature map
to compose at (``feature_resolution``: the last layer of that size), so one rule serves 64x64 and 1024x1024
generators alike.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mgan_cli.config.presets import LossSettings, Preset, load_preset
from mgan_cli.config.tasks import TASKS
from mgan_cli.core.engine import InversionSettings
from mgan_cli.errors import ConfigurationError, PresetError
from mgan_cli.utils.resources import presets_dir

#: settings a defaults entry may give, and the preset block each one goes to
SETTING_BLOCKS: dict[str, str] = {
    "codes": "inversion", "layer": "inversion", "space": "inversion", "composition": "inversion",
    "iterations": "inversion", "encoder_iterations": "inversion", "encoder_tune_steps": "inversion",
    "optimizer": "inversion", "lr": "inversion", "alpha_lr": "inversion", "schedule": "inversion",
    "init": "inversion", "perceptual_weight": "loss", "perceptual_resolution": "loss",
    "batch_size": "top", "scale": "degradation", "mode": "degradation", "paste_known": "degradation",
    "feature_resolution": "layer-rule",
}


def defaults_file() -> Path:
    return presets_dir() / "defaults" / "families.yaml"


@dataclass(frozen=True)
class Setting:
    """One default: its value, why it was chosen, and which entry of the defaults file it came from."""

    value: Any
    why: str
    source: str


@dataclass(frozen=True)
class GeneratorFacts:
    """What the defaults depend on: the generator's family, resolution, layers and latent spaces."""

    name: str
    architecture: str
    family: str
    resolution: int
    layer_sizes: tuple[int, ...]  # feature-map side of layers 1..L (StyleGAN3: the sampling rate; maps have margins)
    latent_spaces: tuple[str, ...]


@dataclass(frozen=True)
class ResolvedDefaults:
    preset: Preset
    settings: dict[str, Setting]  # every value used, keyed by setting name
    generator: GeneratorFacts


def _parse_entry(raw: Any, where: str) -> dict[str, Setting]:
    if not isinstance(raw, dict):
        raise PresetError(f"{defaults_file()}: {where} must be a mapping")
    entry: dict[str, Setting] = {}
    for key, spec in raw.items():
        if key == "up_to":
            continue
        if key not in SETTING_BLOCKS:
            raise PresetError(f"{defaults_file()}: unknown setting {key!r} in {where} "
                              f"(known: {', '.join(sorted(SETTING_BLOCKS))})")
        if not isinstance(spec, dict) or set(spec) != {"value", "why"} or not str(spec["why"]).strip():
            raise PresetError(f"{defaults_file()}: {where}.{key} must be {{value: V, why: reason}}")
        entry[key] = Setting(spec["value"], str(spec["why"]), where)
    return entry


@functools.cache
def load_defaults() -> dict[str, Any]:
    """The parsed defaults file: ``architectures``, ``paper_examples``, ``common`` and ``families``."""
    path = defaults_file()
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise PresetError(f"{path}: cannot read the per-family defaults ({exc})") from exc
    families: dict[str, dict[str, Any]] = {}
    for family, spec in (raw.get("families") or {}).items():
        unknown = set(spec) - {"all_tasks", "tasks", "by_resolution"}
        if unknown:
            raise PresetError(f"{path}: unknown key(s) {sorted(unknown)} in family {family!r}")
        tasks = {task: _parse_entry(entry, f"{family}.tasks.{task}")
                 for task, entry in (spec.get("tasks") or {}).items()}
        for task in tasks:
            if task not in TASKS:
                raise PresetError(f"{path}: family {family!r} has defaults for unknown task {task!r}")
        by_resolution = []
        for index, entry in enumerate(spec.get("by_resolution") or []):
            if not isinstance(entry.get("up_to"), int):
                raise PresetError(f"{path}: {family}.by_resolution[{index}] needs an integer up_to")
            where = f"{family}.by_resolution[up_to {entry['up_to']}]"
            by_resolution.append((entry["up_to"], _parse_entry(entry, where)))
        families[family] = {
            "all_tasks": _parse_entry(spec.get("all_tasks") or {}, f"{family}.all_tasks"),
            "tasks": tasks,
            "by_resolution": sorted(by_resolution, key=lambda item: item[0]),
        }
    return {
        "architectures": dict(raw.get("architectures") or {}),
        "paper_examples": {k: list(v) for k, v in (raw.get("paper_examples") or {}).items()},
        "common": _parse_entry(raw.get("common") or {}, "common"),
        "families": families,
    }


def generator_facts(name: str) -> GeneratorFacts:
    """Family, resolution, layer sizes and latent spaces of a registry or imported generator (no weights read)."""
    from mgan_cli.weights.formats.config_checks import build_architecture
    from mgan_cli.weights.importing import generator_identity

    try:
        architecture, config, _ = generator_identity(name)
    except KeyError as exc:
        raise PresetError(f"--generator {name!r}: {exc.args[0]} (`mgan weights list`, or `mgan weights import`)") \
            from None
    families = load_defaults()["architectures"]
    if architecture not in families:
        raise PresetError(f"--generator {name!r}: no per-family defaults for architecture {architecture!r} "
                          f"(known: {', '.join(sorted(families))}); pass --preset FILE.yaml")
    model = build_architecture(architecture, config, f"--generator {name!r}")
    return GeneratorFacts(name, architecture, families[architecture], int(model.resolution),
                          tuple(int(info.sampling_rate or info.shape[-1]) for info in model.layers()),
                          tuple(model.latent_spaces))


def layer_for_feature_resolution(facts: GeneratorFacts, size: int) -> int:
    """The last layer whose feature map is ``min(size, resolution / 2)`` pixels square (layers count from 1)."""
    wanted = min(size, facts.resolution // 2)
    matching = [index for index, side in enumerate(facts.layer_sizes, start=1) if side == wanted]
    if not matching:
        smaller = [index for index, side in enumerate(facts.layer_sizes, start=1) if side <= wanted]
        if not smaller:
            raise ConfigurationError(f"{facts.name}: no layer with features of {wanted}x{wanted} or smaller")
        return smaller[-1]
    return matching[-1]


def resolve_defaults(generator: str, task: str) -> ResolvedDefaults:
    """The per-family defaults of ``generator`` for ``task`` as a preset, with each value's reason."""
    facts = generator_facts(generator)
    data = load_defaults()
    family = data["families"].get(facts.family)
    if family is None:
        raise PresetError(f"--generator {generator!r}: family {facts.family!r} has no defaults; pass --preset")
    settings: dict[str, Setting] = dict(data["common"])
    settings.update(family["all_tasks"])
    settings.update(family["tasks"].get(task, {}))
    for up_to, entry in family["by_resolution"]:
        if facts.resolution <= up_to:
            settings.update(entry)
            break
    if "feature_resolution" in settings:
        rule = settings.pop("feature_resolution")
        layer = layer_for_feature_resolution(facts, int(rule.value))
        side = facts.layer_sizes[layer - 1]
        settings["layer"] = Setting(layer, f"{rule.why} [feature_resolution {rule.value} -> layer {layer}, "
                                           f"{side}x{side} at {facts.resolution}x{facts.resolution}]", rule.source)
    space = settings.get("space")
    if space is not None and space.value not in facts.latent_spaces:
        settings["space"] = Setting(facts.latent_spaces[0], f"{generator} has no {space.value!r} space", "generator")

    task_preset = load_preset(TASKS.get(task).default_preset)  # the task's degradation type and its keys
    degradation: dict[str, Any] = {"type": task_preset.degradation["type"]}
    for key in task_preset.degradation:
        if key != "type" and key in settings:
            degradation[key] = settings[key].value
    if "scale" in degradation:
        scale = int(degradation["scale"])
        while scale > 1 and facts.resolution % scale:
            scale //= 2
        degradation["scale"] = scale
    used = {k: v for k, v in settings.items() if SETTING_BLOCKS[k] != "degradation" or k in degradation}

    def block(name: str) -> dict[str, Any]:
        return {k: s.value for k, s in used.items() if SETTING_BLOCKS[k] == name}

    try:
        inversion = InversionSettings(**block("inversion"))
        loss = LossSettings(**block("loss"))
    except ConfigurationError as exc:
        raise PresetError(f"{defaults_file()}: {exc}") from exc
    preset = Preset(
        name=f"{generator}-{task}-defaults",
        generator=generator,
        task=task,
        degradation=degradation,
        inversion=inversion,
        loss=loss,
        seed=0,
        batch_size=int(used["batch_size"].value),
        description=f"per-family defaults ({facts.family}, {facts.resolution}x{facts.resolution}) for {task}",
        source=str(defaults_file()),
    )
    return ResolvedDefaults(preset, used, facts)


def default_preset(generator: str, task: str) -> Preset:
    """The preset ``mgan TASK --generator GENERATOR`` runs without ``--preset``."""
    return resolve_defaults(generator, task).preset


def paper_examples() -> dict[str, list[str]]:
    """``{registry generator: [task, ...]}``: the tasks the paper shows each of its generators on."""
    return dict(load_defaults()["paper_examples"])


def builtin_preset_name(generator: str, task: str) -> str:
    """The name of the built-in preset for ``generator`` and ``task`` (``<generator>-<task>``)."""
    return f"{generator}-{task}"


def choose_preset(task: str, preset: str | None, generator: str | None) -> Preset:
    """What a task command runs: ``--preset`` (its generator replaced by ``--generator`` if given), else the
    built-in preset ``<generator>-<task>`` if there is one, else the per-family defaults, else the task's default.
    """
    import dataclasses

    from mgan_cli.config.presets import preset_files

    if preset is not None:
        chosen = load_preset(preset)
        if generator is not None and generator != chosen.generator:
            generator_facts(generator)  # a clear error for an unknown generator
            chosen = dataclasses.replace(chosen, generator=generator,
                                         description=f"{chosen.description} (generator: {generator})")
        return chosen
    if generator is not None:
        if builtin_preset_name(generator, task) in preset_files():
            return load_preset(builtin_preset_name(generator, task))
        return default_preset(generator, task)
    return load_preset(TASKS.get(task).default_preset)


def preset_file_text(resolved: ResolvedDefaults) -> str:
    """``resolved.preset`` as a preset YAML file, each default's reason as a comment above the file."""
    import dataclasses

    preset = resolved.preset
    data = {
        "description": preset.description,
        "generator": preset.generator,
        "task": preset.task,
        "degradation": dict(preset.degradation),
        "inversion": dataclasses.asdict(preset.inversion),
        "loss": dataclasses.asdict(preset.loss),
        "seed": preset.seed,
        "batch_size": preset.batch_size,
    }
    lines = [f"# Written from the per-family defaults ({resolved.generator.family}, "
             f"{resolved.generator.resolution}x{resolved.generator.resolution}) in presets/defaults/families.yaml:"]
    lines += [f"# {key} = {setting.value}: {setting.why}" for key, setting in sorted(resolved.settings.items())]
    return "\n".join(lines) + "\n" + yaml.safe_dump(data, sort_keys=False, width=120)
