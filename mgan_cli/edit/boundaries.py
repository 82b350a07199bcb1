"""Where an edit's direction comes from: ``--direction`` and ``--condition`` specs.

A spec is one of

* a registry name of ``kind: boundary`` (InterFaceGAN's boundaries, ``mgan weights list``): its
  ``extra`` says the ``space`` (z or w) and the ``generators`` it was made for; any other generator or
  space is refused;
* a ``.npy`` file holding ``[D]`` or ``[1, D]`` (or ``FILE.npy:K``: row K of a ``[K, D]`` file such as
  ``mgan directions`` writes). A ``FILE.json`` beside it (written by ``mgan directions``) names the
  generator and space, and is checked the same way;
* ``sefa:K`` or ``pca:K``: direction K (from 0) computed on the fly for this generator
  (:mod:`mgan_cli.edit.directions`; PCA of w for StyleGANs, of the layer-1 features for z-only generators).

Every direction is normalised to unit length. :func:`condition` is InterFaceGAN's conditional
manipulation: remove from ``d`` its components along the given boundaries, then renormalise.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from mgan_cli.edit import directions
from mgan_cli.edit.frames import Direction
from mgan_cli.errors import ConfigurationError, WeightsError
from mgan_cli.generators.base import Generator
from mgan_cli.utils.inputs import load_npy
from mgan_cli.weights.store import WeightStore, default_store


def _unit(vector: torch.Tensor, name: str) -> torch.Tensor:
    norm = vector.norm()
    if not torch.isfinite(norm) or norm < 1e-12:
        raise ConfigurationError(f"direction {name} has zero (or non-finite) length")
    return (vector / norm).float()


def _check_made_for(name: str, made_for: Sequence[str], generator_name: str) -> None:
    if generator_name not in made_for:
        raise ConfigurationError(f"direction {name} was made for {', '.join(made_for)}, not {generator_name}: "
                                 "a boundary only means something in the latent space of its own generator")


def load_boundary(name: str, generator_name: str, store: WeightStore | None = None) -> Direction:
    """The registry boundary ``name``, refused unless it was made for ``generator_name``."""
    store = store or default_store()
    entry = store.entry(name)
    if entry.kind != "boundary":
        raise WeightsError(f"{name!r} is a {entry.kind}, not a boundary (see `mgan weights list`)")
    _check_made_for(name, entry.extra.get("generators", []), generator_name)
    array = load_npy(store.path(name))
    return Direction(_unit(torch.from_numpy(np.asarray(array, dtype=np.float64)).flatten(), name),
                     str(entry.extra.get("space", "z")), name)


def load_direction_file(spec: str, generator_name: str, default_space: str) -> Direction:
    """``FILE.npy`` (``[D]`` / ``[1, D]``) or ``FILE.npy:K`` (row K); see the module docstring."""
    path_text, row = spec, None
    head, sep, tail = spec.rpartition(":")
    if sep and head.endswith(".npy") and tail.isdigit():
        path_text, row = head, int(tail)
    path = Path(path_text)
    if not path.is_file():
        raise ConfigurationError(f"--direction {spec}: no such file {path}")
    try:
        array = load_npy(path)
    except (ValueError, OSError) as exc:
        raise ConfigurationError(f"{path}: not a .npy array ({exc})") from None
    if array.ndim == 2 and row is not None:
        if not 0 <= row < array.shape[0]:
            raise ConfigurationError(f"{path} has rows 0-{array.shape[0] - 1}, not {row}")
        array = array[row]
    elif array.ndim == 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.floating):
        raise ConfigurationError(f"{path}: a direction is a float array [D] or [1, D] (or FILE.npy:K for row K of "
                                 f"[K, D]); got {array.dtype} {list(array.shape)}")
    space = default_space
    sidecar = path.with_suffix(".json")
    if sidecar.is_file():
        info = json.loads(sidecar.read_text())
        if info.get("generator"):
            _check_made_for(spec, [info["generator"]], generator_name)
        space = info.get("space", space)
    return Direction(_unit(torch.from_numpy(array.astype(np.float64)), spec), space, spec)


def computed_direction(spec: str, generator: Generator) -> Direction:
    """``sefa:K`` / ``pca:K`` for ``generator``."""
    method, _, index_text = spec.partition(":")
    if not index_text.isdigit():
        raise ConfigurationError(f"--direction {spec}: use {method}:K with K a direction number from 0")
    index = int(index_text)
    layer = None if method == "sefa" or directions.edit_space(generator) == "w" else 1
    found = directions.compute(generator, method, index + 1, layer=layer)
    return Direction(found.vectors[index], found.space, spec)


def resolve(spec: str, generator_name: str, default_space: str, generator: Callable[[], Generator],
            store: WeightStore | None = None) -> Direction:
    """The direction named by ``spec`` (see the module docstring) for the generator ``generator_name``;
    ``default_space`` (z or w) is that of a bare ``.npy`` file; ``generator()`` loads the generator (only
    ``sefa:K`` / ``pca:K`` need it)."""
    method = spec.partition(":")[0]
    if method in directions.METHODS and ":" in spec:
        return computed_direction(spec, generator())
    if spec.partition(".npy")[1] or Path(spec).is_file():
        return load_direction_file(spec, generator_name, default_space)
    return load_boundary(spec, generator_name, store)


def condition(direction: Direction, others: Sequence[Direction]) -> Direction:
    """``direction`` with its components along every one of ``others`` removed, renormalised
    (InterFaceGAN's conditional manipulation; several conditions are orthogonalised first)."""
    if not others:
        return direction
    basis: list[torch.Tensor] = []
    for other in others:
        if other.space != direction.space or other.vector.shape != direction.vector.shape:
            raise ConfigurationError(f"--condition {other.name} ({other.space}, {other.vector.numel()}) does not "
                                     f"match --direction {direction.name} ({direction.space}, "
                                     f"{direction.vector.numel()})")
        vector = other.vector.double()
        for b in basis:
            vector = vector - (vector @ b) * b
        if vector.norm() > 1e-8:
            basis.append(vector / vector.norm())
    result = direction.vector.double()
    for b in basis:
        result = result - (result @ b) * b
    names = ", ".join(o.name for o in others)
    return Direction(_unit(result, f"{direction.name} conditioned on {names}"), direction.space,
                     f"{direction.name} | {names}")
