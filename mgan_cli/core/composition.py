"""Multi-code composition at the split layer (the heart of mGANprior).

``compose(features [B, N, C, H, W], alphas [B, N, C]) -> [B, C, H, W]``: each of the N codes' feature
maps is scaled channel-wise by its adaptive channel importance α_n and the results are combined.

Two conventions:

* ``"sum"`` (mgan's default): F = Σ_n α_n ⊙ F_n, with α initialised to 1/N, so the composed map starts as
  the *mean* of the N feature maps and stays on the scale the layers above were trained on. That matters
  for generators whose upper part is scale-sensitive (DCGAN's batch norms use running statistics,
  StyleGAN's next layer adds noise and bias before normalising).
* ``"mean"`` (the reference implementation): F = (Σ_n α_n ⊙ F_n) / N, with α initialised to 1/N as well,
  so the composed map starts at mean/N. It only works there because PGGAN pixel-normalises the composed
  map right away; it is kept so the reference's settings reproduce exactly.
"""

from __future__ import annotations

import torch

from mgan_cli.errors import ConfigurationError
from mgan_cli.utils.shapes import check_shape

COMPOSITIONS = ("sum", "mean")


def compose(features: torch.Tensor, alphas: torch.Tensor, convention: str = "sum") -> torch.Tensor:
    """Combine per-code feature maps ``[B, N, C, H, W]`` with importances ``[B, N, C]`` into ``[B, C, H, W]``.

    >>> compose(torch.ones(2, 3, 4, 5, 5), torch.full((2, 3, 4), 1 / 3)).shape
    torch.Size([2, 4, 5, 5])
    """
    dims = check_shape(features, "B N C H W", "features")
    check_shape(alphas, "B N C", "alphas", B=dims["B"], N=dims["N"], C=dims["C"])
    composed = (features * alphas[..., None, None]).sum(dim=1)
    if convention == "sum":
        return composed
    if convention == "mean":
        return composed / features.shape[1]
    raise ConfigurationError(f"unknown composition {convention!r}; choose one of {', '.join(COMPOSITIONS)}")


def initial_alphas(batch: int, codes: int, channels: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """α initialised to 1/N for every code and channel (both conventions, as in the reference)."""
    return torch.full((batch, codes, channels), 1.0 / codes, device=device)
