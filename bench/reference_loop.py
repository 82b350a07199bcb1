"""A re-implementation of the reference implementation's optimisation loop, for benchmarking against mgan.

genforce/mganprior runs multi-code inversion (``inversion/inversion_methods.py:GradientDescent`` driving
``derivable_models/derivable_generator.py:PGGAN_multi_z``) like this, and so does :class:`ReferenceLoop`:

* one image at a time (the scripts call ``invert(..., batch_size=1)``);
* N codes z ``[1, N, 512]`` ~ N(0, I) and importances α ``[1, N, C]`` = 1/N;
* every step renders the N codes **one by one** through the lower part in a Python loop, multiplies each
  feature map by its α channel-wise, adds them with Python's ``sum`` and divides by N, then renders the
  upper part (no batching across codes, no fused composition);
* loss = MSE + λ · 0.001 · L1(VGG16 ``features[:16]``) with both images resized (nearest) to the
  perceptual resolution; the *target's* VGG features are recomputed every step (the reference's
  ``VGGLoss.forward`` embeds ``gt`` on each call). The loss itself is mgan's
  :class:`~mgan_cli.core.losses.ReconstructionLoss` (called without cached target features), so both sides
  compare the same mathematics;
* ``torch.optim.SGD([z, α], lr)`` — lr 1.0, no momentum, no schedule, one rate for codes and α;
* fp32, eager, no channels-last, no compilation.

The shipped script also appended ``copy.deepcopy`` of the latents to a ``history`` list after every step
(for its optimisation video; ``--video`` defaults to true): ``history=True`` does the same so that its cost
can be reported separately ("reference as shipped"); by default the loop keeps no history.

Two liberties, so that both sides start from identical inputs: the codes are drawn from a seeded
``torch.Generator`` (the reference draws unseeded ``torch.randn``), exactly as mgan's
:func:`~mgan_cli.core.engine.initial_state` draws them (``generator.sample_codes``); and generators whose
upper part needs a latent (StyleGAN2's w+ tail, which the reference never supported) get it from
``generator.initial_upper_latent`` and optimise it with the same SGD.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from mgan_cli.core.degradations import Degradation, Identity
from mgan_cli.core.losses import ReconstructionLoss
from mgan_cli.generators.base import Generator


@dataclass
class ReferenceResult:
    """The restored image ``[1, 3, R, R]`` (unclamped), final loss ``[1]``, codes ``[1, N, *code_shape]``,
    importances ``[1, N, C]``, upper latent (or ``None``) and the history (empty unless ``history=True``)."""

    image: torch.Tensor
    loss: torch.Tensor
    codes: torch.Tensor
    alphas: torch.Tensor
    upper_latent: torch.Tensor | None
    history: list[list[torch.Tensor]] = field(default_factory=list)


class ReferenceLoop:
    """The reference's per-image loop on one observed image ``[1, 3, r, r]`` in [-1, 1] (see module docstring)."""

    def __init__(self, generator: Generator, observed: torch.Tensor, loss: ReconstructionLoss, *, layer: int,
                 codes: int = 20, space: str = "z", lr: float = 1.0, seed: int = 0,
                 degradation: Degradation | None = None, history: bool = False) -> None:
        if observed.shape[0] != 1:
            raise ValueError(f"the reference loop inverts one image at a time, got a batch of {observed.shape[0]}")
        device = observed.device
        self.observed, self.loss, self.count = observed, loss, codes
        self.degradation = degradation or Identity()
        self.lower, self.upper = generator.split(layer, space)
        channels = generator.layer(layer).shape[0]
        rng = torch.Generator().manual_seed(int(seed))
        self.codes = generator.sample_codes(codes, rng, space)[None].to(device).requires_grad_()
        self.alphas = torch.full((1, codes, channels), 1.0 / codes, device=device).requires_grad_()
        upper = generator.initial_upper_latent(layer, 1, rng)
        self.upper_latent = None if upper is None else upper.to(device).requires_grad_()
        params = [self.codes, self.alphas] + ([] if self.upper_latent is None else [self.upper_latent])
        self.optimizer = torch.optim.SGD(params, lr=lr)
        self.keep_history = history
        self.history: list[list[torch.Tensor]] = []

    def render(self) -> torch.Tensor:
        """The current estimate ``[1, 3, R, R]``: N lower passes in a Python loop, α-weighted sum / N, upper."""
        weighted = []
        for j in range(self.count):
            feature = self.lower(self.codes[:, j])
            weighted.append(feature * self.alphas[:, j].view(1, -1, 1, 1))
        fused = sum(weighted) / self.count
        return self.upper(fused, self.upper_latent)

    def step(self) -> torch.Tensor:
        """One optimisation step; returns the loss ``[1]`` of the estimate before the update."""
        estimate = self.render()
        self.optimizer.zero_grad()
        loss = self.loss(self.degradation(estimate), self.observed)  # target features recomputed, as the reference
        loss.sum().backward()
        self.optimizer.step()
        if self.keep_history:
            latents = [self.codes, self.alphas] + ([] if self.upper_latent is None else [self.upper_latent])
            self.history.append(copy.deepcopy(latents))
        return loss.detach()

    def run(self, iterations: int, on_step: Callable[[int, torch.Tensor], None] | None = None) -> ReferenceResult:
        """``iterations`` steps (``on_step(done, loss)`` after each), then the final render and its loss."""
        for done in range(1, iterations + 1):
            loss = self.step()
            if on_step is not None:
                on_step(done, loss)
        with torch.no_grad():
            image = self.render()
            final = self.loss(self.degradation(image), self.observed)
        upper = None if self.upper_latent is None else self.upper_latent.detach().clone()
        return ReferenceResult(image, final, self.codes.detach().clone(), self.alphas.detach().clone(), upper,
                               self.history)


def reference_invert(generator: Generator, observed: torch.Tensor, loss: ReconstructionLoss, *, layer: int,
                     codes: int = 20, iterations: int = 3000, space: str = "z", lr: float = 1.0, seed: int = 0,
                     degradation: Degradation | None = None, history: bool = False) -> ReferenceResult:
    """Invert one image ``[1, 3, r, r]`` with the reference's loop (see the module docstring)."""
    loop = ReferenceLoop(generator, observed, loss, layer=layer, codes=codes, space=space, lr=lr, seed=seed,
                         degradation=degradation, history=history)
    return loop.run(iterations)
