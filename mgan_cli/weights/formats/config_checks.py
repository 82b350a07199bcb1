"""What an architecture's constructor config may hold, checked before any model is built from a file's config.

A config read from a file (``mgan.json``, a safetensors header) is data: a string, a negative number or a
``latent_size`` of 30 000 must be refused before ``ARCHITECTURES[name](**config)`` allocates anything.
:data:`CONFIG_CHECKS` lists, per architecture, each constructor argument and the values allowed (a
:class:`~mgan_cli.utils.settings_schema.ValueSpec`, or a tuple of exact values); :func:`check_config` refuses a
missing architecture, an unknown key or a value outside its range. An architecture without a table here
gets the generic check only (plain JSON scalars or lists). The file's tensors must then match the shapes the
config implies (:func:`mgan_cli.weights.formats.base.expected_shapes`, on the meta device), which bounds the model
by the file's size.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mgan_cli.errors import UnknownFormatError
from mgan_cli.generators.layers import PROGRESSIVE_RESOLUTIONS
from mgan_cli.utils.settings_schema import SpecError, ValueSpec

Allowed = ValueSpec | tuple[Any, ...]

_DIM = ValueSpec("int", minimum=1, maximum=8192)
_FMAPS_BASE = ValueSpec("int", minimum=1, maximum=2**20)
_RGB: tuple[Any, ...] = (3,)  # single-channel generators are refused: tasks, metrics and reports are RGB
_PSI = ValueSpec("float", nullable=True)
_ROWS = ValueSpec("int", minimum=0, maximum=64, nullable=True)

CONFIG_CHECKS: dict[str, dict[str, Allowed]] = {
    "dcgan64": {"latent_size": ValueSpec("int", minimum=1, maximum=4096),
                "width": ValueSpec("int", minimum=1, maximum=1024)},
    "dcgan32": {"latent_size": ValueSpec("int", minimum=1, maximum=4096)},
    "pggan": {"resolution": PROGRESSIVE_RESOLUTIONS, "z_dim": _DIM, "image_channels": _RGB,
              "fmaps_base": _FMAPS_BASE, "fmaps_max": _DIM, "fused_scale": (True, False)},
    "stylegan": {"resolution": PROGRESSIVE_RESOLUTIONS, "z_dim": _DIM, "w_dim": _DIM, "image_channels": _RGB,
                 "fused_scale": (True, False, "auto"), "truncation_psi": _PSI, "truncation_layers": _ROWS,
                 "mapping_layers": ValueSpec("int", minimum=1, maximum=64), "fmaps_base": _FMAPS_BASE,
                 "fmaps_max": _DIM},
    "stylegan2": {"resolution": tuple(2**k for k in range(2, 14)), "z_dim": _DIM, "w_dim": _DIM,
                  "image_channels": _RGB, "fmaps_base": _FMAPS_BASE, "fmaps_max": _DIM,
                  "num_mapping_layers": ValueSpec("int", minimum=1, maximum=64),
                  "mapping_hidden": ValueSpec("int", minimum=1, maximum=8192, nullable=True),
                  "mapping_lr_multiplier": ValueSpec("float", minimum=0, min_open=True),
                  "truncation_psi": _PSI, "truncation_layers": _ROWS,
                  "conv_clamp": ValueSpec("float", minimum=0, min_open=True, nullable=True),
                  "architecture": ("skip",)},
}


def _exact(value: Any, allowed: tuple[Any, ...]) -> bool:
    return any(type(value) is type(a) and value == a for a in allowed)


def _scalar(value: Any, depth: int = 0) -> bool:
    if isinstance(value, list) and depth < 2:
        return len(value) <= 64 and all(_scalar(v, depth + 1) for v in value)
    return value is None or (isinstance(value, bool | int | float | str) and len(str(value)) <= 100)


def check_config(architecture: Any, config: Any, source: str) -> None:
    """Refuse (:class:`UnknownFormatError`) a config ``ARCHITECTURES[architecture]`` should not be built with."""
    from mgan_cli.generators import ARCHITECTURES

    if not isinstance(architecture, str) or architecture not in ARCHITECTURES:
        raise UnknownFormatError(f"{source}: architecture {architecture!r} is not one mgan has "
                                 f"({', '.join(ARCHITECTURES.names())})")
    if not isinstance(config, Mapping):
        raise UnknownFormatError(f"{source}: config must be a mapping, got {type(config).__name__}")
    table = CONFIG_CHECKS.get(architecture)
    for key, value in config.items():
        if table is None:
            if not isinstance(key, str) or not _scalar(value):
                raise UnknownFormatError(f"{source}: config {key!r} = {value!r} is not a plain value")
            continue
        if key not in table:
            raise UnknownFormatError(f"{source}: config key {key!r} is not an argument of {architecture} "
                                     f"(known: {', '.join(table)})")
        allowed = table[key]
        if isinstance(allowed, tuple):
            if not _exact(value, allowed):
                raise UnknownFormatError(f"{source}: config {key} = {value!r} is not allowed for {architecture}: "
                                         f"must be one of {', '.join(repr(a) for a in allowed)}")
            continue
        if isinstance(value, str) and allowed.kind in ("int", "float"):  # a file's config must be typed
            raise UnknownFormatError(f"{source}: config {key} = {value!r} is text, not a number")
        try:
            allowed.check(value)
        except SpecError as exc:
            raise UnknownFormatError(f"{source}: config {key}: {exc} (for {architecture})") from None
