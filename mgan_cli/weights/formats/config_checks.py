"""What an architecture's constructor config may hold, checked before any model is built from a file's config.

A config read from a file (``mgan.json``, a safetensors header) is data: a string, a negative number or a
``latent_size`` of 30 000 must be refused before ``ARCHITECTURES[name](**config)`` allocates anything.
:data:`CONFIG_CHECKS` lists, per architecture, each constructor argument and the values allowed (a
:class:`~mgan_cli.utils.settings_schema.ValueSpec`, or a tuple of exact values); :func:`check_config` refuses a
missing architecture, an unknown key or a value outside its range; every registered architecture has a table
(an architecture without one is refused), and every argument of its constructor has a bound.

:func:`build_architecture` is the one way mgan builds a generator from a config (a weight file's, an imported
entry's, the registry's): the config is checked first, then the model is built, on the meta device unless the
caller needs real tensors. A file's tensors must then match the shapes the config implies
(:func:`mgan_cli.weights.formats.base.expected_shapes`), which bounds the real model by the file's size.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch

from mgan_cli.errors import MganError, UnknownFormatError
from mgan_cli.generators.layers import PROGRESSIVE_RESOLUTIONS
from mgan_cli.utils.settings_schema import SpecError, ValueSpec

if TYPE_CHECKING:
    from mgan_cli.generators import Generator

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
    # StyleGAN3: every argument bounded, so that neither the filter design (taps = filter_size × factor, on the
    # CPU whatever the device) nor the schedule (num_layers rows) can be made to take the memory
    "stylegan3": {"resolution": tuple(2**k for k in range(3, 14)), "z_dim": _DIM, "w_dim": _DIM,
                  "image_channels": _RGB, "channel_base": ValueSpec("int", minimum=1, maximum=2**24),
                  "channel_max": _DIM, "num_mapping_layers": ValueSpec("int", minimum=1, maximum=64),
                  "mapping_lr_multiplier": ValueSpec("float", minimum=0, maximum=1e3, min_open=True),
                  "num_layers": ValueSpec("int", minimum=1, maximum=64),
                  "num_critical": ValueSpec("int", minimum=0, maximum=64),
                  "first_cutoff": ValueSpec("float", minimum=0.5, maximum=8192),
                  "first_stopband": ValueSpec("float", minimum=0.5, maximum=8192),
                  "last_stopband_rel": ValueSpec("float", minimum=0.5, maximum=16),
                  "margin_size": ValueSpec("int", minimum=0, maximum=1024),
                  "output_scale": ValueSpec("float", minimum=-1e6, maximum=1e6),
                  "filter_size": ValueSpec("int", minimum=1, maximum=16),  # NVlabs: 6
                  "lrelu_upsampling": ValueSpec("int", minimum=1, maximum=4),  # NVlabs: 2
                  "conv_kernel": ValueSpec("int", minimum=1, maximum=15),
                  "use_radial_filters": (True, False),
                  "conv_clamp": ValueSpec("float", minimum=0, min_open=True, nullable=True),
                  "truncation_psi": _PSI, "truncation_layers": _ROWS},
}


def _exact(value: Any, allowed: tuple[Any, ...]) -> bool:
    return any(type(value) is type(a) and value == a for a in allowed)


def check_config(architecture: Any, config: Any, source: str) -> None:
    """Refuse (:class:`UnknownFormatError`) a config ``ARCHITECTURES[architecture]`` should not be built with."""
    from mgan_cli.generators import ARCHITECTURES

    if not isinstance(architecture, str) or architecture not in ARCHITECTURES:
        raise UnknownFormatError(f"{source}: architecture {architecture!r} is not one mgan has "
                                 f"({', '.join(ARCHITECTURES.names())})")
    if not isinstance(config, Mapping):
        raise UnknownFormatError(f"{source}: config must be a mapping, got {type(config).__name__}")
    table = CONFIG_CHECKS.get(architecture)
    if table is None:
        raise UnknownFormatError(f"{source}: architecture {architecture!r} has no bounds for its config; "
                                 "mgan builds none without them")
    for key, value in config.items():
        if key not in table:
            raise UnknownFormatError(f"{source}: config key {key!r} is not an argument of {architecture} "
                                     f"(known: {', '.join(table)})")
        allowed = table[key]
        if key == "image_channels" and value != 3:
            raise UnknownFormatError(f"{source}: a {value!r}-channel generator; mgan imports RGB generators only "
                                     "(its tasks, metrics and reports are RGB; a grey generator would half-work)")
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


def build_architecture(architecture: Any, config: Any, source: str, meta: bool = True) -> Generator:
    """``ARCHITECTURES[architecture](**config)`` after :func:`check_config`, on the meta device (no memory, no
    weights) unless ``meta`` is False. A config within the bounds that still cannot be built is refused with an
    :class:`UnknownFormatError` naming ``source``."""
    from mgan_cli.generators import ARCHITECTURES

    check_config(architecture, config, source)
    try:
        if not meta:
            return ARCHITECTURES.get(architecture)(**config)
        with torch.device("meta"):
            return ARCHITECTURES.get(architecture)(**config)
    except MganError as exc:
        raise UnknownFormatError(f"{source}: {architecture} config cannot be built ({exc})") from None
    except (ValueError, ArithmeticError) as exc:  # e.g. a schedule whose rates are not integer ratios
        raise UnknownFormatError(f"{source}: {architecture} config cannot be built ({exc})") from None
