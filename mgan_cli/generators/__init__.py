"""Generators: the interface (:mod:`.base`), shared layers (:mod:`.layers`), the architecture registry
(:mod:`.registry`) and the families. Nothing here reads weight files (:mod:`mgan_cli.weights.formats`) or knows the
weight store (:mod:`mgan_cli.weights.loading` loads a generator by name)."""

from mgan_cli.generators import (
           dcgan,  # noqa: F401  (registers the DCGAN architectures)
           pggan,  # noqa: F401  (registers the PGGAN architecture)
           stylegan,  # noqa: F401  (registers the StyleGAN architecture)
           stylegan2,  # noqa: F401  (registers the StyleGAN2 architecture)
           stylegan3,  # noqa: F401  (registers the StyleGAN3 architecture)
)
from mgan_cli.generators.base import Generator, LayerInfo
from mgan_cli.generators.registry import ARCHITECTURES

__all__ = ["ARCHITECTURES", "Generator", "LayerInfo"]
