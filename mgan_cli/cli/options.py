"""The override flags (``--codes``, ``--lr``, …), declared once for every task and for ``mgan presets show``.

Each flag's type is a :class:`SettingType` over the :class:`~mgan_cli.utils.settings_schema.ValueSpec` of the preset
field it overrides (:func:`mgan_cli.config.presets.override_spec`), so a flag accepts exactly what the same key in a
preset file accepts, and a bad value is a usage error (exit 2) before anything runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from mgan_cli.config.presets import override_spec
from mgan_cli.utils.settings_schema import SpecError, ValueSpec

_TYPE_NAMES = {"int": "integer", "float": "float", "choice": "choice", "bool": "boolean"}
#: extra help for flags whose field carries none
_HELP = {"scale": "Up-scaling factor s: inputs are (resolution/s) pixels square."}
#: the flags every task takes, in --help order (``--scale`` and ``--paste-known`` only where the task has them)
COMMON_OVERRIDES = ("codes", "layer", "iterations", "lr", "optimizer", "perceptual_weight", "seed", "init",
                    "init_noise", "batch_size")


class SettingType(click.ParamType):
    """A click parameter type that parses and checks a value with a :class:`ValueSpec`."""

    def __init__(self, spec: ValueSpec) -> None:
        self.spec = spec
        self.name = _TYPE_NAMES[spec.kind]

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return self.spec.check(value)
        except SpecError as exc:
            self.fail(str(exc), param, ctx)


def override_option(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The click option that overrides preset setting ``name`` (a key of ``OVERRIDE_TARGETS``)."""
    spec, help_text = override_spec(name)
    flag = "--" + name.replace("_", "-")
    if spec.kind == "bool":
        return click.option(f"{flag}/--no-{flag[2:]}", default=None,
                            help=f"{help_text or 'Copy known pixels from the input into the output.'} "
                                 "[default: on]")
    metavar = "[" + "|".join(spec.choices) + "]" if spec.kind == "choice" else _TYPE_NAMES[spec.kind].upper()
    text = help_text or _HELP.get(name, "")
    return click.option(flag, name, type=SettingType(spec), metavar=metavar,
                        help=f"{text} [{spec.allowed()}]".strip())


def override_options(names: tuple[str, ...] = COMMON_OVERRIDES) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator adding the override flags ``names`` (in that order in --help)."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        for name in reversed(names):
            command = override_option(name)(command)
        return command

    return decorate
