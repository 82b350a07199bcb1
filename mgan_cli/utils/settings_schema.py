"""What each setting may be: one :class:`ValueSpec` per field, checked wherever a value comes in.

A setting's spec lives on its dataclass field (``field(metadata={"spec": ...})``, see :func:`setting`), so the
same rule is applied to a preset's YAML value (:mod:`mgan_cli.config.presets`), to a command-line flag (the click
parameter types in :mod:`mgan_cli.cli.options`) and to a value passed from Python (the dataclasses'
``__post_init__`` call :func:`check_fields`). A value that breaks it raises :class:`SpecError`, whose
message says what is allowed; callers add where the value came from (file and key, or flag).

Text (a flag's value, or a quoted YAML scalar) is parsed like the flag parses it: ``"3"`` is an integer,
``"1e-3"`` a number (YAML 1.1 reads ``1e-3`` without a dot as a string), ``"2.5"`` is not an integer.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from mgan_cli.errors import ConfigurationError

Kind = Literal["int", "float", "choice", "bool"]
_KIND_NAMES = {"int": "an integer", "float": "a finite number", "bool": "true or false"}


class SpecError(ValueError):
    """A value outside its :class:`ValueSpec`; the message is ``"<value> is not allowed: must be ..."``."""


@dataclass(frozen=True)
class ValueSpec:
    """The values one setting accepts: a kind, an optional range or choice list, and whether null is allowed."""

    kind: Kind
    minimum: float | None = None
    maximum: float | None = None
    min_open: bool = False  # minimum itself excluded
    max_open: bool = False
    choices: tuple[str, ...] = ()
    nullable: bool = False

    def allowed(self) -> str:
        """What the setting accepts, in words: ``"an integer ≥ 1"``, ``"one of sum, mean"``, ``"null or …"``."""
        if self.kind == "choice":
            text = f"one of {', '.join(self.choices)}"
        else:
            text = _KIND_NAMES[self.kind]
            bounds = []
            if self.minimum is not None:
                bounds.append(f"{'>' if self.min_open else '≥'} {_number(self.minimum)}")
            if self.maximum is not None:
                bounds.append(f"{'<' if self.max_open else '≤'} {_number(self.maximum)}")
            if bounds:
                text += " " + " and ".join(bounds)
        return f"null or {text}" if self.nullable else text

    def check(self, value: Any) -> Any:
        """``value`` as this setting's type (text parsed as a flag would be); :class:`SpecError` if not allowed."""
        if value is None:
            if self.nullable:
                return None
            raise self._refuse(value)
        if self.kind == "bool":
            if isinstance(value, bool):
                return value
            raise self._refuse(value)
        if self.kind == "choice":
            if isinstance(value, str) and value in self.choices:
                return value
            raise self._refuse(value)
        number = self._number(value)
        if self.minimum is not None and (number < self.minimum or (self.min_open and number == self.minimum)):
            raise self._refuse(value)
        if self.maximum is not None and (number > self.maximum or (self.max_open and number == self.maximum)):
            raise self._refuse(value)
        return number

    def _number(self, value: Any) -> int | float:
        if isinstance(value, bool):
            raise self._refuse(value)
        if self.kind == "int":
            if isinstance(value, int):
                return value
            if isinstance(value, str):
                try:
                    return int(value.strip())
                except ValueError:
                    pass
            raise self._refuse(value)
        if isinstance(value, int | float):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                raise self._refuse(value) from None
        else:
            raise self._refuse(value)
        if not math.isfinite(number):
            raise self._refuse(value)
        return number

    def _refuse(self, value: Any) -> SpecError:
        shown = "null" if value is None else repr(value) if isinstance(value, str) else str(value).lower() \
            if isinstance(value, bool) else str(value) if isinstance(value, int | float) else \
            f"a {type(value).__name__}"
        return SpecError(f"{shown} is not allowed: must be {self.allowed()}")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def setting(default: Any, spec: ValueSpec, help: str = "") -> Any:
    """A dataclass field with ``default`` whose values must pass ``spec`` (``help`` feeds the flag's --help)."""
    return dataclasses.field(default=default, metadata={"spec": spec, "help": help})


def spec_of(cls: type, name: str) -> ValueSpec | None:
    """The :class:`ValueSpec` of dataclass ``cls``'s field ``name`` (``None`` if it has none)."""
    for item in dataclasses.fields(cls):
        if item.name == name:
            return item.metadata.get("spec")
    return None


def help_of(cls: type, name: str) -> str:
    for item in dataclasses.fields(cls):
        if item.name == name:
            return str(item.metadata.get("help", ""))
    return ""


def check_fields(obj: Any, names: Iterable[str] | None = None) -> None:
    """Check every spec'd field of dataclass instance ``obj``; :class:`ConfigurationError` naming the field."""
    wanted = None if names is None else set(names)
    for item in dataclasses.fields(obj):
        spec = item.metadata.get("spec")
        if spec is None or (wanted is not None and item.name not in wanted):
            continue
        value = getattr(obj, item.name)
        try:
            checked = spec.check(value)
        except SpecError as exc:
            raise ConfigurationError(f"{item.name}: {exc}") from None
        if checked != value or type(checked) is not type(value):  # e.g. "3" -> 3, 1 -> 1.0
            object.__setattr__(obj, item.name, checked)
