"""Generator tuning (never touches the shared generator; fits better; ``upper`` keeps the layers below ℓ) and
saved latents (bit-for-bit round trip, refused for another generator)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from mgan_cli.core import tuning
from mgan_cli.core.degradations import Identity
from mgan_cli.core.engine import InversionSettings, MultiCodeModel, invert
from mgan_cli.core.inversion import Inversion
from mgan_cli.edit import latents
from mgan_cli.errors import ConfigurationError, ImageInputError
from mgan_cli.utils.imageio import to_tensor
from mgan_cli.weights.loading import load_generator
from mgan_cli.weights.store import default_store, sha256_of
from tests.helpers import celeba_face


def _weights_digest(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def face_inversion(shared_dir):
    """A real CelebA face inverted briefly with the embedded DCGAN (pixel loss only, to keep it fast)."""
    generator = load_generator("dcgan64-digiface")
    photo = sorted((shared_dir / "data" / "celeba64").glob("*.jpg"))[10]
    observed = to_tensor(celeba_face(photo))[None]
    settings = InversionSettings(codes=4, layer=2, iterations=40, lr=0.1)
    from mgan_cli.core.losses import ReconstructionLoss

    loss = ReconstructionLoss(0.0, 16, None, "l1")
    result = invert(generator, observed, Identity(), loss, settings, [7])
    inversion = Inversion(result.codes[0], result.alphas[0], None, settings.layer, "z")
    return generator, observed[0], loss, inversion, float(result.losses[0])


def test_tuning_fits_better_and_never_changes_the_shared_generator(face_inversion) -> None:
    generator, observed, loss, inversion, before = face_inversion
    file_sha = sha256_of(default_store().path("dcgan64-digiface"))
    digest = _weights_digest(generator)
    settings = tuning.TuningSettings(steps=8, lr=1e-3)
    tuned = tuning.tune(generator, inversion, observed, Identity(), loss, settings, seed=1)
    assert _weights_digest(generator) == digest
    assert sha256_of(default_store().path("dcgan64-digiface")) == file_sha
    assert all(not p.requires_grad for p in generator.parameters())
    assert _weights_digest(tuned) != digest
    with torch.no_grad():
        image = MultiCodeModel(tuned, inversion.layer, "z", "sum")(inversion.codes[None], inversion.alphas[None])
        after = float(loss(image, observed[None]))
    assert after < 0.8 * before, (before, after)
    again = tuning.tune(generator, inversion, observed, Identity(), loss, settings, seed=1)
    assert _weights_digest(again) == _weights_digest(tuned)  # reproducible with its seed


def test_upper_tuning_keeps_the_layers_below_the_split(face_inversion) -> None:
    generator, observed, loss, inversion, _ = face_inversion
    names = tuning.upper_parameter_names(generator, inversion)
    assert names and all(not n.startswith(("blocks.0.", "blocks.1.")) for n in names)
    assert any(n.startswith("blocks.2.") for n in names)
    tuned = tuning.tune(generator, inversion, observed, Identity(), loss,
                        tuning.TuningSettings(steps=3, layers="upper", lr=1e-3), seed=0)
    original, changed = dict(generator.named_parameters()), dict(tuned.named_parameters())
    for name, value in changed.items():
        assert torch.equal(value, original[name]) == (name not in names), name


@pytest.mark.parametrize("layers", ["all", "upper"])
def test_the_locality_term_keeps_nearby_codes_rendering_as_the_original_generator(face_inversion, layers) -> None:
    """PTI's locality term, for both tuned parts: codes moved from the pivot (in directions tuning never saw)
    render closer to the untuned generator's renders with the term than without it."""
    generator, observed, loss, inversion, _ = face_inversion
    moves = torch.randn((3, *inversion.codes.shape[1:]), generator=torch.Generator().manual_seed(99))
    nearby = inversion.codes[None] + 3.0 * moves[:, None] / moves.flatten(1).norm(dim=1)[:, None, None]
    alphas = inversion.alphas[None].expand(3, *inversion.alphas.shape)

    def drift(weight: float) -> float:
        tuned = tuning.tune(generator, inversion, observed, Identity(), loss,
                            tuning.TuningSettings(steps=15, layers=layers, lr=1e-3, locality_weight=weight), seed=0)
        with torch.no_grad():
            renders = [MultiCodeModel(g, inversion.layer, "z", "sum")(nearby, alphas) for g in (tuned, generator)]
        return float((renders[0] - renders[1]).square().mean())

    kept, free = drift(1.0), drift(0.0)
    assert kept < 0.7 * free, (kept, free)


def test_latents_round_trip_bit_for_bit_and_refuse_other_generators(face_inversion, tmp_path: Path) -> None:
    generator, observed, loss, inversion, _ = face_inversion
    path = latents.latents_path(tmp_path, "face")
    path.parent.mkdir()
    latents.save(path, inversion, "dcgan64-digiface", "abc123")
    loaded = latents.load(path, "dcgan64-digiface", "abc123")
    assert loaded.generator == "dcgan64-digiface" and loaded.inversion.layer == 2 and loaded.inversion.space == "z"
    assert torch.equal(loaded.inversion.codes, inversion.codes)
    assert torch.equal(loaded.inversion.alphas, inversion.alphas)
    model = MultiCodeModel(generator, 2, "z", "sum")
    with torch.no_grad():
        assert torch.equal(model(loaded.inversion.codes[None], loaded.inversion.alphas[None]),
                           model(inversion.codes[None], inversion.alphas[None]))
    with pytest.raises(ConfigurationError, match="inverted with dcgan64-digiface, not dcgan32-celeba"):
        latents.load(path, "dcgan32-celeba")
    with pytest.raises(ConfigurationError, match="different file"):
        latents.load(path, "dcgan64-digiface", "def456")
    assert loaded.tuned is None
    tuned = tuning.tune(generator, inversion, observed, Identity(), loss, tuning.TuningSettings(steps=2, lr=1e-3), 0)
    latents.save(path, inversion, "dcgan64-digiface", "abc123", tuning.tuned_state(tuned))
    restored = tuning.apply_tuned_state(generator, latents.load(path).tuned or {})
    with torch.no_grad():
        assert torch.equal(MultiCodeModel(restored, 2, "z", "sum")(inversion.codes[None], inversion.alphas[None]),
                           MultiCodeModel(tuned, 2, "z", "sum")(inversion.codes[None], inversion.alphas[None]))
    (tmp_path / "bad.safetensors").write_bytes(b"not a file")
    with pytest.raises(ImageInputError):
        latents.load(tmp_path / "bad.safetensors")


def test_tuning_settings_are_checked() -> None:
    with pytest.raises(ConfigurationError):
        tuning.TuningSettings(steps=-1)
    with pytest.raises(ConfigurationError):
        tuning.TuningSettings(layers="lower")


def test_tuning_a_stylegan_in_w_renders_with_the_upper_latent_and_upper_keeps_the_mapping() -> None:
    """StyleGAN codes in W have an upper latent (the rows from ℓ up): tuning must render with it (a tuned copy
    that fits better with it), and ``upper`` must leave the mapping network and the layers below ℓ alone."""
    from mgan_cli.core.losses import ReconstructionLoss
    from mgan_cli.generators import ARCHITECTURES

    torch.manual_seed(4)
    generator = ARCHITECTURES.get("stylegan")(resolution=16, z_dim=24, w_dim=24, fmaps_base=128, fmaps_max=16,
                                              mapping_layers=2, truncation_psi=None, truncation_layers=None).freeze()
    target = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    settings = InversionSettings(codes=3, layer=3, space="w", iterations=20, lr=0.01)
    loss = ReconstructionLoss(0.0, 16, None, "l1")
    result = invert(generator, target, Identity(), loss, settings, [0])
    assert result.upper_latent is not None
    inversion = Inversion(result.codes[0], result.alphas[0], result.upper_latent[0], settings.layer, "w")
    digest = _weights_digest(generator)

    def error(model: torch.nn.Module) -> float:
        with torch.no_grad():
            image = MultiCodeModel(model, settings.layer, "w", "sum")(
                inversion.codes[None], inversion.alphas[None], inversion.upper_latent[None])
        return float((image - target).square().mean())

    for layers in ("all", "upper"):
        tuned = tuning.tune(generator, inversion, target[0], Identity(), loss,
                            tuning.TuningSettings(steps=20, layers=layers, lr=1e-2), seed=0)
        assert error(tuned) < 0.95 * error(generator), layers
    assert _weights_digest(generator) == digest
    names = tuning.upper_parameter_names(generator, inversion)
    original, changed = dict(generator.named_parameters()), dict(tuned.named_parameters())
    mapping = [name for name in original if name.startswith("mapping")]
    assert mapping and not any(name in names for name in mapping)
    for name, value in changed.items():
        assert torch.equal(value, original[name]) == (name not in names), name
