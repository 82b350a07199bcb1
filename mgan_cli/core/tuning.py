"""Generator tuning around a multi-code inversion (pivotal tuning, PTI, Roich et al. 2022).

After the codes, importances and upper latent of an image are found (the *pivot*), a private copy of the
generator is optimised for ``steps`` Adam steps on the task's own loss ``L(A(x̂), y)`` with the pivot
fixed, plus PTI's locality regulariser: codes moved by ``radius`` in a random direction from the pivot
(the same move for all N codes, the move an edit makes) must render as the *original* generator renders
them, so that edits of the tuned generator are still edits. ``layers="upper"`` tunes only the
parameters above the composing layer ℓ (found as the parameters the upper part uses).

Isolation: the shared generator is never touched (its parameters are not even given gradients), and each
image gets its own copy (``copy.deepcopy``), so images never influence each other and a batch gives
the same result as running them one by one. A copy per image was chosen over stacked per-image weight
deltas under ``torch.func.vmap``: it works for every generator family unchanged (batch norms, noise
buffers, custom convolutions), and on the CPU it measured 1.2-1.7x faster than a stacked prototype
(``python -m bench.tuning_isolation``, BENCHMARKS.md); on a GPU stacking may win, not yet measured.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch

from mgan_cli.core.composition import compose
from mgan_cli.core.degradations import Degradation
from mgan_cli.core.engine import MultiCodeModel
from mgan_cli.core.inversion import Inversion
from mgan_cli.core.losses import ReconstructionLoss
from mgan_cli.errors import ConfigurationError
from mgan_cli.generators.base import Generator

TUNE_LAYERS = ("all", "upper")


@dataclass(frozen=True)
class TuningSettings:
    """steps: Adam steps (0 = no tuning). layers: ``all`` or ``upper`` (above ℓ). lr: Adam's rate (PTI: 3e-4).
    locality_weight: weight of the locality term (0 disables it). locality_radius: how far from the pivot
    its random codes lie (in the code space; the default is the largest default edit strength).
    locality_every: add the locality term every this many steps (PTI: 1)."""

    steps: int = 0
    layers: str = "all"
    lr: float = 3e-4
    locality_weight: float = 1.0
    locality_radius: float = 3.0
    locality_every: int = 1

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise ConfigurationError(f"--tune-generator must be non-negative, got {self.steps}")
        if self.layers not in TUNE_LAYERS:
            raise ConfigurationError(f"--tune-layers must be one of {', '.join(TUNE_LAYERS)}, got {self.layers!r}")
        if self.lr <= 0 or self.locality_weight < 0 or self.locality_radius < 0 or self.locality_every < 1:
            raise ConfigurationError("tuning lr must be positive, locality weight and radius non-negative, "
                                     "locality_every at least 1")


def tuning_autocast(precision: str) -> torch.dtype | None:
    """The autocast dtype tuning runs under for a run's ``--precision``: bf16 for bf16; fp16 and fp32 tune in
    fp32 (fp16 would need a gradient scaler, which tuning does not keep)."""
    return torch.bfloat16 if precision == "bf16" else None


def upper_parameter_names(generator: Generator, inversion: Inversion) -> set[str]:
    """Names of the parameters the part above ℓ uses (those that get a gradient from it)."""
    model = MultiCodeModel(generator, inversion.layer, inversion.space, inversion.composition)
    with torch.no_grad():
        features = model.lower(inversion.codes.flatten(0, 0)[:1])
    probe = copy.deepcopy(generator).requires_grad_(True)
    _, upper = probe.split(inversion.layer, inversion.space)
    upper_latent = None if inversion.upper_latent is None else inversion.upper_latent[None]
    upper(features, upper_latent).square().sum().backward()
    return {name for name, p in probe.named_parameters() if p.grad is not None}


def tune(generator: Generator, inversion: Inversion, observed: torch.Tensor, degradation: Degradation,
         loss: ReconstructionLoss, settings: TuningSettings, seed: int, *, mask: torch.Tensor | None = None,
         autocast_dtype: torch.dtype | None = None,
         progress: Callable[[int, float], None] | None = None,
         snapshot: Callable[[int, Generator], None] | None = None) -> Generator:
    """A tuned private copy of ``generator`` for one image (``observed`` ``[3, r, r]`` in [-1, 1],
    ``mask`` ``[1, R, R]``); ``seed`` makes the locality codes reproducible. ``generator`` is not modified.
    ``progress(step, loss)`` and ``snapshot(step, tuned)`` are called after every step (``tuned`` is the copy
    being tuned: a snapshot at step k is what ``steps=k`` would return)."""
    tuned = copy.deepcopy(generator).eval()
    tuned.requires_grad_(False)
    names = (upper_parameter_names(generator, inversion) if settings.layers == "upper"
             else {name for name, _ in tuned.named_parameters()})
    params = [p.requires_grad_(True) for name, p in tuned.named_parameters() if name in names]
    if settings.steps == 0 or not params:
        return tuned.requires_grad_(False)
    optimizer = torch.optim.Adam(params, lr=settings.lr)
    device = observed.device
    tuned_model = MultiCodeModel(tuned, inversion.layer, inversion.space, inversion.composition)
    frozen_model = MultiCodeModel(generator, inversion.layer, inversion.space, inversion.composition)
    codes, alphas = inversion.codes[None].to(device), inversion.alphas[None].to(device)
    upper = None if inversion.upper_latent is None else inversion.upper_latent[None].to(device)
    observed, mask = observed[None], None if mask is None else mask[None]
    with torch.no_grad():
        target_features = loss.prepare(observed)
    # tuning only above ℓ: the composed features below are fixed, so they are computed once
    upper_only = settings.layers == "upper"

    def composed(model: MultiCodeModel, at: torch.Tensor) -> torch.Tensor:
        features = model.lower(at.flatten(0, 1)).unflatten(0, at.shape[:2])
        return compose(features, alphas, model.composition)

    if upper_only:
        with torch.no_grad():
            pivot_features = composed(tuned_model, codes)
    rng = torch.Generator().manual_seed(int(seed))
    enabled = autocast_dtype is not None
    for step in range(settings.steps):
        local = settings.locality_weight > 0 and step % settings.locality_every == 0
        with torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=enabled):
            if local:
                move = torch.randn(codes.shape[2:], generator=rng).to(device)
                nearby = codes + settings.locality_radius * move / move.norm()
                with torch.no_grad():
                    if upper_only:  # the part below ℓ is not tuned: one lower pass serves both renders
                        nearby_features = composed(frozen_model, nearby)
                        expected = frozen_model.upper(nearby_features, upper).float()
                    else:
                        expected = frozen_model(nearby, alphas, upper).float()
            if upper_only:  # the pivot and the nearby codes through the tuned upper part as one batch
                features = torch.cat([pivot_features, nearby_features]) if local else pivot_features
                latent = None if upper is None else upper.expand(features.shape[0], *upper.shape[1:])
                renders = tuned_model.upper(features, latent).float()
                image, rendered = renders[:1], renders[1:]
            else:
                image = tuned_model(codes, alphas, upper).float()
                rendered = tuned_model(nearby, alphas, upper).float() if local else None
            total = loss(degradation(image, mask), observed, target_features).sum()
            if local:
                total = total + settings.locality_weight * (rendered - expected).square().mean()
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        if progress is not None:
            progress(step + 1, float(total.detach()))
        if snapshot is not None:
            snapshot(step + 1, tuned)
    return tuned.requires_grad_(False)


def tuned_state(tuned: Generator, names: set[str] | None = None) -> dict[str, torch.Tensor]:
    """The tuned parameters (all, or ``names``) as a flat dict, to store beside an image's latents."""
    return {name: p.detach().cpu().contiguous() for name, p in tuned.named_parameters()
            if names is None or name in names}


def tuned_parameters(tuned: Generator, original: Generator) -> dict[str, torch.Tensor]:
    """The parameters of ``tuned`` that differ from ``original`` (what a tuning run changed), on the CPU."""
    before = dict(original.named_parameters())
    return {name: p.detach().cpu().contiguous() for name, p in tuned.named_parameters()
            if not torch.equal(p, before[name])}


def apply_tuned_state(generator: Generator, state: dict[str, torch.Tensor]) -> Generator:
    """A copy of ``generator`` with the parameters in ``state`` replaced (the inverse of :func:`tuned_state`)."""
    copied = copy.deepcopy(generator)
    own = dict(copied.named_parameters())
    unknown = set(state) - set(own)
    if unknown:
        raise ConfigurationError(f"tuned weights do not fit this generator: {sorted(unknown)[:3]}")
    with torch.no_grad():
        for name, value in state.items():
            own[name].copy_(value)
    return copied.requires_grad_(False)
