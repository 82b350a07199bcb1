"""The multi-code inversion engine: optimise N codes and their channel importances per image.

For a batch of B observed images ``y`` ``[B, 3, r, r]`` in [-1, 1] (r = the degradation's observed size),
the engine keeps, per image, N codes ``[B, N, *code_shape]`` and importances α ``[B, N, C]``. Each step
renders all B·N codes through the generator's lower part in one pass, composes the feature maps per
image (:func:`mgan_cli.composition.compose`), renders the upper part, applies the task's degradation A
and minimises ``Σ_b L(A(x̂_b), y_b)``. Images never interact: each one's loss depends only on its own
parameters, and the optimisers (Adam, SGD) are element-wise, so a batch gives the same result as
running the images one by one. The generator's weights never receive gradients.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from mgan_cli.composition import compose, initial_alphas
from mgan_cli.degradations import Degradation
from mgan_cli.errors import ConfigurationError
from mgan_cli.generators.base import Generator
from mgan_cli.losses import ReconstructionLoss

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class InversionSettings:
    """Everything the optimisation needs besides the data (one-to-one with a preset's ``inversion`` block).

    codes: N, the number of latent codes per image. layer: ℓ, the composing layer (from 1).
    space: the latent space codes live in (``z`` for DCGAN/PGGAN; ``z``/``w``/``w+`` for StyleGANs).
    composition: ``sum`` or ``mean`` (see :mod:`mgan_cli.composition`).
    iterations, optimizer (``adam``/``sgd``), lr: the optimisation. schedule: ``constant`` or ``cosine``
    (decay to 0 over the run after a linear warm-up over ``warmup`` × iterations steps).
    alpha_lr: learning rate of the importances α; ``None`` (default) means ``lr / codes``, so that with
    Adam, whose steps are about ``lr`` in size whatever the gradient's scale, α moves by amounts relative
    to its 1/N starting value (the codes, ~N(0, 1), move by ``lr``). The reference uses one rate for both.
    """

    codes: int = 20
    layer: int = 2
    space: str = "z"
    composition: str = "sum"
    iterations: int = 500
    optimizer: str = "adam"
    lr: float = 0.05
    schedule: str = "cosine"
    warmup: float = 0.0
    alpha_lr: float | None = None

    def __post_init__(self) -> None:
        if self.codes < 1:
            raise ConfigurationError(f"--codes must be at least 1, got {self.codes}")
        if self.iterations < 0:
            raise ConfigurationError(f"--iterations must be non-negative, got {self.iterations}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigurationError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ConfigurationError(f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if self.lr <= 0:
            raise ConfigurationError(f"--lr must be positive, got {self.lr}")
        if self.alpha_lr is not None and self.alpha_lr <= 0:
            raise ConfigurationError(f"alpha_lr must be positive, got {self.alpha_lr}")
        if not 0 <= self.warmup < 1:
            raise ConfigurationError(f"warmup is a fraction of the iterations in [0, 1), got {self.warmup}")


def lr_factor(step: int, total: int, schedule: str, warmup: float) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based) of ``total``.

    >>> lr_factor(0, 100, "constant", 0.0), lr_factor(50, 100, "cosine", 0.0)
    (1.0, 0.5)
    """
    if total <= 0:
        return 1.0
    warm_steps = int(warmup * total)
    ramp = min(1.0, (step + 1) / warm_steps) if warm_steps else 1.0
    if schedule == "constant":
        return ramp
    return ramp * 0.5 * (1.0 + math.cos(math.pi * step / total))


@dataclass
class InversionResult:
    """Per image: the restored x̂ ``[B, 3, R, R]`` (unclamped, ~[-1, 1]), the final loss ``[B]``, the
    optimised codes ``[B, N, *code_shape]``, importances ``[B, N, C]`` and upper latent (or ``None``)."""

    images: torch.Tensor
    losses: torch.Tensor
    codes: torch.Tensor
    alphas: torch.Tensor
    upper_latent: torch.Tensor | None


#: ``progress(step, losses)`` is called every few steps with the steps done and the per-image losses.
ProgressCallback = Callable[[int, torch.Tensor], None]


class MultiCodeModel(torch.nn.Module):
    """Renders B images from their N codes each: lower part (all B·N codes at once), compose, upper part."""

    def __init__(self, generator: Generator, layer: int, space: str, composition: str) -> None:
        super().__init__()
        self.lower, self.upper = generator.split(layer, space)
        self.composition = composition

    def forward(self, codes: torch.Tensor, alphas: torch.Tensor,
                upper_latent: torch.Tensor | None = None) -> torch.Tensor:
        batch, count = codes.shape[:2]
        features = self.lower(codes.flatten(0, 1))
        features = features.unflatten(0, (batch, count))
        return self.upper(compose(features, alphas, self.composition), upper_latent)


def initial_state(generator: Generator, settings: InversionSettings, seeds: Sequence[int],
                  device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Seeded starting codes, α = 1/N and upper latents; image b's values depend only on ``seeds[b]``."""
    channels = generator.layer(settings.layer).shape[0]
    codes, uppers = [], []
    for seed in seeds:
        rng = torch.Generator().manual_seed(int(seed))
        codes.append(generator.sample_codes(settings.codes, rng, settings.space))
        uppers.append(generator.initial_upper_latent(settings.layer, 1, rng))
    code_tensor = torch.stack(codes).to(device)
    alphas = initial_alphas(len(seeds), settings.codes, channels, device)
    upper = torch.cat(uppers).to(device) if uppers and uppers[0] is not None else None
    return code_tensor, alphas, upper


def invert(
    generator: Generator,
    observed: torch.Tensor,
    degradation: Degradation,
    loss: ReconstructionLoss,
    settings: InversionSettings,
    seeds: Sequence[int],
    *,
    mask: torch.Tensor | None = None,
    progress: ProgressCallback | None = None,
    progress_every: int = 10,
) -> InversionResult:
    """Restore ``observed`` ``[B, 3, r, r]`` in [-1, 1] with the multi-code prior (see the module docstring).

    ``mask`` ``[B, 1, R, R]`` (1 = missing) is passed to the degradation; ``seeds`` (one per image)
    make the initial codes reproducible and independent of how images are batched.
    """
    if len(seeds) != observed.shape[0]:
        raise ValueError(f"need one seed per image: {len(seeds)} seeds for {observed.shape[0]} images")
    device = observed.device
    model = MultiCodeModel(generator, settings.layer, settings.space, settings.composition)
    codes, alphas, upper = initial_state(generator, settings, seeds, device)
    alpha_lr = settings.alpha_lr if settings.alpha_lr is not None else settings.lr / settings.codes
    groups = [{"params": [codes.requires_grad_()]}, {"params": [alphas.requires_grad_()], "lr": alpha_lr}]
    if upper is not None:
        groups.append({"params": [upper.requires_grad_()]})
    optimizer_class = torch.optim.Adam if settings.optimizer == "adam" else torch.optim.SGD
    optimizer: torch.optim.Optimizer = optimizer_class(groups, lr=settings.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, settings.iterations, settings.schedule, settings.warmup)
    )
    target_features = loss.prepare(observed)
    per_image = torch.full((observed.shape[0],), float("nan"), device=device)
    for step in range(settings.iterations):
        images = model(codes, alphas, upper)
        per_image = loss(degradation(images, mask), observed, target_features)
        optimizer.zero_grad(set_to_none=True)
        per_image.sum().backward()
        optimizer.step()
        scheduler.step()
        done = step + 1
        if progress is not None and (done % progress_every == 0 or done == settings.iterations):
            progress(done, per_image.detach())
    with torch.no_grad():
        images = model(codes, alphas, upper)
        final = loss(degradation(images, mask), observed, target_features)
    return InversionResult(images=images, losses=final, codes=codes.detach(), alphas=alphas.detach(),
                           upper_latent=None if upper is None else upper.detach())
