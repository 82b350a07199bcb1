"""The registry of generator architectures: ``ARCHITECTURES[name](**config) -> Generator``.

Each family registers its class (or, where the layout is built from a table, a factory). A randomly
initialised generator is used for parameter counts, for checking that a state dict fits, and by tests that
write weight files in official formats. The readers of weight files live in :mod:`mgan_cli.weights.formats`.
"""

from __future__ import annotations

from collections.abc import Callable

from mgan_cli.generators.base import Generator
from mgan_cli.utils.registry import Registry

ARCHITECTURES: Registry[Callable[..., Generator]] = Registry("generator architecture")
