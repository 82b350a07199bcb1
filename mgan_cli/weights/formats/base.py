"""What every weight reader shares: the readers' registry, the data a reader returns, and one fit report.

* ``READERS[format](path) -> GeneratorWeights`` reads a weight file of that format *as data* into an
  architecture name, its constructor config, and a state dict in mgan's own parameter names.
* :func:`state_dict_fit` compares a state dict with the one an architecture expects (every key and shape);
  :func:`require_fit` raises :class:`UnknownFormatError` with that report when they differ.
* :func:`build` turns ``GeneratorWeights`` into a frozen generator (every key and shape must match, both ways).

Nothing here knows about the weight store: the store-aware loading is :mod:`mgan_cli.weights.loading`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mgan_cli.errors import UnknownFormatError
from mgan_cli.generators.base import Generator
from mgan_cli.utils.registry import Registry
from mgan_cli.weights.formats.config_checks import build_architecture


@dataclass
class GeneratorWeights:
    """A generator read from a file: ``ARCHITECTURES[architecture](**config)`` loads ``state_dict``."""

    architecture: str
    config: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    metadata: dict[str, Any] = field(default_factory=dict)


READERS: Registry[Callable[[Path], GeneratorWeights]] = Registry("generator weight format")


@dataclass(frozen=True)
class StateDictFit:
    """How a state dict differs from the one a model expects (all empty: it fits)."""

    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    #: ``"key: got != expected"`` for keys present on both sides with different shapes
    wrong_shapes: tuple[str, ...]

    @property
    def fits(self) -> bool:
        return not (self.missing or self.unexpected or self.wrong_shapes)

    def describe(self, limit: int = 4) -> str:
        """One line naming the first ``limit`` differences of each kind."""
        parts = [f"{label} {list(keys[:limit])}" + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")
                 for label, keys in (("missing keys", self.missing), ("unknown keys", self.unexpected),
                                     ("wrong shapes", self.wrong_shapes)) if keys]
        return ", ".join(parts) or "fits"


def expected_shapes(architecture: str, config: Mapping[str, Any], source: str | None = None) \
        -> dict[str, tuple[int, ...]]:
    """The state-dict keys and shapes of ``ARCHITECTURES[architecture](**config)`` (config checked, built on the
    meta device; ``source`` names the file in a refusal)."""
    model = build_architecture(architecture, config, source or f"{architecture} config")
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


def state_dict_fit(expected: Mapping[str, tuple[int, ...]], state: Mapping[str, torch.Tensor]) -> StateDictFit:
    """Compare ``state`` with the expected ``{key: shape}``: keys both ways, then shapes."""
    got = {key: tuple(value.shape) for key, value in state.items()}
    return StateDictFit(
        missing=tuple(k for k in expected if k not in got),
        unexpected=tuple(k for k in got if k not in expected),
        wrong_shapes=tuple(f"{k}: {got[k]} != {shape}" for k, shape in expected.items()
                           if k in got and got[k] != shape),
    )


def require_fit(architecture: str, config: Mapping[str, Any], state: Mapping[str, torch.Tensor],
                source: str) -> None:
    """Raise :class:`UnknownFormatError` unless ``state`` has exactly the keys and shapes of the model."""
    fit = state_dict_fit(expected_shapes(architecture, config, source), state)
    if not fit.fits:
        raise UnknownFormatError(f"{source}: does not fit {architecture} {dict(config)} — {fit.describe()}")


def build(weights: GeneratorWeights, source: str = "weights") -> Generator:
    """Instantiate ``weights.architecture`` with ``weights.config`` and load the state dict strictly. The config
    is checked and the state dict compared with the model's shapes on the meta device first, so that nothing
    larger than the file's own tensors is ever allocated."""
    meta = build_architecture(weights.architecture, weights.config, source)
    expected = {key: tuple(value.shape) for key, value in meta.state_dict().items()}
    fit = state_dict_fit(expected, weights.state_dict)
    if not fit.fits:
        raise UnknownFormatError(f"{source}: does not fit {weights.architecture} — {fit.describe()}")
    model = build_architecture(weights.architecture, weights.config, source, meta=False)
    model.load_state_dict(weights.state_dict)
    return model.freeze()
