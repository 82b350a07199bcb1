"""Presets: YAML files that fix a generator, a task and every optimisation setting.

A preset file (``presets/<name>.yaml``) has these blocks, each checked for unknown keys::

    description: one line
    generator: dcgan64-digiface        # a generator in the weight registry (`mgan weights list`)
    task: invert                       # invert | colorize | superres | inpaint | denoise
    degradation: {type: identity}      # the task's operator and its kwargs (mgan_cli/core/degradations.py)
    inversion: {codes: 20, layer: 2, iterations: 1000, optimizer: adam, lr: 0.05, ...}
    loss: {perceptual_weight: 1.0, vgg_layer: 16, perceptual_resolution: null, distance: l1}
    seed: 0
    batch_size: 16

Command-line flags override single values (:func:`apply_overrides`); ``mgan presets show`` prints the
resolved result. Every value is checked on load by its setting's
:class:`~mgan_cli.utils.settings_schema.ValueSpec`, the same check its flag's type makes (:mod:`mgan_cli.cli.options`);
a refusal names the file, the key, the value and what is allowed. Files that cannot be presets (over
:data:`MAX_PRESET_BYTES`, not UTF-8, nested or alias-expanded past :data:`MAX_PRESET_DEPTH` /
:data:`MAX_PRESET_VALUES`) are refused before their values are looked at.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mgan_cli.config.tasks import TASKS
from mgan_cli.core.degradations import DEGRADATIONS, check_parameters
from mgan_cli.core.engine import InversionSettings
from mgan_cli.core.losses import VGG16_DEPTH, ReconstructionLoss, min_input_size
from mgan_cli.errors import ConfigurationError, PresetError
from mgan_cli.utils.inputs import open_regular
from mgan_cli.utils.resources import presets_dir
from mgan_cli.utils.settings_schema import SpecError, ValueSpec, check_fields, setting, spec_of
from mgan_cli.weights.store import weight_path

#: a preset is a few hundred bytes; anything much larger is not one
MAX_PRESET_BYTES = 256 * 1024
#: values a preset may expand to (YAML aliases can make a tiny file stand for an exponentially large one)
MAX_PRESET_VALUES = 10_000
MAX_PRESET_DEPTH = 20
#: the weight-registry entry of the perceptual loss's network
VGG16_WEIGHTS = "vgg16-imagenet"


@dataclass(frozen=True)
class LossSettings:
    """The reconstruction loss (:class:`mgan_cli.core.losses.ReconstructionLoss` kwargs)."""

    perceptual_weight: float = setting(1.0, ValueSpec("float", minimum=0, maximum=1e6), "Weight λ of the VGG16 term.")
    vgg_layer: int = setting(16, ValueSpec("int", minimum=1, maximum=VGG16_DEPTH))
    # VGG16 runs on the image resized to this many pixels square: 100 000 would want terabytes
    perceptual_resolution: int | None = setting(None, ValueSpec("int", minimum=1, maximum=2048, nullable=True))
    distance: str = setting("l1", ValueSpec("choice", choices=("l1", "l2")))

    def __post_init__(self) -> None:
        check_fields(self)
        smallest = min_input_size(self.vgg_layer)
        if self.perceptual_resolution is not None and self.perceptual_resolution < smallest:
            raise ConfigurationError(f"perceptual_resolution: {self.perceptual_resolution} is not allowed: VGG16 "
                                     f"up to layer {self.vgg_layer} needs at least {smallest} pixels")

    def build(self) -> ReconstructionLoss:
        """The loss these settings describe (VGG16 is fetched and read only when λ > 0)."""
        vgg_weights = weight_path(VGG16_WEIGHTS) if self.perceptual_weight > 0 else None
        return ReconstructionLoss(self.perceptual_weight, self.vgg_layer, self.perceptual_resolution, self.distance,
                                  vgg_weights=vgg_weights)


@dataclass(frozen=True)
class Preset:
    """A fully resolved preset."""

    name: str
    generator: str
    task: str
    degradation: dict[str, Any]
    inversion: InversionSettings
    loss: LossSettings
    seed: int = setting(0, ValueSpec("int", minimum=-(2**63), maximum=2**63 - 1),
                        "Seed of the initial codes (per image: seed + file name).")
    batch_size: int = setting(16, ValueSpec("int", minimum=1, maximum=4096), "Images optimised together.")
    description: str = ""
    source: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_fields(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for reports and ``mgan presets show`` (the same shape as the YAML)."""
        return {
            "name": self.name,
            "description": self.description,
            "source": self.source,
            "generator": self.generator,
            "task": self.task,
            "degradation": dict(self.degradation),
            "inversion": dataclasses.asdict(self.inversion),
            "loss": dataclasses.asdict(self.loss),
            "seed": self.seed,
            "batch_size": self.batch_size,
            "overrides": dict(self.overrides),
        }


_TOP_KEYS = {"description", "generator", "task", "degradation", "inversion", "loss", "seed", "batch_size"}


def _checked(spec: ValueSpec | None, value: Any, where: str, key: str) -> Any:
    if spec is None:
        return value
    try:
        return spec.check(value)
    except SpecError as exc:
        raise PresetError(f"{where}: {key}: {exc}") from None


def _block(data: dict[str, Any], key: str, cls: type, where: str) -> Any:
    values = data.get(key) or {}
    if not isinstance(values, dict):
        raise PresetError(f"{where}: '{key}' must be a mapping of settings, got {_kind(values)}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in set(values) - known)
    if unknown:
        raise PresetError(f"{where}: unknown key {unknown[0]!r} in {key} (known: {', '.join(sorted(known))})")
    checked = {name: _checked(spec_of(cls, name), value, where, f"{key}.{name}") for name, value in values.items()}
    try:
        return cls(**checked)
    except ConfigurationError as exc:
        raise PresetError(f"{where}: {key}.{exc}") from exc


def _degradation(data: dict[str, Any], where: str) -> dict[str, Any]:
    degradation = data["degradation"]
    if not isinstance(degradation, dict) or "type" not in degradation:
        raise PresetError(f"{where}: 'degradation' must be a mapping with a 'type'")
    kind = degradation["type"]
    if not isinstance(kind, str) or kind not in DEGRADATIONS:
        raise PresetError(f"{where}: degradation.type: {kind!r} is not allowed: must be one of "
                          f"{', '.join(DEGRADATIONS.names())}")
    operator = DEGRADATIONS.get(kind)
    params = {str(k): v for k, v in degradation.items() if k != "type"}
    unknown = sorted(set(params) - set(operator.parameters))
    if unknown:
        raise PresetError(f"{where}: unknown key {unknown[0]!r} in degradation of type {kind!r} "
                          f"(known: {', '.join(operator.parameters) or 'none'})")
    checked = {k: _checked(operator.parameters[k], v, where, f"degradation.{k}") for k, v in params.items()}
    return {"type": kind, **checked}


def _kind(value: Any) -> str:
    return "null" if value is None else f"a {type(value).__name__}"


def _text(data: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = data.get(key, default)
    if not isinstance(value, str):
        raise PresetError(f"{where}: {key}: must be a string, got {_kind(value)}")
    return value


def parse_preset(data: dict[str, Any], name: str, source: str) -> Preset:
    """Validate a preset mapping (as loaded from YAML) into a :class:`Preset`."""
    if not isinstance(data, dict):
        raise PresetError(f"{source}: a preset must be a YAML mapping (key: value lines), got {_kind(data)}")
    unknown = sorted(str(k) for k in set(data) - _TOP_KEYS)
    if unknown:
        raise PresetError(f"{source}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_TOP_KEYS))})")
    for required in ("generator", "task", "degradation"):
        if required not in data:
            raise PresetError(f"{source}: missing '{required}'")
    task = _text(data, "task", source)
    if task not in TASKS:
        raise PresetError(f"{source}: task: {task!r} is not allowed: must be one of {', '.join(TASKS.names())}")
    values = {key: _checked(spec_of(Preset, key), data[key], source, key) for key in ("seed", "batch_size")
              if key in data}
    try:
        return Preset(
            name=name,
            description=_text(data, "description", source, ""),
            source=source,
            generator=_text(data, "generator", source),
            task=task,
            degradation=_degradation(data, source),
            inversion=_block(data, "inversion", InversionSettings, source),
            loss=_block(data, "loss", LossSettings, source),
            **values,
        )
    except ConfigurationError as exc:
        raise PresetError(f"{source}: {exc}") from exc


def _too_big(where: str) -> PresetError:
    return PresetError(f"{where}: expands to more than {MAX_PRESET_VALUES} values or {MAX_PRESET_DEPTH} levels "
                       "(nested YAML aliases?); a preset is a small mapping of settings")


def _check_size(value: Any, where: str) -> None:
    """Refuse data that expands to more than :data:`MAX_PRESET_VALUES` values or nests too deep (alias bombs)."""
    count = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        count += 1
        if count > MAX_PRESET_VALUES or depth > MAX_PRESET_DEPTH:
            raise _too_big(where)
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for pair in item.items() for v in pair)
        elif isinstance(item, list | tuple | set):
            stack.extend((v, depth + 1) for v in item)


def read_preset_file(path: Path) -> Any:
    """The YAML data of a preset file, refusing what cannot be a preset: over :data:`MAX_PRESET_BYTES`, not
    UTF-8, nested deeper than :data:`MAX_PRESET_DEPTH` (checked on the parser's events, before anything is
    built: the parser keeps its own stack, so depth costs no recursion), or expanding through aliases to more
    than :data:`MAX_PRESET_VALUES` values."""
    try:
        size = path.stat().st_size
        if size > MAX_PRESET_BYTES:
            raise PresetError(f"{path}: {size} bytes is too large for a preset (at most {MAX_PRESET_BYTES})")
        with open_regular(path) as handle:
            raw = handle.read(MAX_PRESET_BYTES + 1)
    except OSError as exc:
        raise PresetError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if len(raw) > MAX_PRESET_BYTES:
        raise PresetError(f"{path}: more than {MAX_PRESET_BYTES} bytes is too large for a preset")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PresetError(f"{path}: not a text file (byte {exc.start} is not UTF-8); a preset is YAML text") from None
    try:
        depth = 0
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_PRESET_DEPTH:
                    raise PresetError(f"{path}: nested more than {MAX_PRESET_DEPTH} levels deep; a preset is a "
                                      "small mapping of settings")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PresetError(f"{path}: not valid YAML ({_yaml_problem(exc)})") from None
    _check_size(data, str(path))
    return data


def _yaml_problem(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else str(problem)


def preset_files(directory: Path | None = None) -> dict[str, Path]:
    """Built-in presets by name (file stem)."""
    directory = directory or presets_dir()
    return {path.stem: path for path in sorted(directory.glob("*.yaml"))}


def load_preset(name_or_path: str) -> Preset:
    """A built-in preset by name, or a YAML file by path (anything ending in .yaml/.yml or existing)."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise PresetError(f"preset file {path} does not exist")
        name = path.stem
    else:
        known = preset_files()
        if name_or_path not in known:
            import difflib

            close = difflib.get_close_matches(name_or_path, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise PresetError(f"unknown preset {name_or_path!r}{hint}; see `mgan presets list`")
        path = known[name_or_path]
        name = name_or_path
    return parse_preset(read_preset_file(path), name, str(path))


#: where each command-line override goes: flag name -> (block, key)
OVERRIDE_TARGETS: dict[str, tuple[str | None, str]] = {
    "codes": ("inversion", "codes"),
    "layer": ("inversion", "layer"),
    "iterations": ("inversion", "iterations"),
    "lr": ("inversion", "lr"),
    "optimizer": ("inversion", "optimizer"),
    "init": ("inversion", "init"),
    "init_noise": ("inversion", "init_noise"),
    "perceptual_weight": ("loss", "perceptual_weight"),
    "seed": (None, "seed"),
    "batch_size": (None, "batch_size"),
    "scale": ("degradation", "scale"),
    "paste_known": ("degradation", "paste_known"),
}
_BLOCK_CLASSES: dict[str | None, type] = {"inversion": InversionSettings, "loss": LossSettings, None: Preset}


def override_spec(flag: str) -> tuple[ValueSpec, str]:
    """The :class:`ValueSpec` a preset value behind ``flag`` must pass (the flag passes the same), and its help."""
    from mgan_cli.core.degradations import Downsample, Mask
    from mgan_cli.utils.settings_schema import help_of

    block, key = OVERRIDE_TARGETS[flag]
    if block == "degradation":
        return {**Downsample.parameters, **Mask.parameters}[key], ""
    spec = spec_of(_BLOCK_CLASSES[block], key)
    assert spec is not None, f"{block}.{key} has no ValueSpec"
    return spec, help_of(_BLOCK_CLASSES[block], key)


def apply_overrides(preset: Preset, **overrides: Any) -> Preset:
    """A copy of ``preset`` with the given flags (``None`` = not given) replacing its values."""
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(given) - set(OVERRIDE_TARGETS))
    if unknown:
        raise PresetError(f"cannot override {unknown[0]!r}")
    inversion, loss, degradation = {}, {}, dict(preset.degradation)
    top: dict[str, Any] = {}
    try:
        for key, value in given.items():
            block, field_name = OVERRIDE_TARGETS[key]
            if block == "degradation":
                operator = DEGRADATIONS.get(str(degradation["type"]))
                value = check_parameters(operator, **{field_name: value})[field_name]
            {"inversion": inversion, "loss": loss, "degradation": degradation, None: top}[block][field_name] = value
        return dataclasses.replace(
            preset,
            inversion=dataclasses.replace(preset.inversion, **inversion),
            loss=dataclasses.replace(preset.loss, **loss),
            degradation=degradation,
            overrides={**preset.overrides, **given},
            **top,
        )
    except ConfigurationError as exc:
        raise PresetError(str(exc)) from exc
