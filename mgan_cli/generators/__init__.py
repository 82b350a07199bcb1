"""Generators: the interface (:mod:`.base`), the registries (:mod:`.registry`), and the families."""

from mgan_cli.formats import (
           genforce,  # noqa: F401  (registers the genforce-pggan / -stylegan readers)
           genforce_stylegan2,  # noqa: F401  (registers the genforce-stylegan2 reader)
           genforce_zoo,  # noqa: F401  (registers the genforce-zoo and interfacegan-stylegan readers)
           nvlabs,  # noqa: F401  (registers the nvlabs-pickle reader)
           rosinality,  # noqa: F401  (registers the rosinality reader)
           safetensors_format,  # noqa: F401  (registers the mgan-safetensors reader: imported generators)
           tf_pggan,  # noqa: F401  (registers the tf-pggan reader)
           tf_stylegan,  # noqa: F401  (registers the tf-stylegan reader)
           tf_stylegan2,  # noqa: F401  (registers the tf-stylegan2 reader)
)
from mgan_cli.generators import (
           dcgan,  # noqa: F401  (registers the DCGAN architectures and formats)
           pggan,  # noqa: F401  (registers the PGGAN architecture)
           stylegan,  # noqa: F401  (registers the StyleGAN architecture)
           stylegan2,  # noqa: F401  (registers the StyleGAN2 architecture)
)
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
