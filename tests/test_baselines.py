"""Baselines: what a user gets without mgan, per task, and their scores in the report."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from mgan_cli.cli import main
from mgan_cli.config.tasks import TASKS
from mgan_cli.errors import ConfigurationError
from mgan_cli.metrics.baselines import BASELINES, baseline_summary, make_baselines
from tests.helpers import celeba_face, psnr_uint8


def _pixels(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array.astype(np.uint8)).permute(2, 0, 1).contiguous()


def _ramp(size: int) -> np.ndarray:
    """A smooth colour gradient (the kind of image interpolation reproduces well)."""
    y, x = np.mgrid[0:size, 0:size] / (size - 1)
    return np.stack([40 + 170 * x, 60 + 150 * y, 120 + 60 * (x + y) / 2], axis=-1).round()


def test_every_task_names_a_registered_baseline_except_invert() -> None:
    assert TASKS.get("invert").baseline is None  # the input is the reference
    expected = {"superres": "bicubic", "colorize": "observed", "denoise": "observed", "inpaint": "telea"}
    for task, baseline in expected.items():
        assert TASKS.get(task).baseline == baseline and baseline in BASELINES


def test_bicubic_upsamples_a_smooth_image_faithfully() -> None:
    big = _ramp(64)
    small = np.asarray(Image.fromarray(big.astype(np.uint8)).resize((16, 16), Image.Resampling.BOX))
    upsampled = BASELINES.get("bicubic").make(_pixels(small), None, 64)
    assert upsampled.dtype == torch.uint8 and upsampled.shape == (3, 64, 64)
    assert psnr_uint8(upsampled.permute(1, 2, 0).numpy(), big) > 35
    constant = torch.full((3, 8, 8), 77, dtype=torch.uint8)
    assert torch.equal(BASELINES.get("bicubic").make(constant, None, 32), torch.full((3, 32, 32), 77,
                                                                                      dtype=torch.uint8))


def test_observed_is_the_input_and_checks_its_size() -> None:
    image = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)
    assert torch.equal(BASELINES.get("observed").make(image, None, 64), image)
    with pytest.raises(ConfigurationError, match="64x64"):
        BASELINES.get("observed").make(image[:, :32, :32], None, 64)


def test_telea_keeps_known_pixels_and_fills_the_hole_from_its_surroundings() -> None:
    truth = _ramp(64)
    mask = torch.zeros(1, 64, 64)
    mask[0, 24:36, 20:40] = 1.0
    mask[0, 10, 10] = 0.5  # partly missing pixels are filled too
    holed = truth.copy()
    holed[mask[0].numpy() > 0] = 255  # whatever the hole holds must not leak into the fill
    filled = BASELINES.get("telea").make(_pixels(holed), mask, 64).permute(1, 2, 0).numpy().astype(float)
    known = mask[0].numpy() == 0
    assert np.array_equal(filled[known], truth[known])
    hole = ~known
    assert np.abs(filled[hole] - truth[hole]).mean() < 6  # a gradient is filled almost exactly
    assert np.abs(holed[hole] - truth[hole]).mean() > 50
    with pytest.raises(ConfigurationError, match="mask"):
        BASELINES.get("telea").make(_pixels(holed), None, 64)


def test_make_baselines_runs_a_batch() -> None:
    images = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    out = make_baselines("bicubic", images, None, 64)
    assert out.shape == (2, 3, 64, 64)
    assert torch.equal(out[1], BASELINES.get("bicubic").make(images[1], None, 64))


def test_summary_means_and_gains() -> None:
    rows = [
        {"psnr": 30.0, "baseline_psnr": 25.0, "ssim": 0.9, "baseline_ssim": 0.8, "lpips": 0.1, "baseline_lpips": 0.3},
        {"psnr": 20.0, "baseline_psnr": 22.0, "ssim": 0.5, "baseline_ssim": 0.7, "lpips": 0.2, "baseline_lpips": 0.2},
        {"psnr": "inf", "baseline_psnr": 40.0},  # infinite PSNR: no gain, the baseline still counts
        {"psnr": None, "baseline_psnr": None},
    ]
    summary = baseline_summary(rows)
    assert summary["mean_baseline_psnr"] == pytest.approx((25 + 22 + 40) / 3)
    assert summary["gain_psnr"] == pytest.approx(((30 - 25) + (20 - 22)) / 2) and summary["count_gain_psnr"] == 2
    assert summary["gain_ssim"] == pytest.approx((0.1 - 0.2) / 2)
    assert summary["gain_lpips"] == pytest.approx((0.2 + 0.0) / 2)  # lower LPIPS is better: baseline − mgan
    assert baseline_summary([])["gain_psnr"] is None


def test_inpaint_report_scores_the_telea_baseline(shared_dir, tmp_path) -> None:
    import cv2

    faces, references = tmp_path / "holed", tmp_path / "ref"
    faces.mkdir()
    references.mkdir()
    hole = np.zeros((64, 64), np.uint8)
    hole[20:40, 16:48] = 255
    Image.fromarray(hole).save(tmp_path / "mask.png")
    for photo in sorted((shared_dir / "data" / "celeba64").glob("*.jpg"))[:2]:
        face = np.asarray(celeba_face(photo))
        Image.fromarray(face).save(references / f"{photo.stem}.png")
        holed = face.copy()
        holed[hole > 0] = 255
        Image.fromarray(holed).save(faces / f"{photo.stem}.png")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["inpaint", str(faces), "-o", str(out), "--mask", str(tmp_path / "mask.png"),
                                       "--reference", str(references), "--iterations", "2", "--codes", "2",
                                       "--device", "cpu", "--quiet"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    for row in report["images"]:
        stem = row["input"].rsplit("/", 1)[-1].removesuffix(".png")
        holed = np.asarray(Image.open(faces / f"{stem}.png"))
        expected = cv2.inpaint(np.ascontiguousarray(holed), hole, 3, cv2.INPAINT_TELEA)
        reference = np.asarray(Image.open(references / f"{stem}.png"))
        assert row["baseline_psnr"] == pytest.approx(psnr_uint8(expected, reference), abs=1e-6)
        assert 0 < row["baseline_ssim"] <= 1 and row["baseline_lpips"] > 0
        assert (out / ".mgan" / "thumbs" / f"{stem}.baseline.jpg").is_file()
    summary = report["summary"]
    gains = [r["psnr"] - r["baseline_psnr"] for r in report["images"]]
    assert summary["gain_psnr"] == pytest.approx(sum(gains) / len(gains))
    rows = list(csv.DictReader((out / "report.csv").read_text().splitlines()))
    assert float(rows[0]["baseline_psnr"]) == pytest.approx(report["images"][0]["baseline_psnr"])
