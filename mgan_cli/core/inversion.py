"""One image's multi-code inversion as a value: what the engine found, what latents files hold, what edits move.

Tensors: ``codes`` ``[N, *code_shape]`` (in latent space ``space``), ``alphas`` (the channel importances)
``[N, C]`` at the composing layer ``layer`` (from 1), ``upper_latent`` ``[L - ℓ, w_dim]`` for StyleGANs (the
W+ rows the layers above ℓ read), else ``None``. ``composition`` is ``sum`` or ``mean``
(:mod:`mgan_cli.core.composition`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Inversion:
    """One image's inversion (see the module docstring for shapes) and how it was rendered."""

    codes: torch.Tensor
    alphas: torch.Tensor
    upper_latent: torch.Tensor | None
    layer: int
    space: str
    composition: str = "sum"

    def to(self, device: torch.device | str) -> Inversion:
        """The same inversion with its tensors on ``device``."""
        upper = None if self.upper_latent is None else self.upper_latent.to(device)
        return Inversion(self.codes.to(device), self.alphas.to(device), upper, self.layer, self.space,
                         self.composition)
