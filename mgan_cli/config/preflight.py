"""Checks of a resolved preset against its generator that need no weights and write nothing.

Run before an output folder is created, so that a layer the generator does not have, a latent space it lacks,
a ``--scale`` that does not divide its resolution or leaves inputs too small for the perceptual loss, each
give one line and exit 2 with nothing on disk. The generator is built on the meta device from its registry
or imported config (no weights read, no memory used).
"""

from __future__ import annotations

from mgan_cli.config.presets import Preset
from mgan_cli.core.degradations import build_degradation
from mgan_cli.core.engine import check_settings
from mgan_cli.core.losses import smallest_input
from mgan_cli.weights.formats.config_checks import build_architecture
from mgan_cli.weights.importing import generator_identity


def check_preset_fits(preset: Preset) -> None:
    """Raise :class:`~mgan_cli.errors.ConfigurationError` (or the registry's error) unless ``preset`` can run."""
    architecture, config, _ = generator_identity(preset.generator)
    generator = build_architecture(architecture, config, f"generator {preset.generator!r}")
    check_settings(generator, preset.inversion)
    loss = preset.loss
    build_degradation(preset.degradation).observed_size(
        generator.resolution, smallest_input(loss.perceptual_weight, loss.vgg_layer, loss.perceptual_resolution))
