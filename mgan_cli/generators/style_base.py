"""What StyleGAN and StyleGAN2 share: truncation, the z / w / w+ latent spaces over mapping + synthesis, and
the upper latent (the w+ rows above the split layer)."""

from __future__ import annotations

import torch
from torch import nn

from mgan_cli.generators.base import Generator


def broadcast_w(w: torch.Tensor, num_layers: int) -> torch.Tensor:
    """w ``[M, w_dim]`` -> w+ ``[M, num_layers, w_dim]``, the same row on every layer."""
    return w.view(w.shape[0], 1, w.shape[-1]).repeat(1, num_layers, 1)


class Truncation(nn.Module):
    """``w [M, w_dim] or w+ [M, L, w_dim] -> w+``: broadcast, then ``w_avg + (w - w_avg)·coef`` per row.

    ``coef`` is ``psi`` on rows ``< cutoff`` and 1 elsewhere; ``psi`` or ``cutoff`` ``None`` disables it.
    ``w_avg`` is a buffer of the state dict; the coefficients are rebuilt from the arguments (genforce's
    converters drop ``truncation.truncation`` from the files users hold).
    """

    def __init__(self, num_layers: int, w_dim: int, psi: float | None, cutoff: int | None) -> None:
        super().__init__()
        self.num_layers, self.w_dim = num_layers, w_dim
        self.enabled = psi is not None and cutoff is not None
        coefs = torch.ones(1, num_layers, 1)
        if self.enabled:
            coefs[:, : int(cutoff or 0)] *= float(psi or 1.0)
        self.register_buffer("w_avg", torch.zeros(w_dim))
        self.register_buffer("truncation", coefs, persistent=False)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        if w.dim() == 2:
            w = broadcast_w(w, self.num_layers)
        if self.enabled:
            w_avg = self.w_avg.view(1, 1, self.w_dim)
            w = w_avg + (w - w_avg) * self.truncation
        return w


class StyleFamilyGenerator(Generator):
    """Latent spaces of a mapping + synthesis generator. Subclasses set ``mapping`` (z -> w), ``truncation``
    (:class:`Truncation`), ``synthesis`` (w+ ``[M, L, w_dim]`` -> image), ``num_layers`` (L) and ``w_dim``."""

    latent_spaces = ("z", "w", "w+")
    mapping: nn.Module
    truncation: Truncation
    synthesis: nn.Module
    num_layers: int
    w_dim: int

    def code_shape(self, space: str = "z") -> tuple[int, ...]:
        self._check_space(space)
        return {"z": (self.latent_size,), "w": (self.w_dim,), "w+": (self.num_layers, self.w_dim)}[space]

    def to_wplus(self, code: torch.Tensor, space: str = "z") -> torch.Tensor:
        """The w+ ``[M, L, w_dim]`` a code stands for: z → mapping + truncation; w → broadcast; w+ → itself."""
        self._check_space(space)
        if space == "z":
            return self.truncation(self.mapping(code))
        if space == "w":
            return broadcast_w(code, self.num_layers)
        return code

    def sample_codes(self, count: int, rng: torch.Generator, space: str = "z",
                     device: torch.device | str = "cpu") -> torch.Tensor:
        """z ~ N(0, I); for w / w+: the mapping of such z (no truncation), broadcast to every row for w+."""
        self._check_space(space)
        z = torch.randn((count, self.latent_size), generator=rng)
        if space == "z":
            return z.to(device)
        reference = self.truncation.w_avg
        with torch.no_grad():
            w = self.mapping(z.to(reference.device, reference.dtype))
        if space == "w+":
            w = broadcast_w(w, self.num_layers)
        return w.to(device)

    def upper_latent_shape(self, layer: int) -> tuple[int, ...] | None:
        """The w+ rows above ``layer``: ``(L - layer, w_dim)``."""
        self.layer(layer)
        return (self.num_layers - layer, self.w_dim)

    def initial_upper_latent(self, layer: int, count: int, rng: torch.Generator) -> torch.Tensor | None:
        """``w_avg`` broadcast to ``[count, L - layer, w_dim]`` (``rng`` unused: the start is deterministic)."""
        rows = self.num_layers - self.layer(layer).index
        return self.truncation.w_avg.detach().view(1, 1, -1).repeat(count, rows, 1)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return self.synthesis(self.to_wplus(code, "z"))

    def render(self, code: torch.Tensor, space: str = "z") -> torch.Tensor:
        """Render codes of any latent space (``forward`` renders z)."""
        return self.synthesis(self.to_wplus(code, space))
