"""A learned warm start for the multi-code inversion: an encoder trained only on the generator's own samples.

* :mod:`~mgan_cli.encoder.targets`: what it predicts (z, or w+ rows and the upper latent) per generator family;
* :mod:`~mgan_cli.encoder.augment`: its input, from any task's observed image, and the training augmentations;
* :mod:`~mgan_cli.encoder.model`: the network; :mod:`~mgan_cli.encoder.training`: resumable training;
* :mod:`~mgan_cli.encoder.storage`: the cache folder beside the generator's sha256, read through safetensors only;
* :mod:`~mgan_cli.encoder.warm_start`: the initial codes for ``invert(..., initial_codes=, initial_upper=)``, and
  :func:`resolve_start`, which decides ``init: auto`` and the encoder recipe's iterations, and
  :func:`recipe_tuning`, its tuning.
"""

from mgan_cli.core.engine import INITS
from mgan_cli.encoder.storage import LoadedEncoder, list_encoders, read_encoder
from mgan_cli.encoder.training import Budget, TrainingSettings, default_minutes, train_encoder
from mgan_cli.encoder.warm_start import (
    WarmStart,
    auto_start_note,
    encoder_initial_state,
    has_encoder,
    load_encoder,
    recipe_tuning,
    resolve_start,
)

__all__ = [
    "INITS",
    "Budget",
    "LoadedEncoder",
    "TrainingSettings",
    "WarmStart",
    "auto_start_note",
    "default_minutes",
    "encoder_initial_state",
    "has_encoder",
    "list_encoders",
    "load_encoder",
    "read_encoder",
    "recipe_tuning",
    "resolve_start",
    "train_encoder",
]
