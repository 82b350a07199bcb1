"""Generators: the interface (:mod:`.base`), the registries (:mod:`.registry`), and the families."""

from mgan_cli.generators import dcgan  # noqa: F401  (registers the DCGAN architectures and formats)
from mgan_cli.generators.base import Generator, LayerInfo
from mgan_cli.generators.registry import (
           ARCHITECTURES,
           READERS,
           GeneratorWeights,
           build,
           load_generator,
           read_generator,
)

__all__ = ["ARCHITECTURES", "READERS", "Generator", "GeneratorWeights", "LayerInfo", "build", "load_generator",
           "read_generator"]
