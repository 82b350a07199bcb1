"""Registries of generator architectures and of the weight-file formats that feed them.

* ``ARCHITECTURES[name](**config) -> Generator`` builds a randomly initialised generator (used for
  parameter counts, for loading, and by tests that write weight files in official formats).
* ``READERS[format](path) -> GeneratorWeights`` reads a weight file of that format *as data* into an
  architecture name, its constructor config, and a state dict in mgan's own parameter names.
* :func:`build` turns ``GeneratorWeights`` into a frozen generator (every key must match, both ways).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mgan_cli.errors import UnknownFormatError
from mgan_cli.generators.base import Generator
from mgan_cli.registry import Registry
from mgan_cli.weight_store import WeightStore, default_store


@dataclass
class GeneratorWeights:
    """A generator read from a file: ``ARCHITECTURES[architecture](**config)`` loads ``state_dict``."""

    architecture: str
    config: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    metadata: dict[str, Any] = field(default_factory=dict)


ARCHITECTURES: Registry[Callable[..., Generator]] = Registry("generator architecture")
READERS: Registry[Callable[[Path], GeneratorWeights]] = Registry("generator weight format")


def build(weights: GeneratorWeights, source: str = "weights") -> Generator:
    """Instantiate ``weights.architecture`` with ``weights.config`` and load the state dict strictly."""
    model = ARCHITECTURES.get(weights.architecture)(**weights.config)
    missing, unexpected = model.load_state_dict(weights.state_dict, strict=False)
    if missing or unexpected:
        raise UnknownFormatError(
            f"{source}: does not fit {weights.architecture} — missing {list(missing)[:4]}, "
            f"unexpected {list(unexpected)[:4]}"
        )
    return model.freeze()


def read_generator(path: Path, format_name: str) -> Generator:
    """Read ``path`` (a file of format ``format_name``) into a frozen generator."""
    return build(READERS.get(format_name)(path), source=str(path))


def load_generator(name: str, store: WeightStore | None = None) -> Generator:
    """The frozen generator of registry entry ``name`` (its weights fetched and verified first), or of the
    generator imported as ``name`` with ``mgan weights import`` (``<cache>/imported/<name>``)."""
    store = store or default_store()
    imported = store.home / "imported" / name  # `mgan weights import` output (mgan_cli/weight_import.py)
    if name not in store.entries and (imported / "mgan.json").is_file():
        return read_generator(imported, "mgan-safetensors")
    entry = store.entry(name)
    if entry.kind != "generator":
        raise UnknownFormatError(f"weights {name!r} are a {entry.kind}, not a generator")
    return read_generator(store.path(name), entry.format or "")
