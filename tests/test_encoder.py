"""The learned warm start (issue 21): an encoder trained on a generator's own samples, stored beside the
generator's sha256, read through safetensors only, and the initial codes it gives the engine.

All on the CPU with tiny random generators (seconds each): a 32×32 PGGAN (z only) and a 16×16 StyleGAN2 (w+).
"""

from __future__ import annotations

import json
import pickle
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from mgan_cli import Restorer
from mgan_cli.core.degradations import Downsample, Identity, Luma, Mask
from mgan_cli.core.engine import InversionSettings, invert
from mgan_cli.core.losses import ReconstructionLoss
from mgan_cli.encoder import Budget, TrainingSettings, encoder_initial_state, load_encoder, train_encoder
from mgan_cli.encoder import storage as encoder_storage
from mgan_cli.encoder.augment import encoder_input
from mgan_cli.encoder.storage import INFO_FILE, WEIGHTS_FILE, encoder_folder, read_encoder
from mgan_cli.errors import (
    ChecksumError,
    ConfigurationError,
    EncoderError,
    EncoderNotFoundError,
    ForeignEncoderError,
    UnknownFormatError,
)
from mgan_cli.generators import ARCHITECTURES
from mgan_cli.weights.store import sha256_of
from tests.helpers import tiny_generator

SHA_A = "a" * 64
SHA_B = "b" * 64
TINY = TrainingSettings(batch_size=32, lr=4e-3, width=8, max_width=32, hidden=64)  # cosine decay: half the mean rate
#: steps of the short training (about 20 s on a loaded 2-core CPU)
SHORT = 300


def _minutes() -> float:
    return 7.0


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One CPU thread: the short trainings take the same float path on every machine (and run faster on a shared
    2-core machine than with threads contending)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def pggan():
    return tiny_generator()


@pytest.fixture(scope="module")
def trained(pggan, tmp_path_factory):
    """The tiny PGGAN's encoder after a short training, stored under a temporary cache."""
    home = tmp_path_factory.mktemp("encoder-home")
    train_encoder(pggan, "tiny-pggan", SHA_A, Budget(steps=SHORT), TINY, home=home)
    return read_encoder(encoder_folder(SHA_A, home), "tiny-pggan", SHA_A, _minutes), home


def _held_out(generator, count: int, seed: int = 987654) -> tuple[torch.Tensor, torch.Tensor]:
    z = torch.randn(count, generator.latent_size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return z, generator(z)


def test_short_training_predicts_in_domain_codes_better_than_chance(pggan, trained):
    """Margins on 128 held-out samples: the best constant guess of z ~ N(0, I) (zero) has a latent MSE of 1 and a
    cosine of 0 with the truth; a random guess renders images of some error E. After 300 steps the encoder must
    reach a latent MSE ≤ 0.7, a mean cosine ≥ 0.5, and an image error ≤ 0.5 E."""
    loaded, _ = trained
    z, images = _held_out(pggan, 128)
    guess = torch.randn(z.shape, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        predicted = loaded.encoder(encoder_input(images, None, 32))
        chance_error = (pggan(guess) - images).square().mean()
        encoder_error = (pggan(predicted) - images).square().mean()
    assert (predicted - z).square().mean() <= 0.7
    assert torch.nn.functional.cosine_similarity(predicted, z).mean() >= 0.5
    assert encoder_error <= 0.5 * chance_error, (float(encoder_error), float(chance_error))


TASKS = {"identity": (Identity(), False), "luma": (Luma(), False), "downsample": (Downsample(4), False),
         "mask": (Mask(), True)}


@pytest.mark.parametrize("task", sorted(TASKS))
def test_encoder_start_has_lower_loss_than_random_start_for_every_image(pggan, trained, task):
    """In-domain targets through each task's degradation, 0 steps: every image starts lower with the encoder.

    Inpainting (a central hole of 19 % of the image) is the exception on this tiny generator: after 300 steps the
    encoder's start is lower on average, but not on every image (ratios to the random start of 0.5–1.4 over four
    trainings with other seeds and mask shares), so there only the batch's mean start loss must be lower."""
    loaded, _ = trained
    degradation, needs_mask = TASKS[task]
    _, images = _held_out(pggan, 6, seed=31337)
    mask = None
    if needs_mask:
        mask = torch.zeros(6, 1, 32, 32)
        mask[:, :, 8:20, 10:26] = 1
    observed = degradation(images, mask)
    settings = InversionSettings(codes=4, layer=2, iterations=0)
    loss = ReconstructionLoss(perceptual_weight=0)
    seeds = list(range(100, 106))
    random = invert(pggan, observed, degradation, loss, settings, seeds, mask=mask)
    start = encoder_initial_state(loaded, pggan, observed, degradation, settings, seeds, mask=mask)
    warm = invert(pggan, observed, degradation, loss, settings, seeds, mask=mask, initial_codes=start.codes,
                  initial_upper=start.upper)
    if task == "mask":
        assert warm.losses.mean() < random.losses.mean(), (warm.losses, random.losses)
    else:
        assert torch.all(warm.losses < random.losses), (warm.losses, random.losses)
    assert torch.equal(warm.codes, start.codes)  # 0 steps: the engine kept the given codes


def test_encoder_start_is_reproducible_and_independent_of_batching(pggan, trained):
    loaded, _ = trained
    _, images = _held_out(pggan, 4, seed=4242)
    settings = InversionSettings(codes=3, layer=2, iterations=5)
    seeds = [7, 8, 9, 10]
    first = encoder_initial_state(loaded, pggan, images, Identity(), settings, seeds)
    again = encoder_initial_state(loaded, pggan, images, Identity(), settings, seeds)
    assert torch.equal(first.codes, again.codes)
    for b in range(4):
        alone = encoder_initial_state(loaded, pggan, images[b:b + 1], Identity(), settings, [seeds[b]])
        assert torch.equal(alone.codes[0], first.codes[b])
    # different seeds give different noise around the same prediction
    other = encoder_initial_state(loaded, pggan, images, Identity(), settings, [s + 1 for s in seeds])
    assert not torch.equal(other.codes, first.codes)
    # and the whole warm-started inversion is batch-independent too
    loss = ReconstructionLoss(perceptual_weight=0)
    batch = invert(pggan, images, Identity(), loss, settings, seeds, initial_codes=first.codes)
    single = invert(pggan, images[2:3], Identity(), loss, settings, seeds[2:3], initial_codes=first.codes[2:3])
    torch.testing.assert_close(single.codes[0], batch.codes[2], rtol=1e-4, atol=1e-4)


def _tiny_stylegan2():
    generator = ARCHITECTURES.get("stylegan2")(resolution=16, z_dim=24, w_dim=24, fmaps_base=128, fmaps_max=16,
                                               num_mapping_layers=2, truncation_psi=None, truncation_layers=None)
    return generator.freeze()


def test_stylegan_start_uses_predicted_wplus_rows_and_upper_latent(tmp_path):
    generator = _tiny_stylegan2()
    train_encoder(generator, "tiny-sg2", SHA_B, Budget(steps=3), TINY, home=tmp_path)
    loaded = read_encoder(encoder_folder(SHA_B, tmp_path), "tiny-sg2", SHA_B, _minutes)
    assert loaded.target == "w+"
    with torch.no_grad():  # after 3 steps every row is still about w_avg: make the rows tell apart
        head = loaded.encoder.head[-1]
        head.weight.copy_(torch.randn(head.weight.shape, generator=torch.Generator().manual_seed(0)))
    z = torch.randn(2, 24, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        images = generator(z)
        predicted = loaded.encoder(encoder_input(images, None, 16))
    rows, w_dim, layer = generator.num_layers, 24, 3
    assert predicted.shape == (2, rows, w_dim)
    w_avg = generator.truncation.w_avg
    for space in ("w+", "w"):
        settings = InversionSettings(codes=5, layer=layer, space=space, iterations=0)
        start = encoder_initial_state(loaded, generator, images, Identity(), replace(settings, init_noise=0.0), [1, 2])
        centre = predicted if space == "w+" else predicted[:, :layer].mean(dim=1)
        torch.testing.assert_close(start.codes, centre[:, None].expand_as(start.codes))
        torch.testing.assert_close(start.upper, predicted[:, layer:])
        noisy = encoder_initial_state(loaded, generator, images, Identity(), replace(settings, init_noise=1.0), [1, 2])
        rng = torch.Generator().manual_seed(2)  # image 1's noise is the random start's own draw from its seed
        torch.testing.assert_close(noisy.codes[1] - centre[1], generator.sample_codes(5, rng, space) - w_avg)
        result = invert(generator, images, Identity(), ReconstructionLoss(perceptual_weight=0), settings, [1, 2],
                        initial_codes=start.codes, initial_upper=start.upper)
        torch.testing.assert_close(result.upper_latent, predicted[:, layer:])
    with pytest.raises(ConfigurationError, match="space w or w\\+"):
        encoder_initial_state(loaded, generator, images, Identity(), InversionSettings(codes=2, layer=layer, space="z"),
                              [1, 2])


def test_missing_encoder_is_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("MGAN_HOME", str(tmp_path))
    from mgan_cli.weights import store as weight_store

    monkeypatch.setattr(weight_store, "_default_store", None)
    with pytest.raises(EncoderNotFoundError) as caught:
        load_encoder("dcgan64-digiface")
    message = str(caught.value)
    assert "\n" not in message
    assert re.fullmatch(r"no encoder for dcgan64-digiface; train one with `mgan encoder train dcgan64-digiface` "
                        r"\(about \d+ minutes on this machine\)", message), message


def _trained_copy(tmp_path: Path, sha: str = SHA_A) -> Path:
    train_encoder(tiny_generator(), "tiny-pggan", sha, Budget(steps=1), TINY, home=tmp_path)
    return encoder_folder(sha, tmp_path)


def test_foreign_encoder_is_refused_in_one_line(tmp_path):
    folder = _trained_copy(tmp_path)
    other = encoder_folder(SHA_B, tmp_path)
    shutil.copytree(folder, other)  # moved wholesale into another generator's folder
    with pytest.raises(ForeignEncoderError) as caught:
        read_encoder(other, "tiny-b", SHA_B, _minutes)
    assert "\n" not in str(caught.value)
    assert SHA_A[:12] in str(caught.value) and "mgan encoder train tiny-b" in str(caught.value)
    # its record edited to claim the other generator: the file's own header still says whose it is
    info = json.loads((other / INFO_FILE).read_text())
    (other / INFO_FILE).write_text(json.dumps({**info, "generator_sha256": SHA_B}))
    with pytest.raises(ForeignEncoderError) as caught:
        read_encoder(other, "tiny-b", SHA_B, _minutes)
    assert "\n" not in str(caught.value) and str(other / WEIGHTS_FILE) in str(caught.value)
    # the genuine one still loads
    assert read_encoder(folder, "tiny-pggan", SHA_A, _minutes).target == "z"


def _refuse_pickle(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("an encoder file was read with pickle")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)

    class RefusingUnpickler(pickle.Unpickler):
        def load(self):
            refuse()

    monkeypatch.setattr(pickle, "Unpickler", RefusingUnpickler)


def _record_checksum(folder: Path) -> None:
    info = json.loads((folder / INFO_FILE).read_text())
    (folder / INFO_FILE).write_text(json.dumps({**info, "weights_sha256": sha256_of(folder / WEIGHTS_FILE)}))


def test_encoder_files_are_read_only_through_safetensors(tmp_path, monkeypatch):
    folder = _trained_copy(tmp_path)
    good = (folder / WEIGHTS_FILE).read_bytes()
    _refuse_pickle(monkeypatch)
    assert read_encoder(folder, "tiny-pggan", SHA_A, _minutes).encoder is not None
    # a torch pickle in its place (its checksum recorded, so only the format can stop it) is not unpickled
    monkeypatch.undo()
    torch.save({"features.0.weight": torch.zeros(1)}, folder / WEIGHTS_FILE)
    _record_checksum(folder)
    _refuse_pickle(monkeypatch)
    with pytest.raises(UnknownFormatError):
        read_encoder(folder, "tiny-pggan", SHA_A, _minutes)
    # changed bytes: refused by the recorded checksum
    (folder / WEIGHTS_FILE).write_bytes(good[:-4] + b"\x00\x00\x80\x7f")
    _record_checksum(folder)
    (folder / WEIGHTS_FILE).write_bytes(good)
    with pytest.raises(ChecksumError):
        read_encoder(folder, "tiny-pggan", SHA_A, _minutes)


def test_encoder_of_wrong_shapes_is_refused_before_its_tensors_are_read(tmp_path, monkeypatch):
    folder = _trained_copy(tmp_path)
    header = {"generator_sha256": SHA_A, "architecture": json.loads((folder / INFO_FILE).read_text())["architecture"]}
    encoder_storage.write_tensors(folder / WEIGHTS_FILE, {"head.1.weight": torch.zeros(3, 3)}, header)
    _record_checksum(folder)

    def refuse(*args, **kwargs):
        raise AssertionError("tensor data was read before the shapes were checked")

    monkeypatch.setattr(encoder_storage, "load_file", refuse)
    with pytest.raises(EncoderError, match="does not fit"):
        read_encoder(folder, "tiny-pggan", SHA_A, _minutes)


def test_training_resumes_exactly_from_its_checkpoint(tmp_path, pggan):
    """Interrupted after 2 of 4 steps and rerun: the same weights as 4 steps in one go (the decaying rate too)."""
    def interrupt_at_step_2(progress):
        if progress.step == 2:
            raise KeyboardInterrupt

    straight = train_encoder(pggan, "tiny", SHA_A, Budget(steps=4), TINY, home=tmp_path / "straight")
    with pytest.raises(KeyboardInterrupt):
        train_encoder(pggan, "tiny", SHA_A, Budget(steps=4), TINY, home=tmp_path / "resumed",
                      progress=interrupt_at_step_2)
    resumed = train_encoder(pggan, "tiny", SHA_A, Budget(steps=4), TINY, home=tmp_path / "resumed")
    assert resumed.resumed_from == 2 and resumed.steps == 4
    for key, value in straight.encoder.state_dict().items():
        assert torch.equal(value, resumed.encoder.state_dict()[key]), key
    fresh = train_encoder(pggan, "tiny", SHA_A, Budget(steps=4), TINY, home=tmp_path / "resumed", fresh=True)
    assert fresh.resumed_from == 0


def test_cli_trains_resumes_and_lists(tmp_path, monkeypatch):
    from mgan_cli.cli import main
    from mgan_cli.weights import store as weight_store

    monkeypatch.setenv("MGAN_HOME", str(tmp_path))
    monkeypatch.setattr(weight_store, "_default_store", None)
    runner = CliRunner()
    first = runner.invoke(main, ["encoder", "train", "dcgan64-digiface", "--steps", "1", "--batch-size", "2",
                                 "--device", "cpu"])
    assert first.exit_code == 0, first.output
    again = runner.invoke(main, ["encoder", "train", "dcgan64-digiface", "--steps", "2", "--batch-size", "2",
                                 "--device", "cpu"])
    assert again.exit_code == 0 and "resumed from step 1" in again.output, again.output
    listed = runner.invoke(main, ["encoder", "list", "--json"])
    rows = [json.loads(line) for line in listed.output.splitlines()]
    assert [(r["generator"], r["steps"], r["problem"]) for r in rows] == [("dcgan64-digiface", 2, None)]
    both = runner.invoke(main, ["encoder", "train", "dcgan64-digiface", "--steps", "1", "--minutes", "1"])
    assert both.exit_code == 2 and "not both" in both.output
    unknown = runner.invoke(main, ["encoder", "train", "no-such-generator", "--steps", "1"])
    assert unknown.exit_code == 2 and len(unknown.output.strip().splitlines()) == 1, unknown.output


def test_init_encoder_runs_from_the_cli_and_enters_the_fingerprint(tmp_path, monkeypatch):
    """``--init encoder``: refused in one line (nothing written) without an encoder; with one, the run records the
    setting and the encoder's checksum, a rerun with the same start skips, one with ``--init random`` clashes."""
    from mgan_cli.cli import main
    from mgan_cli.weights import store as weight_store

    monkeypatch.setenv("MGAN_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(weight_store, "_default_store", None)
    face = tmp_path / "face.png"
    Image.fromarray(np.full((64, 64, 3), 120, dtype=np.uint8)).save(face)
    runner = CliRunner()
    fast = ["--iterations", "2", "--codes", "2", "--device", "cpu", "--json"]
    out = tmp_path / "out"
    missing = runner.invoke(main, ["invert", str(face), "-o", str(out), "--init", "encoder", *fast])
    assert missing.exit_code == 2 and not out.exists()
    assert "no encoder for dcgan64-digiface; train one with `mgan encoder train dcgan64-digiface`" in missing.output
    trained = runner.invoke(main, ["encoder", "train", "dcgan64-digiface", "--steps", "1", "--batch-size", "2",
                                   "--device", "cpu"])
    assert trained.exit_code == 0, trained.output
    first = runner.invoke(main, ["invert", str(face), "-o", str(out), "--init", "encoder", *fast])
    assert first.exit_code == 0, first.output
    header = json.loads((out / "report.json").read_text())
    assert header["preset"]["inversion"]["init"] == "encoder"
    assert any(name.startswith("encoder:") and sha for name, sha in header["weights_sha256"].items())
    again = runner.invoke(main, ["invert", str(face), "-o", str(out), "--init", "encoder", *fast])
    assert json.loads(again.stdout)["status"] == "skipped"
    other = runner.invoke(main, ["invert", str(face), "-o", str(out), "--init", "random", *fast])
    assert json.loads(other.stdout.splitlines()[0])["status"] == "failed" and "other settings" in other.output


def test_the_engine_refuses_init_encoder_without_a_warm_start():
    from mgan_cli.errors import ConfigurationError

    generator = tiny_generator()
    settings = InversionSettings(codes=2, layer=2, iterations=1, init="encoder")
    with pytest.raises(ConfigurationError, match="initial_codes"):
        invert(generator, torch.zeros(1, 3, 32, 32), Identity(), ReconstructionLoss(0.0), settings, [0])


def test_init_auto_uses_the_encoder_once_trained_with_the_presets_recipe(tmp_path, monkeypatch):
    """``init: auto`` (the built-in presets): random codes and the preset's iterations (with a note saying how to
    train an encoder) until an encoder is trained; then the encoder start with the preset's
    ``encoder_iterations``, unless --iterations is given. What ran is what the fingerprint says: auto resolved to
    random reruns as ``--init random``, and to the encoder as ``--init encoder``."""
    from mgan_cli.cli import main
    from mgan_cli.config.presets import load_preset
    from mgan_cli.weights import store as weight_store

    monkeypatch.setenv("MGAN_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(weight_store, "_default_store", None)
    preset = load_preset("dcgan64-invert").inversion
    assert preset.init == "auto" and preset.encoder_iterations is not None
    assert preset.encoder_iterations < preset.iterations
    untrained = Restorer("dcgan64-digiface", "invert")
    assert (untrained.preset.inversion.init, untrained.preset.inversion.iterations) == ("random", preset.iterations)
    assert "mgan encoder train dcgan64-digiface" in untrained.start_note
    assert Restorer("dcgan64-digiface", "invert", init="random").start_note is None

    face = tmp_path / "face.png"
    Image.fromarray(np.full((64, 64, 3), 120, dtype=np.uint8)).save(face)
    runner = CliRunner()
    fast = ["--iterations", "2", "--codes", "2", "--device", "cpu"]
    first = runner.invoke(main, ["invert", str(face), "-o", str(tmp_path / "a"), *fast])
    assert first.exit_code == 0 and "no encoder is trained for dcgan64-digiface" in first.output, first.output
    as_random = runner.invoke(main, ["invert", str(face), "-o", str(tmp_path / "a"), "--init", "random", "--json",
                                     *fast])
    assert json.loads(as_random.stdout)["status"] == "skipped", as_random.output

    trained = runner.invoke(main, ["encoder", "train", "dcgan64-digiface", "--steps", "1", "--batch-size", "2",
                                   "--device", "cpu"])
    assert trained.exit_code == 0, trained.output
    auto = Restorer("dcgan64-digiface", "invert")
    assert (auto.preset.inversion.init, auto.preset.inversion.iterations) == ("encoder", preset.encoder_iterations)
    assert auto.preset.inversion.encoder_iterations is None and auto.start_note is None
    assert (auto.tuning.steps, auto.tuning.layers) == (preset.encoder_tune_steps, "upper")
    untuned = Restorer("dcgan64-digiface", "invert", tune_steps=0)  # the recipe is followed whole or not at all
    assert (untuned.preset.inversion.iterations, untuned.tuning.steps) == (preset.iterations, 0)
    # the layer analysis does not tune, so it runs a recipe that tunes with the preset's own iterations
    small = tmp_path / "small.yaml"
    small.write_text("generator: dcgan64-digiface\ntask: invert\ndegradation: {type: identity}\ninversion: "
                     "{codes: 2, layer: 2, iterations: 3, init: auto, encoder_iterations: 1, encoder_tune_steps: 1}\n")
    analysis = Restorer("dcgan64-digiface", "invert", preset=small, device="cpu")
    assert analysis.preset.inversion.iterations == 1  # a restoring run follows the recipe
    analysis.analyze_files([face], tmp_path / "analysis", layers="2", codes="2")
    ran = json.loads(next((tmp_path / "analysis").rglob("report.json")).read_text())["preset"]["inversion"]
    assert (ran["init"], ran["iterations"]) == ("encoder", 3)
    assert Restorer("dcgan64-digiface", "invert", iterations=7).preset.inversion.iterations == 7
    assert Restorer("dcgan64-digiface", "invert", init="random").preset.inversion.init == "random"
    second = runner.invoke(main, ["invert", str(face), "-o", str(tmp_path / "b"), "--json", *fast])
    header = json.loads((tmp_path / "b" / "report.json").read_text())
    assert header["preset"]["inversion"]["init"] == "encoder"
    # the recipe's tuning above ℓ ran (with --iterations given: only the iterations are the flag's)
    assert (header["tuning"]["steps"], header["tuning"]["layers"]) == (preset.encoder_tune_steps, "upper")
    assert json.loads(second.stdout)["tuned_steps"] == preset.encoder_tune_steps
    as_encoder = runner.invoke(main, ["invert", str(face), "-o", str(tmp_path / "b"), "--init", "encoder", "--json",
                                      *fast])
    assert second.exit_code == 0 and json.loads(as_encoder.stdout)["status"] == "skipped", as_encoder.output
    untuned = runner.invoke(main, ["invert", str(face), "-o", str(tmp_path / "b"), "--tune-generator", "0",
                                   "--json", *fast])
    assert "other settings" in untuned.output  # the recipe's tuning is part of what the outputs were made with
    as_random = runner.invoke(main, ["invert", str(face), "-o", str(tmp_path / "c"), "--init", "random", *fast])
    assert as_random.exit_code == 0 and "tuning" not in json.loads((tmp_path / "c" / "report.json").read_text())


def test_the_encoder_recipe_tunes_above_the_layer_unless_the_caller_says_otherwise():
    """``encoder_tune_steps`` applies only to an encoder start, with ``layers: upper``; a caller's steps (0 too)
    replace it, and a caller's layers apply to the recipe's steps."""
    import dataclasses

    from mgan_cli.config.presets import load_preset
    from mgan_cli.encoder import recipe_tuning, resolve_start

    preset = load_preset("dcgan64-invert")
    recipe = dataclasses.replace(preset.inversion, init="encoder", encoder_tune_steps=100)
    encoder_start = resolve_start(dataclasses.replace(preset, inversion=recipe))
    random_start = resolve_start(dataclasses.replace(preset, inversion=dataclasses.replace(recipe, init="random")))
    assert random_start.inversion.encoder_tune_steps is None
    assert (recipe_tuning(encoder_start).steps, recipe_tuning(encoder_start).layers) == (100, "upper")
    assert recipe_tuning(encoder_start, layers="all").layers == "all"
    assert recipe_tuning(encoder_start, 0).steps == 0
    assert (recipe_tuning(encoder_start, 5).steps, recipe_tuning(encoder_start, 5).layers) == (5, "all")
    assert recipe_tuning(random_start).steps == 0 and recipe_tuning(random_start, 5, "upper").steps == 5
    # a run that does not tune (--tune-generator 0, the layer analysis) cannot follow a recipe that tunes ...
    untuned = resolve_start(dataclasses.replace(preset, inversion=dataclasses.replace(recipe, encoder_iterations=200)),
                            tunes=False).inversion
    assert (untuned.init, untuned.iterations, untuned.encoder_tune_steps) == ("encoder", preset.inversion.iterations,
                                                                               None)
    # ... but follows one that does not tune
    plain = dataclasses.replace(recipe, encoder_iterations=200, encoder_tune_steps=None)
    assert resolve_start(dataclasses.replace(preset, inversion=plain), tunes=False).inversion.iterations == 200


def test_the_fingerprint_of_a_random_start_holds_no_warm_start_field():
    """Outputs recorded before ``init_noise``/``encoder_iterations`` existed must still match a random-start rerun:
    neither field changes a random start's pixels, so neither is fingerprinted; the noise of an encoder start is."""
    from mgan_cli.run.planning import warm_start_free

    random_start = warm_start_free({"init": "random", "init_noise": 0.5, "encoder_iterations": None,
                                    "encoder_tune_steps": None, "codes": 20})
    assert random_start == {"init": "random", "codes": 20}
    assert warm_start_free({"init": "encoder", "init_noise": 0.5, "encoder_iterations": None}) == {
        "init": "encoder", "init_noise": 0.5}
