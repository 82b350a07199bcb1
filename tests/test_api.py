"""The public Python API (``import mgan_cli as mgan``): its contract, every refusal at the boundary, and that
the command line is a thin layer on it (same preset, seed and input: the same PNG, bit for bit)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import mgan_cli as mgan
from mgan_cli import api
from mgan_cli.cli import main
from mgan_cli.config.presets import LossSettings, load_preset
from mgan_cli.errors import InputValueError, PresetError
from tests.helpers import celeba_face, tiny_generator

REPO = Path(__file__).resolve().parents[1]
FAST = {"iterations": 3, "codes": 2}
FAST_FLAGS = ["--iterations", "3", "--codes", "2", "--device", "cpu"]


def tiny_restorer(task: str = "invert", **overrides) -> mgan.Restorer:
    """A restorer of the tiny random 32×32 PGGAN (no name, so it takes an explicit preset)."""
    base = load_preset("dcgan64-invert" if task == "invert" else f"dcgan64-{task}")
    preset = dataclasses.replace(base, generator="tiny-pggan", loss=LossSettings(perceptual_weight=0.0),
                                 inversion=dataclasses.replace(base.inversion, layer=2, codes=3, iterations=4))
    return mgan.Restorer(tiny_generator(), task, preset=preset, device="cpu", precision="fp32", **overrides)


def test_public_names_are_listed_and_exist() -> None:
    for name in ("load_generator", "Restorer", "Restoration", "edit", "directions", "save_latents",
                 "load_latents", "metrics", "Inversion", "InputValueError"):
        assert name in mgan.__all__ and hasattr(mgan, name)
    assert all(hasattr(mgan, name) for name in mgan.__all__)


def test_restoration_contract_on_a_tiny_generator() -> None:
    restorer = tiny_restorer()
    observed = torch.rand(3, 3, 32, 32)
    out = restorer(observed, seed=0)
    assert out.images.shape == (3, 3, 32, 32) and out.images.dtype == torch.float32
    assert out.images.device.type == "cpu"
    assert float(out.images.min()) >= 0 and float(out.images.max()) <= 1
    assert torch.equal(out.images, (out.images * 255).round() / 255)  # quantised as the PNG is
    assert out.failed == [None, None, None] and out.steps == [4, 4, 4]
    assert all(np.isfinite(out.losses))
    for inversion in out.inversions:
        assert inversion is not None and inversion.codes.shape == (3, 16) and inversion.layer == 2
        assert inversion.alphas.shape[0] == 3 and inversion.codes.device.type == "cpu"
    assert len(set(out.seeds)) == 3


def test_seeds_make_results_reproducible_and_independent_of_batching() -> None:
    restorer = tiny_restorer()
    observed = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    together = restorer(observed, names=["a.png", "b.png"])
    again = restorer(observed, names=["a.png", "b.png"])
    alone = restorer(observed[1:], names=["b.png"])
    assert torch.equal(together.images, again.images)
    assert torch.allclose(together.images[1], alone.images[0], atol=1 / 255)
    assert together.seeds[1] == alone.seeds[0]
    other = restorer(observed, seed=7, names=["a.png", "b.png"])
    assert other.seeds != together.seeds and not torch.equal(other.images, together.images)
    explicit = restorer(observed, seed=together.seeds)
    assert torch.equal(explicit.images, together.images)


def test_uint8_and_pil_inputs_give_the_same_result() -> None:
    restorer = tiny_restorer()
    pixels = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    pil = [Image.fromarray(p.permute(1, 2, 0).numpy()) for p in pixels]
    assert torch.equal(restorer(pixels).images, restorer(pil).images)


@pytest.mark.parametrize(("observed", "says"), [
    (torch.rand(2, 3, 32, 32) * 2 - 1, "[0, 1]"),                      # the engine's [-1, 1] range
    (torch.rand(2, 3, 32, 32) * 255, "[0, 1]"),                        # 0-255 floats
    (torch.full((1, 3, 32, 32), float("nan")), "[0, 1]"),
    (torch.zeros(2, 3, 32, 32, dtype=torch.int32), "dtype"),
    (torch.rand(3, 32, 32), "[B, 3, 32, 32]"),                        # no batch dimension
    (torch.rand(2, 4, 32, 32), "[B, 3, 32, 32]"),
    (torch.rand(2, 3, 64, 64), "[B, 3, 32, 32]"),                      # another size: nothing is resized
    (torch.rand(0, 3, 32, 32), "empty"),
    ([Image.new("RGBA", (32, 32))], "mode RGB or L"),
    ([Image.new("RGB", (31, 32))], "32x32"),
    (np.zeros((1, 3, 32, 32)), "tensor"),
])
def test_bad_images_are_refused_naming_the_expected_value(observed, says) -> None:
    restorer = tiny_restorer()
    with pytest.raises(ValueError, match="images") as refused:
        restorer(observed)
    assert says in str(refused.value) and isinstance(refused.value, InputValueError)


def test_bad_masks_seeds_and_overrides_are_refused() -> None:
    with pytest.raises(InputValueError, match="takes no mask"):
        tiny_restorer()(torch.rand(1, 3, 32, 32), torch.ones(1, 1, 32, 32))
    inpaint = tiny_restorer("inpaint")
    with pytest.raises(InputValueError, match="needs a mask"):
        inpaint(torch.rand(1, 3, 32, 32))
    with pytest.raises(InputValueError, match=r"\[B, 1, 32, 32\]"):
        inpaint(torch.rand(1, 3, 32, 32), torch.ones(1, 3, 32, 32))
    with pytest.raises(InputValueError, match=r"\[0, 1\]"):
        inpaint(torch.rand(1, 3, 32, 32), torch.full((1, 1, 32, 32), 2.0))
    with pytest.raises(InputValueError, match="marks no pixel"):
        inpaint(torch.rand(1, 3, 32, 32), torch.zeros(1, 1, 32, 32))
    with pytest.raises(InputValueError, match="2 per-image seeds"):
        tiny_restorer()(torch.rand(2, 3, 32, 32), seed=[1, 2, 3])
    with pytest.raises(PresetError, match="cannot override 'colour'"):
        tiny_restorer(colour=3)
    with pytest.raises(PresetError, match="codes"):
        tiny_restorer(codes=0)


def test_one_mask_serves_the_whole_batch_and_known_pixels_are_kept() -> None:
    inpaint = tiny_restorer("inpaint")
    observed = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    hole = torch.zeros(1, 1, 32, 32, dtype=torch.bool)
    hole[..., 8:24, 8:24] = True
    out = inpaint(observed, hole)
    assert out.failed == [None, None]
    known = ~hole.expand(2, 3, 32, 32)
    assert (out.images[known] - observed[known]).abs().max() <= 1 / 255 + 1e-6  # paste_known keeps them


def test_a_diverged_image_fails_alone() -> None:
    restorer = tiny_restorer()
    loss = restorer._batches.loss
    original = loss.forward

    def poisoned(estimates, targets, target_features=None):  # black targets get a NaN loss
        values = original(estimates, targets, target_features)
        return torch.where(targets.flatten(1).amax(dim=1) <= -1, torch.full_like(values, float("nan")), values)

    loss.forward = poisoned
    observed = torch.rand(3, 3, 32, 32)
    observed[1] = 0.0
    out = restorer(observed)
    assert out.failed[0] is None and out.failed[2] is None
    assert out.failed[1] is not None and "diverged" in out.failed[1]
    assert bool(torch.isnan(out.images[1]).all()) and out.inversions[1] is None
    assert bool(torch.isfinite(out.images[[0, 2]]).all())


def test_a_restorer_called_twice_loads_its_generator_once(monkeypatch) -> None:
    loads = []
    real = api.load_named_generator
    monkeypatch.setattr(api, "load_named_generator", lambda name: loads.append(name) or real(name))
    restorer = mgan.Restorer("dcgan64-digiface", "invert", device="cpu", perceptual_weight=0.0, **FAST)
    assert loads == []  # nothing is loaded until it is needed
    observed = torch.rand(1, 3, 64, 64)
    first, second = restorer(observed), restorer(observed)
    assert loads == ["dcgan64-digiface"]
    assert torch.equal(first.images, second.images)


def test_a_generator_read_from_a_file_needs_a_preset(shared_dir) -> None:
    from mgan_cli.weights.store import weight_path

    generator = mgan.load_generator(weight_path("dcgan64-digiface"), format="dcgan-tutorial-tar")
    assert generator.weights_name is None and generator.resolution == 64
    with pytest.raises(mgan.MganError, match="pass preset="):
        mgan.Restorer(generator, "invert")
    restorer = mgan.Restorer(generator, "invert", preset="dcgan64-invert", device="cpu", **FAST)
    assert restorer(torch.rand(1, 3, 64, 64)).failed == [None]


def _face_inputs(shared_dir: Path, tmp_path: Path) -> dict[str, tuple[Path, Image.Image]]:
    """One CelebA face prepared for each task: (file the CLI reads, image the API gets)."""
    face = celeba_face(sorted((shared_dir / "data" / "celeba64").glob("*.jpg"))[0])
    folder = tmp_path / "in"
    folder.mkdir()
    inputs = {"invert": face, "denoise": face, "inpaint": face, "colorize": face.convert("L"),
              "superres": face.resize((16, 16), Image.Resampling.BICUBIC)}
    files = {}
    for task, image in inputs.items():
        path = folder / task / "face.png"
        path.parent.mkdir()
        image.save(path)
        files[task] = (path, Image.open(path).copy())
    return files


@pytest.mark.parametrize("task", ["invert", "colorize", "superres", "inpaint", "denoise"])
def test_the_cli_writes_exactly_what_the_api_returns(task, shared_dir, tmp_path) -> None:
    path, image = _face_inputs(shared_dir, tmp_path)[task]
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[20:44, 12:40] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    flags = {"superres": ["--scale", "4"], "inpaint": ["--mask", str(tmp_path / "mask.png")]}.get(task, [])
    out = tmp_path / "out"
    result = CliRunner().invoke(main, [task, str(path), "-o", str(out), "--json", "--seed", "5", *flags,
                                       *FAST_FLAGS], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    written = np.asarray(Image.open(json.loads(result.stdout)["output"]))

    overrides = {"scale": 4} if task == "superres" else {}
    restorer = mgan.Restorer("dcgan64-digiface", task, device="cpu", seed=5, **FAST, **overrides)
    masks = [Image.open(tmp_path / "mask.png")] if task == "inpaint" else None
    restored = restorer([image], masks, names=[path.name])
    assert restored.failed == [None]
    pixels = (restored.images[0] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert np.array_equal(pixels, written)


def test_restore_files_runs_the_whole_pipeline(shared_dir, tmp_path) -> None:
    path, _ = _face_inputs(shared_dir, tmp_path)["invert"]
    restorer = mgan.Restorer("dcgan64-digiface", "invert", device="cpu", **FAST)
    seen = []
    events = mgan.RunEvents(on_record=seen.append)
    outcome = restorer.restore_files([path], tmp_path / "out", events=events)
    assert outcome.status == 0 and [r.status for r in outcome.records] == ["ok"]
    assert (tmp_path / "out" / "face.png").is_file() and (tmp_path / "out" / "index.html").is_file()
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["summary"]["ok"] == 1 and len(seen) == 1
    again = restorer.restore_files([path], tmp_path / "out")
    assert [r.status for r in again.records] == ["skipped"]
    with pytest.raises(mgan.MganError, match="unknown option 'colour'"):
        restorer.restore_files([path], tmp_path / "out", colour=1)
    tuning = mgan.Restorer("dcgan64-digiface", "invert", device="cpu", tune_steps=1, **FAST)
    tuning.restore_files([path], tmp_path / "tuned")  # the restorer's own tuning, as its __call__ does
    assert json.loads((tmp_path / "tuned" / "report.json").read_text())["tuning"]["steps"] == 1


def test_edit_directions_and_latents(tmp_path) -> None:
    generator = mgan.load_generator("dcgan64-digiface")
    restorer = mgan.Restorer(generator, "invert", device="cpu", perceptual_weight=0.0, **FAST)
    out = restorer(torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(4)))
    inversion = out.inversions[0]
    found = mgan.directions(generator, "sefa", n=4)
    assert found.vectors.shape == (4, 100) and found.space == "z"
    frames = mgan.edit(generator, inversion, direction="sefa:1", strengths=[-3, 0, 3])
    assert frames.shape == (3, 3, 64, 64) and float(frames.min()) >= 0 and float(frames.max()) <= 1
    assert torch.allclose(frames[1], out.images[0], atol=1 / 255)  # strength 0 is the inversion itself
    assert not torch.allclose(frames[0], frames[2], atol=0.05)
    with pytest.raises(InputValueError, match="finite"):
        mgan.edit(generator, inversion, strengths=[float("nan")])
    path = tmp_path / "face.safetensors"
    mgan.save_latents(path, inversion, generator)
    loaded = mgan.load_latents(path, "dcgan64-digiface")
    assert torch.equal(loaded.codes, inversion.codes) and torch.equal(loaded.alphas, inversion.alphas)
    with pytest.raises(mgan.MganError, match="not dcgan32-celeba"):
        mgan.load_latents(path, "dcgan32-celeba")


def test_metrics_take_images_in_zero_one() -> None:
    rng = torch.Generator().manual_seed(5)
    a, b = torch.rand(2, 3, 32, 32, generator=rng), torch.rand(2, 3, 32, 32, generator=rng)
    a8, b8 = (a * 255).round().to(torch.uint8), (b * 255).round().to(torch.uint8)
    mse = ((a8.double() - b8.double()) ** 2).flatten(1).mean(1)
    expected = 10 * torch.log10(255.0**2 / mse)
    assert torch.allclose(mgan.metrics.psnr(a8.double() / 255, b8.double() / 255), expected, atol=1e-9)
    assert torch.allclose(mgan.metrics.psnr(a8, b8), expected, atol=1e-9)
    assert float(mgan.metrics.ssim(a, a).min()) == pytest.approx(1.0)
    with pytest.raises(InputValueError, match=r"\[0, 1\]"):
        mgan.metrics.psnr(a * 2 - 1, b)
    with pytest.raises(InputValueError, match=r"\[0, 1\]"):
        mgan.metrics.lpips(a * 255, b * 255)


def test_the_python_example_runs(tmp_path) -> None:
    done = subprocess.run([sys.executable, str(REPO / "examples" / "python_api.py"), str(tmp_path), "5"],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PSNR" in done.stdout and (tmp_path / "restored.png").is_file()


def test_tuning_through_the_api_matches_the_cli_and_returns_the_tuned_weights(shared_dir, tmp_path) -> None:
    path, image = _face_inputs(shared_dir, tmp_path)["invert"]
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["invert", str(path), "-o", str(out), "--json", "--tune-generator", "2",
                                       *FAST_FLAGS], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    written = np.asarray(Image.open(json.loads(result.stdout)["output"]))
    tuned = mgan.Restorer("dcgan64-digiface", "invert", device="cpu", tune_steps=2, **FAST)([image],
                                                                                            names=[path.name])
    plain = mgan.Restorer("dcgan64-digiface", "invert", device="cpu", **FAST)([image], names=[path.name])
    pixels = (tuned.images[0] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert np.array_equal(pixels, written)
    assert tuned.tuned[0] and plain.tuned == [None]
    assert not torch.equal(tuned.images, plain.images)


def test_progress_counts_the_inversion_steps_then_each_images_tuning_steps() -> None:
    """The progress callback covers the whole batch's work: 4 inversion steps, then 2 tuning steps per image."""
    calls: list[tuple[int, int]] = []
    tiny_restorer(tune_steps=2)(torch.rand(2, 3, 32, 32), seed=0, progress=lambda s, t, _: calls.append((s, t)))
    inversion = [step for step, _ in calls if step <= 4]
    assert inversion and inversion[-1] == 4 and inversion == sorted(inversion)  # the engine reports some steps
    assert calls[len(inversion):] == [(step, 8) for step in range(5, 9)] and {t for _, t in calls} == {8}
