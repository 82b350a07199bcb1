"""Semantic directions in a generator's latent space: SeFa (closed form) and GANSpace (PCA).

A direction is a unit vector ``d`` ``[D]`` in the space the generator's codes are edited in: ``z`` for
generators that only have z (DCGAN, PGGAN), ``w`` for mapping + synthesis generators (StyleGAN family).
A set of K directions is ``vectors [K, D]``, orthonormal rows, most important first.

* **SeFa** (Shen & Zhou, CVPR 2021): the weights that act on the code, ``A [units, D]`` (the first layer's
  weight for DCGAN/PGGAN: every output unit of the 4×4 transposed conv is one row; for StyleGANs the style
  affines of the chosen w+ rows, stacked), each row scaled to unit norm; the directions are the eigenvectors
  of ``AᵀA`` with the largest eigenvalues (the directions that move the first layer's response the most).
* **GANSpace** (Härkönen et al., NeurIPS 2020): PCA of sampled codes in ``w`` (the mapping makes w
  anisotropic; PCA of z ~ N(0, I) would be meaningless), or of the features at a layer, mapped back to
  the code space by least squares (``code ≈ coords · U``); feature-PCA directions are then made
  orthonormal in order (Gram–Schmidt, so direction 0 keeps its orientation exactly).

Signs are fixed so that each vector's largest-magnitude entry is positive (eigenvectors have no sign).
Which weights act on the code is registered per generator class (:func:`register_code_weights`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from mgan_cli.errors import ConfigurationError, DirectionCountError
from mgan_cli.generators.base import Generator
from mgan_cli.generators.dcgan import DCGAN
from mgan_cli.generators.pggan import PGGAN
from mgan_cli.generators.style_base import StyleFamilyGenerator
from mgan_cli.generators.stylegan import StyleGAN
from mgan_cli.generators.stylegan2 import StyleGAN2
from mgan_cli.generators.stylegan3 import StyleGAN3

METHODS = ("sefa", "pca")

#: ``fn(generator, rows) -> A [units, D]``: the weights acting on the code (``rows``: w+ rows, style families)
CodeWeights = Callable[[Generator, "range | None"], torch.Tensor]
_CODE_WEIGHTS: dict[type, CodeWeights] = {}


def register_code_weights(cls: type) -> Callable[[CodeWeights], CodeWeights]:
    """Register how SeFa finds the weights acting on the code of generators of class ``cls``."""

    def add(fn: CodeWeights) -> CodeWeights:
        _CODE_WEIGHTS[cls] = fn
        return fn

    return add


@dataclass(frozen=True)
class Directions:
    """K orthonormal directions ``vectors [K, D]`` in latent space ``space`` (``z`` or ``w``), with the
    eigenvalue (SeFa) or explained variance (PCA) of each, ``values [K]``."""

    vectors: torch.Tensor
    values: torch.Tensor
    space: str
    method: str
    layer: int | None = None


def edit_space(generator: Generator) -> str:
    """The space directions of ``generator`` live in: ``w`` for the StyleGAN family, else ``z``."""
    return "w" if "w" in generator.latent_spaces else "z"


def code_weights(generator: Generator, rows: range | None = None) -> torch.Tensor:
    """``A [units, D]``, the weights that act on the code (see the module docstring)."""
    for cls in type(generator).__mro__:
        if cls in _CODE_WEIGHTS:
            return _CODE_WEIGHTS[cls](generator, rows).detach().float().cpu()
    raise ConfigurationError(f"SeFa does not know which weights act on the code of {type(generator).__name__}")


def _no_rows(generator: Generator, rows: range | None) -> None:
    if rows is not None:
        raise ConfigurationError(f"{type(generator).__name__} codes are z: style rows apply only to StyleGANs")


@register_code_weights(DCGAN)
def _dcgan_weights(generator: Generator, rows: range | None) -> torch.Tensor:
    _no_rows(generator, rows)
    assert isinstance(generator, DCGAN)
    first = generator.blocks[0][0]  # ConvTranspose2d(z, C, 4, 1, 0): weight [z, C, 4, 4]
    if isinstance(first, torch.nn.ConvTranspose2d):
        return first.weight.flatten(1).T  # one row per output unit (channel, y, x)
    return first.weight.flatten(1)


@register_code_weights(PGGAN)
def _pggan_weights(generator: Generator, rows: range | None) -> torch.Tensor:
    _no_rows(generator, rows)
    assert isinstance(generator, PGGAN)
    conv = generator.units()[0].conv  # Conv2d(z, C, 4, padding=3) on z at 1×1: weight [C, z, 4, 4]
    return conv.weight.permute(0, 2, 3, 1).flatten(0, 2)


def _style_rows(generator: StyleFamilyGenerator, rows: range | None) -> range:
    rows = rows if rows is not None else range(generator.num_layers)
    if not rows or rows.start < 0 or rows.stop > generator.num_layers:
        raise ConfigurationError(f"style rows {rows.start}-{rows.stop - 1} out of range 0-{generator.num_layers - 1}")
    return rows


@register_code_weights(StyleGAN)
def _stylegan_weights(generator: Generator, rows: range | None) -> torch.Tensor:
    assert isinstance(generator, StyleGAN)
    affines = [getattr(generator.synthesis, f"layer{r}").epilogue.style_mod.dense.fc.weight
               for r in _style_rows(generator, rows)]
    return torch.cat(affines)  # each [2C, w]


@register_code_weights(StyleGAN2)
def _stylegan2_weights(generator: Generator, rows: range | None) -> torch.Tensor:
    assert isinstance(generator, StyleGAN2)
    synthesis = generator.synthesis
    affines = []
    for r in _style_rows(generator, rows):  # row r: conv layer{r} (r ≤ L-2) and, for odd r, toRGB output{r//2}
        if r <= generator.num_layers - 2:
            affines.append(getattr(synthesis, f"layer{r}").style.fc.weight)
        if r % 2 == 1:
            affines.append(getattr(synthesis, f"output{r // 2}").style.fc.weight)
    return torch.cat(affines)  # each [in, w]


@register_code_weights(StyleGAN3)
def _stylegan3_weights(generator: Generator, rows: range | None) -> torch.Tensor:
    assert isinstance(generator, StyleGAN3)
    synthesis = generator.synthesis
    # row 0: the Fourier input's transform affine [4, w]; row r ≥ 1: layer L{r-1}'s style affine [in, w]
    modules = [synthesis.input] + [getattr(synthesis, name) for name in synthesis.layer_names]
    return torch.cat([modules[r].affine.weight for r in _style_rows(generator, rows)])


def _orient(vectors: torch.Tensor) -> torch.Tensor:
    """Flip each row so that its largest-magnitude entry is positive."""
    pivot = vectors.gather(1, vectors.abs().argmax(dim=1, keepdim=True))
    return vectors * torch.where(pivot < 0, -1.0, 1.0).to(vectors.dtype)


def _check_count(count: int, dim: int) -> None:
    if not 1 <= count <= dim:
        raise DirectionCountError(count, dim)


def sefa(generator: Generator, count: int = 10, rows: range | None = None) -> Directions:
    """The ``count`` SeFa directions of ``generator`` (see the module docstring); ``rows`` limits a
    StyleGAN's affines to those w+ rows (default all)."""
    weights = code_weights(generator, rows).double()
    _check_count(count, weights.shape[1])
    weights = weights / weights.norm(dim=1, keepdim=True).clamp_min(1e-12)
    values, vectors = torch.linalg.eigh(weights.T @ weights)  # ascending
    order = values.argsort(descending=True)[:count]
    return Directions(_orient(vectors[:, order].T).float(), values[order].float(), edit_space(generator), "sefa")


@torch.no_grad()
def sample_codes(generator: Generator, count: int, seed: int = 0, batch: int = 256) -> torch.Tensor:
    """``count`` codes ``[count, D]`` in :func:`edit_space`: z ~ N(0, I), or w = mapping(z) (no truncation)."""
    rng = torch.Generator().manual_seed(seed)
    space = edit_space(generator)
    chunks = [generator.sample_codes(min(batch, count - i), rng, space) for i in range(0, count, batch)]
    return torch.cat(chunks).float().cpu()


def _principal(data: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PCA of rows of ``data [M, P]``: (components ``[count, P]``, variances ``[count]``, mean ``[P]``)."""
    mean = data.mean(dim=0)
    centred = data - mean
    if centred.shape[0] < centred.shape[1]:  # few samples of many features: eigenvectors of the Gram matrix
        values, left = torch.linalg.eigh(centred @ centred.T)
        order = values.argsort(descending=True)[:count]
        components = (centred.T @ left[:, order]).T / values[order].clamp_min(1e-30).sqrt()[:, None]
    else:
        values, right = torch.linalg.eigh(centred.T @ centred)
        order = values.argsort(descending=True)[:count]
        components = right[:, order].T
    return _orient(components), values[order] / (data.shape[0] - 1), mean


@torch.no_grad()
def pca(generator: Generator, count: int = 10, layer: int | None = None, samples: int = 2000,
        seed: int = 0) -> Directions:
    """GANSpace: the ``count`` principal directions of ``samples`` seeded codes in w (StyleGANs), or, with
    ``layer``, of the features at that layer, regressed back to the code space (see the module docstring).
    Generators with only z need ``layer`` (z ~ N(0, I) has no principal directions)."""
    space = edit_space(generator)
    codes = sample_codes(generator, samples, seed).double()
    _check_count(count, codes.shape[1])
    if layer is None:
        if space == "z":
            raise ConfigurationError(f"{type(generator).__name__} codes are z ~ N(0, I), whose PCA is meaningless: "
                                     "give --layer L to take the PCA of the features at layer L")
        components, variances, _ = _principal(codes, count)
        return Directions(components.float(), variances.float(), space, "pca")
    if count > samples:
        raise ConfigurationError(f"-n {count} needs at least as many samples, got {samples}")
    lower, _ = generator.split(layer, space)
    reference = next(iter(generator.parameters()))
    features = torch.cat([lower(chunk.to(reference.device, reference.dtype)).flatten(1).double().cpu()
                          for chunk in codes.split(256)])
    components, variances, mean = _principal(features, count)
    coordinates = (features - mean) @ components.T  # [M, K]
    regression = torch.linalg.lstsq(coordinates, codes - codes.mean(dim=0)).solution  # [K, D]
    basis, _ = torch.linalg.qr(regression.T)  # orthonormal, same span, in order
    agrees = (basis.T * regression).sum(dim=1, keepdim=True) >= 0
    basis = basis.T * torch.where(agrees, 1.0, -1.0).to(basis.dtype)  # keep each regressed orientation
    return Directions(basis.float(), variances.float(), space, "pca", layer)


def compute(generator: Generator, method: str, count: int = 10, layer: int | None = None,
            rows: range | None = None, seed: int = 0) -> Directions:
    """Directions by ``method`` (``sefa`` or ``pca``); ``layer`` applies to PCA, ``rows`` to SeFa."""
    if method == "sefa":
        if layer is not None:
            raise ConfigurationError("--layer applies to --method pca (SeFa factorises the weights on the code)")
        return sefa(generator, count, rows)
    if method == "pca":
        return pca(generator, count, layer, seed=seed)
    raise ConfigurationError(f"unknown direction method {method!r}; choose one of {', '.join(METHODS)}")
