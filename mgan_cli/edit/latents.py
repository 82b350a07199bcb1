"""One image's inversion on disk: ``OUT/latents/<stem>.safetensors`` (``--save-latents``).

Tensors: ``codes`` ``[N, *code_shape]``, ``alphas`` ``[N, C]`` and, for StyleGANs, ``upper_latent``
``[L - ℓ, w_dim]``, all float32 exactly as optimised. Metadata (strings): ``format`` (``mgan-latents/1``),
``generator`` (registry or imported name), ``generator_sha256`` (checksum of the weights used; empty if
unknown), ``layer``, ``space``, ``composition``. When a tuned generator (``--tune-generator``) rendered the
image, its tuned parameters are stored too, as ``tuned/<parameter name>`` (the whole generator's size for
``--tune-layers all``). :func:`load` refuses
latents made with another generator, so ``mgan edit --from-latents`` can never render codes through a
generator whose latent space they do not belong to.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes
from torch import Tensor

from mgan_cli.core.composition import COMPOSITIONS
from mgan_cli.core.engine import LATENT_SPACES
from mgan_cli.core.inversion import Inversion
from mgan_cli.errors import ConfigurationError, ImageInputError
from mgan_cli.generators.base import Generator
from mgan_cli.utils.atomic import write_atomic

FORMAT = "mgan-latents/1"
SUFFIX = ".safetensors"


@dataclass(frozen=True)
class SavedLatents:
    """An inversion read back, with the identity of the generator that made it."""

    inversion: Inversion
    generator: str
    generator_sha256: str | None
    path: Path
    tuned: dict[str, Tensor] | None = None


def latents_path(output_dir: Path, stem: str) -> Path:
    return output_dir / "latents" / f"{stem}{SUFFIX}"


def save(path: Path, inversion: Inversion, generator: str, generator_sha256: str | None,
         tuned: dict[str, Tensor] | None = None) -> None:
    """Write ``inversion`` (and ``tuned`` parameters) to ``path`` atomically (:mod:`mgan_cli.utils.atomic`); its
    folder must exist (:func:`mgan_cli.utils.atomic.make_folder`)."""
    tensors = {"codes": inversion.codes, "alphas": inversion.alphas}
    if inversion.upper_latent is not None:
        tensors["upper_latent"] = inversion.upper_latent
    tensors.update({f"tuned/{name}": value for name, value in (tuned or {}).items()})
    tensors = {k: v.detach().float().cpu().contiguous() for k, v in tensors.items()}
    metadata = {"format": FORMAT, "generator": generator, "generator_sha256": generator_sha256 or "",
                "layer": str(inversion.layer), "space": inversion.space, "composition": inversion.composition}
    write_atomic(path, safetensors_bytes(tensors, metadata=metadata))


def load(path: Path, generator: str | None = None, generator_sha256: str | None = None) -> SavedLatents:
    """Read ``path``; with ``generator`` (and its sha256, when both are known), refuse latents of another one."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (safe_open has no iter)
    except (SafetensorError, OSError) as exc:
        raise ImageInputError(f"{path}: not an mgan latents file ({exc})") from None
    if metadata.get("format") != FORMAT or not {"codes", "alphas"} <= set(tensors):
        raise ImageInputError(f"{path}: not an mgan latents file (format {metadata.get('format')!r})")
    _check_contents(path, metadata, tensors)
    made_with, made_sha = metadata.get("generator", ""), metadata.get("generator_sha256") or None
    if generator is not None and made_with != generator:
        raise ConfigurationError(f"{path} was inverted with {made_with}, not {generator}: codes only mean something "
                                 f"in their own generator (use --generator {made_with})")
    if generator_sha256 and made_sha and generator_sha256 != made_sha:
        raise ConfigurationError(f"{path} was inverted with {made_with} weights {made_sha[:12]}…, but this "
                                 f"{generator} has {generator_sha256[:12]}…: a different file under the same name")
    inversion = Inversion(tensors["codes"], tensors["alphas"], tensors.get("upper_latent"),
                          int(metadata["layer"]), metadata["space"], metadata.get("composition", "sum"))
    tuned = {k.removeprefix("tuned/"): v for k, v in tensors.items() if k.startswith("tuned/")}
    return SavedLatents(inversion, made_with, made_sha, path, tuned or None)


def _check_contents(path: Path, metadata: dict[str, str], tensors: dict[str, Tensor]) -> None:
    """What :func:`save` writes, and nothing else: a layer number, a known space and composition, float32
    finite tensors, ``codes`` ``[N, ...]`` with N ≥ 1, ``alphas`` ``[N, C]``, ``upper_latent`` 2-D. A file
    that breaks this is refused alone (:class:`ImageInputError`), before anything is rendered."""
    def bad(what: str) -> ImageInputError:
        return ImageInputError(f"{path}: not a usable mgan latents file: {what}")

    layer = metadata.get("layer", "")
    if not (layer.isascii() and layer.isdigit() and 1 <= int(layer) <= 1024):
        raise bad(f"layer {layer!r} is not a layer number")
    if metadata.get("space") not in LATENT_SPACES:
        raise bad(f"space {metadata.get('space')!r} is not one of {', '.join(LATENT_SPACES)}")
    if metadata.get("composition", "sum") not in COMPOSITIONS:
        raise bad(f"composition {metadata.get('composition')!r} is not one of {', '.join(COMPOSITIONS)}")
    for name, value in tensors.items():
        if value.dtype != torch.float32:
            raise bad(f"{name} is {value.dtype}, not float32")
        if not bool(torch.isfinite(value).all()):
            raise bad(f"{name} has NaN or infinite values")
    codes, alphas, upper = tensors["codes"], tensors["alphas"], tensors.get("upper_latent")
    if codes.dim() < 2 or codes.shape[0] < 1 or codes.numel() == 0:
        raise bad(f"codes {list(codes.shape)} is not [N, ...] with N ≥ 1")
    if alphas.dim() != 2 or alphas.shape[0] != codes.shape[0] or alphas.shape[1] < 1:
        raise bad(f"alphas {list(alphas.shape)} is not [N, C] for {codes.shape[0]} codes")
    if upper is not None and upper.dim() != 2:
        raise bad(f"upper_latent {list(upper.shape)} is not [rows, w_dim]")


def check_fits(saved: SavedLatents, generator: Generator) -> None:
    """Refuse (:class:`ImageInputError`, this file only) latents whose shapes do not fit ``generator``: the
    codes' shape in their space, one importance per channel of the composing layer, the upper latent's shape
    and every tuned parameter's name and shape."""
    inversion, path = saved.inversion, saved.path

    def bad(what: str) -> ImageInputError:
        return ImageInputError(f"{path}: does not fit {saved.generator}: {what}")

    if inversion.space not in generator.latent_spaces:
        raise bad(f"no latent space {inversion.space!r}")
    layers = generator.layers()
    if not 1 <= inversion.layer <= len(layers):
        raise bad(f"layer {inversion.layer} is out of range 1..{len(layers)}")
    code_shape = tuple(generator.code_shape(inversion.space))
    if tuple(inversion.codes.shape[1:]) != code_shape:
        raise bad(f"codes {list(inversion.codes.shape)} are not [N, {', '.join(map(str, code_shape))}]")
    channels = layers[inversion.layer - 1].shape[0]
    if inversion.alphas.shape[1] != channels:
        raise bad(f"alphas {list(inversion.alphas.shape)} are not [N, {channels}] (layer {inversion.layer})")
    upper_shape = generator.upper_latent_shape(inversion.layer)
    got = None if inversion.upper_latent is None else tuple(inversion.upper_latent.shape)
    if got != (None if upper_shape is None else tuple(upper_shape)):
        raise bad(f"upper_latent {got} is not {upper_shape}")
    own = dict(generator.named_parameters())
    for name, value in (saved.tuned or {}).items():
        if name not in own or tuple(own[name].shape) != tuple(value.shape):
            raise bad(f"tuned parameter {name!r} {list(value.shape)} is not one of its parameters")
