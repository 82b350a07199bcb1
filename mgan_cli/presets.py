"""Presets: YAML files that fix a generator, a task and every optimisation setting.

A preset file (``presets/<name>.yaml``) has these blocks, each checked for unknown keys::

    description: one line
    generator: dcgan64-digiface        # a generator in the weight registry (`mgan weights list`)
    task: invert                       # invert | colorize | superres | inpaint | denoise
    degradation: {type: identity}      # the task's operator and its kwargs (mgan_cli/degradations.py)
    inversion: {codes: 20, layer: 2, iterations: 1000, optimizer: adam, lr: 0.05, ...}
    loss: {perceptual_weight: 1.0, vgg_layer: 16, perceptual_resolution: null, distance: l1}
    seed: 0
    batch_size: 16

Command-line flags override single values (:func:`apply_overrides`); ``mgan presets show`` prints the
resolved result.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mgan_cli.engine import InversionSettings
from mgan_cli.errors import ConfigurationError, PresetError
from mgan_cli.resources import presets_dir


@dataclass(frozen=True)
class LossSettings:
    """The reconstruction loss (:class:`mgan_cli.losses.ReconstructionLoss` kwargs)."""

    perceptual_weight: float = 1.0
    vgg_layer: int = 16
    perceptual_resolution: int | None = None
    distance: str = "l1"


@dataclass(frozen=True)
class Preset:
    """A fully resolved preset."""

    name: str
    generator: str
    task: str
    degradation: dict[str, Any]
    inversion: InversionSettings
    loss: LossSettings
    seed: int = 0
    batch_size: int = 16
    description: str = ""
    source: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)

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


def _block(data: dict[str, Any], key: str, cls: type, where: str) -> Any:
    values = data.get(key) or {}
    if not isinstance(values, dict):
        raise PresetError(f"{where}: '{key}' must be a mapping")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise PresetError(f"{where}: unknown key {unknown[0]!r} in {key} (known: {', '.join(sorted(known))})")
    try:
        return cls(**values)
    except ConfigurationError as exc:
        raise PresetError(f"{where}: {exc}") from exc


def parse_preset(data: dict[str, Any], name: str, source: str) -> Preset:
    """Validate a preset mapping (as loaded from YAML) into a :class:`Preset`."""
    if not isinstance(data, dict):
        raise PresetError(f"{source}: a preset must be a YAML mapping")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise PresetError(f"{source}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_TOP_KEYS))})")
    for required in ("generator", "task", "degradation"):
        if required not in data:
            raise PresetError(f"{source}: missing '{required}'")
    degradation = data["degradation"]
    if not isinstance(degradation, dict) or "type" not in degradation:
        raise PresetError(f"{source}: 'degradation' must be a mapping with a 'type'")
    return Preset(
        name=name,
        description=str(data.get("description", "")),
        source=source,
        generator=str(data["generator"]),
        task=str(data["task"]),
        degradation=dict(degradation),
        inversion=_block(data, "inversion", InversionSettings, source),
        loss=_block(data, "loss", LossSettings, source),
        seed=int(data.get("seed", 0)),
        batch_size=int(data.get("batch_size", 16)),
    )


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
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise PresetError(f"{path}: not valid YAML ({exc})") from exc
    return parse_preset(data, name, str(path))


#: where each command-line override goes: flag name -> (block, key)
OVERRIDE_TARGETS: dict[str, tuple[str | None, str]] = {
    "codes": ("inversion", "codes"),
    "layer": ("inversion", "layer"),
    "iterations": ("inversion", "iterations"),
    "lr": ("inversion", "lr"),
    "optimizer": ("inversion", "optimizer"),
    "perceptual_weight": ("loss", "perceptual_weight"),
    "seed": (None, "seed"),
    "batch_size": (None, "batch_size"),
    "scale": ("degradation", "scale"),
    "paste_known": ("degradation", "paste_known"),
}


def apply_overrides(preset: Preset, **overrides: Any) -> Preset:
    """A copy of ``preset`` with the given flags (``None`` = not given) replacing its values."""
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(given) - set(OVERRIDE_TARGETS))
    if unknown:
        raise PresetError(f"cannot override {unknown[0]!r}")
    inversion, loss, degradation = {}, {}, dict(preset.degradation)
    top: dict[str, Any] = {}
    for key, value in given.items():
        block, field_name = OVERRIDE_TARGETS[key]
        {"inversion": inversion, "loss": loss, "degradation": degradation, None: top}[block][field_name] = value
    try:
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
