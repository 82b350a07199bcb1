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

from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes
from torch import Tensor

from mgan_cli.edit.frames import Inversion
from mgan_cli.errors import ConfigurationError, ImageInputError
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
