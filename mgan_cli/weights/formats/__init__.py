"""Readers for the weight-file formats people hold; each registers itself in :data:`READERS`
(:mod:`.base` holds the registry, :class:`GeneratorWeights`, the fit report and :func:`build`).

Importing this package registers every reader."""

from mgan_cli.weights.formats import (
           dcgan,  # noqa: F401  (registers the dcgan-tutorial-tar / dcgan32-state-dict readers)
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
from mgan_cli.weights.formats.base import READERS, GeneratorWeights, build, require_fit, state_dict_fit

__all__ = ["READERS", "GeneratorWeights", "build", "require_fit", "state_dict_fit"]
