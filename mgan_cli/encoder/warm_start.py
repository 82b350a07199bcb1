"""The warm start: each image's N codes begin at the encoder's prediction for its observed image.

For image b with seed s_b, the codes are ``c(ê_b) + init_noise · (ε_b − centre)`` where ê_b is the encoder's
prediction from the observed image (through the task's degradation, see :func:`observed_input`), c maps it to
the engine's latent space (:mod:`mgan_cli.encoder.targets`), and ε_b are exactly the codes the random start
draws from seed s_b (``generator.sample_codes``), so runs stay reproducible. Each image is encoded on its own,
so its start never depends on the other images of its batch. The upper latent (StyleGANs) starts at the
prediction's rows above the composing layer; α starts at 1/N as usual.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from mgan_cli.config.presets import Preset
from mgan_cli.core.degradations import Degradation
from mgan_cli.core.engine import InversionSettings
from mgan_cli.core.tuning import TuningSettings
from mgan_cli.encoder.augment import observed_input
from mgan_cli.encoder.storage import WEIGHTS_FILE, LoadedEncoder, encoder_folder, read_encoder, train_hint
from mgan_cli.encoder.targets import TARGETS
from mgan_cli.encoder.training import default_minutes
from mgan_cli.errors import EncoderNotFoundError, MganError
from mgan_cli.generators.base import Generator
from mgan_cli.utils.shapes import check_shape
from mgan_cli.weights.store import WeightStore, default_store


@dataclass
class WarmStart:
    """Initial codes ``[B, N, *code_shape]`` and upper latents ``[B, *upper_shape]`` (or ``None``) for
    :func:`mgan_cli.core.engine.invert`'s ``initial_codes`` / ``initial_upper``."""

    codes: torch.Tensor
    upper: torch.Tensor | None


def load_encoder(generator_name: str, store: WeightStore | None = None) -> LoadedEncoder:
    """The verified encoder trained for generator ``generator_name`` (registry or imported), on the CPU.

    Raises :class:`EncoderNotFoundError` (one line: ``no encoder for G; train one with `mgan encoder train G`
    (about M minutes on this machine)``), :class:`mgan_cli.errors.ForeignEncoderError` for one trained for
    other weights, and the errors of :func:`mgan_cli.encoder.storage.read_encoder`.
    """
    from mgan_cli.weights.importing import generator_identity

    store = store or default_store()
    _, _, sha = generator_identity(generator_name, store)
    if sha is None:
        raise EncoderNotFoundError(f"no encoder for {generator_name}; {train_hint(generator_name, default_minutes())}")
    return read_encoder(encoder_folder(sha, store.home), generator_name, sha, default_minutes)


def predict(loaded: LoadedEncoder, observed: torch.Tensor, degradation: Degradation,
            mask: torch.Tensor | None = None) -> torch.Tensor:
    """The encoder's prediction ``[B, *target_shape]`` for each observed image ``[B, 3, r, r]`` (one at a time)."""
    encoder = loaded.encoder.to(observed.device)
    size = encoder.architecture.input_size
    with torch.no_grad():
        rows = [encoder(observed_input(observed[b:b + 1], degradation, None if mask is None else mask[b:b + 1],
                                       size)) for b in range(observed.shape[0])]
    return torch.cat(rows).float()


def encoder_initial_state(loaded: LoadedEncoder, generator: Generator, observed: torch.Tensor,
                          degradation: Degradation, settings: InversionSettings, seeds: Sequence[int], *,
                          mask: torch.Tensor | None = None) -> WarmStart:
    """The warm start of ``observed`` ``[B, 3, r, r]`` (see the module docstring; the noise scale is
    ``settings.init_noise``); pass its ``codes`` and ``upper`` to ``invert(..., initial_codes=, initial_upper=)``.
    ``mask`` ``[B, 1, R, R]``, 1 = missing."""
    batch = check_shape(observed, "B 3 H H", "observed")["B"]
    if len(seeds) != batch:
        raise ValueError(f"need one seed per image: {len(seeds)} seeds for {batch} images")
    target = TARGETS.get(loaded.target)
    prediction = predict(loaded, observed, degradation, mask)
    centre = target.codes(generator, prediction, settings.space, settings.layer).cpu()
    offset = target.noise_center(generator, settings.space)
    noise = []
    for seed in seeds:
        rng = torch.Generator().manual_seed(int(seed))
        noise.append(generator.sample_codes(settings.codes, rng, settings.space).float().cpu() - offset)
    codes = centre[:, None] + settings.init_noise * torch.stack(noise)
    upper = target.upper(generator, prediction, settings.layer)
    return WarmStart(codes.to(observed.device), None if upper is None else upper.to(observed.device))


def has_encoder(generator_name: str, store: WeightStore | None = None) -> bool:
    """Whether an encoder file is stored for the weights ``generator_name`` names (it is verified when loaded)."""
    from mgan_cli.weights.importing import generator_identity

    store = store or default_store()
    try:
        _, _, sha = generator_identity(generator_name, store)
    except MganError:
        return False
    return sha is not None and (encoder_folder(sha, store.home) / WEIGHTS_FILE).is_file()


def resolve_start(preset: Preset, store: WeightStore | None = None, *, named: bool = True,
                  tunes: bool = True) -> Preset:
    """``preset`` with its start decided: ``init: auto`` becomes ``encoder`` where an encoder is trained for the
    preset's generator (and ``named``: a generator read from a file has none), else ``random``. With the encoder
    start, ``encoder_iterations`` (when set, and unless ``iterations`` was given as an override) becomes the
    number of iterations: the task's recipe measured for that start (BENCHMARKS.md, "Time to quality"). The
    result has ``encoder_iterations`` None, so its settings say exactly what runs; it keeps the recipe's
    ``encoder_tune_steps`` for :func:`recipe_tuning` only with the encoder start (None otherwise). A recipe is
    followed whole or not at all: for a run that does not tune (``tunes=False``: ``--tune-generator 0``, the layer
    analysis), a recipe with tuning steps gives way to the preset's own iterations."""
    inversion = preset.inversion
    init = inversion.init
    if init == "auto":
        init = "encoder" if named and has_encoder(preset.generator, store) else "random"
    recipe = init == "encoder" and (tunes or not inversion.encoder_tune_steps)
    iterations = inversion.iterations
    if recipe and inversion.encoder_iterations is not None and "iterations" not in preset.overrides:
        iterations = inversion.encoder_iterations
    tune_steps = inversion.encoder_tune_steps if recipe else None
    resolved = dataclasses.replace(inversion, init=init, iterations=iterations, encoder_iterations=None,
                                   encoder_tune_steps=tune_steps)
    return dataclasses.replace(preset, inversion=resolved)


def recipe_tuning(preset: Preset, steps: int | None = None, layers: str | None = None) -> TuningSettings:
    """The generator tuning a run does after the inversion of a :func:`resolve_start`-resolved ``preset``: ``steps``
    and ``layers`` as the caller asked (``--tune-generator``, ``--tune-layers``); where the caller left ``steps``
    unset (None), the encoder recipe's ``encoder_tune_steps`` (pivotal tuning above the layer ℓ, the recipe
    measured in BENCHMARKS.md, "Time to quality"), else none. ``layers`` unset: ``upper`` for the recipe's
    tuning, ``all`` for the caller's."""
    recipe = preset.inversion.encoder_tune_steps if steps is None else None
    if recipe:
        return TuningSettings(steps=recipe, layers=layers or "upper")
    return TuningSettings(steps=steps or 0, layers=layers or "all")


def auto_start_note(requested: Preset, resolved: Preset) -> str | None:
    """One line for a user whose ``init: auto`` fell back to random codes (no encoder trained for weights that are
    there), else ``None``."""
    if requested.inversion.init != "auto" or resolved.inversion.init != "random":
        return None
    from mgan_cli.weights.importing import generator_identity

    name = requested.generator
    try:
        if generator_identity(name)[2] is None:
            return None
    except MganError:  # no weights at all: the run's own error says so, a note about encoders would only distract
        return None
    return (f"codes start at random: no encoder is trained for {name} (`mgan encoder train {name}`, about "
            f"{default_minutes():g} minutes here, gives a learned warm start that reaches the same quality in "
            "fewer steps; see the README)")
