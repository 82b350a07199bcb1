"""``mgan metrics`` (the click command object, invoked without the ``mgan`` group)."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from mgan_cli.cli.metrics_cmd import metrics_command
from mgan_cli.metrics import api as metrics_api
from mgan_cli.metrics import compute_metrics, naturalness
from mgan_cli.weights import store as weight_store


def _save(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(array, dtype=np.uint8)).permute(2, 0, 1)[None]


@pytest.fixture()
def photos(shared_dir: Path, tmp_path: Path) -> dict[str, np.ndarray]:
    """restored/{face,noisy,same}.png and reference/{face,noisy,same}.png (256², from a real photo)."""
    face = np.array(Image.open(shared_dir / "data" / "ffhq256" / "000001.png").convert("RGB"))
    rng = np.random.RandomState(0)
    noisy = np.clip(face + rng.normal(0, 20, face.shape), 0, 255).astype(np.uint8)
    blurred = np.array(Image.fromarray(face).resize((128, 128)).resize((256, 256)))
    arrays = {"restored/face": blurred, "reference/face": face, "restored/noisy": noisy,
              "reference/noisy": face, "restored/same": face, "reference/same": face}
    for name, array in arrays.items():
        _save(tmp_path / f"{name}.png", array)
    return arrays


def _invoke(args: list[str]):
    return CliRunner().invoke(metrics_command, args, catch_exceptions=False)


def _json_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_json_lines_pair_by_stem_and_match_the_api(photos: dict[str, np.ndarray], tmp_path: Path) -> None:
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = _invoke([str(tmp_path / "restored"), "--reference", str(tmp_path / "reference"), "--json",
                      "--device", "cpu"])
    assert result.exit_code == 0, result.stderr
    rows = {row["name"]: row for row in _json_lines(result.stdout)}
    assert sorted(rows) == ["face", "noisy", "same"]
    assert set(rows["face"]) == {"name", "psnr", "ssim", "lpips", "niqe"}
    want = compute_metrics(_tensor(photos["restored/noisy"]), _tensor(photos["reference/noisy"]))[0]
    for key, value in want.items():
        assert rows["noisy"][key] == pytest.approx(value, abs=1e-9)
    assert rows["same"]["psnr"] == "inf" and rows["same"]["lpips"] == pytest.approx(0.0, abs=1e-7)
    assert result.stderr == ""
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # writes nothing without -o


def test_options_reach_the_metrics(photos: dict[str, np.ndarray], tmp_path: Path) -> None:
    result = _invoke([str(tmp_path / "restored" / "noisy.png"), "-r", str(tmp_path / "reference"), "--json",
                      "--metrics", "psnr, ssim", "--y", "--crop-border", "4"])
    assert result.exit_code == 0, result.stderr
    (row,) = _json_lines(result.stdout)
    want = compute_metrics(_tensor(photos["restored/noisy"]), _tensor(photos["reference/noisy"]),
                           names=["psnr", "ssim"], y_channel=True, crop_border=4)[0]
    assert row == {"name": "noisy", **want}


def test_table_without_json(photos: dict[str, np.ndarray], tmp_path: Path) -> None:
    result = _invoke([str(tmp_path / "restored"), "-r", str(tmp_path / "reference"), "--metrics", "psnr,niqe"])
    assert result.exit_code == 0, result.stderr
    assert "face" in result.stdout and "noisy" in result.stdout and "inf" in result.stdout
    assert "psnr" in result.stdout and "niqe" in result.stdout


def test_problems_are_reported_and_skipped(photos: dict[str, np.ndarray], tmp_path: Path) -> None:
    restored, reference = tmp_path / "restored", tmp_path / "reference"
    _save(restored / "small.png", photos["restored/face"][:128])
    _save(reference / "small.png", photos["reference/face"])
    _save(restored / "orphan.png", photos["restored/face"])
    (restored / "broken.png").write_bytes(b"not an image")
    _save(restored / "twice.png", photos["restored/face"])
    _save(reference / "twice.png", photos["reference/face"])
    _save(reference / "twice.jpg", photos["reference/face"])
    other_face = _save(tmp_path / "other" / "face.png", photos["restored/face"])
    args = [str(restored), str(tmp_path / "missing.png"), str(other_face), "-r", str(reference), "--json"]
    result = _invoke(args)
    assert result.exit_code == 1
    assert [row["name"] for row in _json_lines(result.stdout)] == ["face", "noisy", "same"]
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 6, errors
    assert all(line.startswith("skipped ") for line in errors)
    text = "\n".join(errors)
    assert "twice.png: several references for twice" in text
    assert f"other/face.png: same name as {restored / 'face.png'}" in text
    assert "broken.png: not a readable image" in text
    assert "orphan.png: no reference named orphan.*" in text
    assert "small.png: size 256x128 differs from the reference" in text
    assert "missing.png: no such file" in text


def test_report_files(photos: dict[str, np.ndarray], tmp_path: Path) -> None:
    args = [str(tmp_path / "restored"), "-r", str(tmp_path / "reference"), "--metrics", "psnr,niqe"]
    result = _invoke([*args, "-o", str(tmp_path / "report.json")])
    assert result.exit_code == 0, result.stderr
    document = json.loads((tmp_path / "report.json").read_text())
    assert document["metrics"] == ["psnr", "niqe"] and document["skipped"] == []
    assert document["settings"]["crop_border"] == 0
    same = next(row for row in document["images"] if row["name"] == "same")
    assert same["psnr"] == "inf" and math.isfinite(same["niqe"])

    result = _invoke([*args, "-o", str(tmp_path / "report.csv")])
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO((tmp_path / "report.csv").read_text())))
    assert [row["name"] for row in rows] == ["face", "noisy", "same"]
    assert float(rows[2]["psnr"]) == math.inf and rows[2]["psnr_reason"] == ""

    result = _invoke([*args, "-o", str(tmp_path / "report.txt")])
    assert result.exit_code == 2 and ".json or .csv" in result.stderr


def test_grayscale_and_rgba_are_read_as_rgb(tmp_path: Path) -> None:
    rng = np.random.RandomState(3)
    gray = rng.randint(0, 256, (64, 64), dtype=np.uint8)
    rgba = rng.randint(0, 256, (64, 64, 4), dtype=np.uint8)
    _save(tmp_path / "restored" / "g.png", gray, "L")
    _save(tmp_path / "reference" / "g.png", np.repeat(gray[..., None], 3, axis=2))
    _save(tmp_path / "restored" / "a.png", rgba, "RGBA")
    _save(tmp_path / "reference" / "a.png", rgba[..., :3])
    result = _invoke([str(tmp_path / "restored"), "-r", str(tmp_path / "reference"), "--json",
                      "--metrics", "psnr,niqe"])
    assert result.exit_code == 0, result.stderr
    rows = _json_lines(result.stdout)
    assert [row["psnr"] for row in rows] == ["inf", "inf"]
    assert rows[0]["niqe"] is None and "fewer than two whole 96x96 blocks" in rows[0]["niqe_reason"]


def test_usage_errors(photos: dict[str, np.ndarray], tmp_path: Path) -> None:
    restored = str(tmp_path / "restored")
    no_reference = _invoke([restored, "--metrics", "psnr"])
    assert no_reference.exit_code == 2 and "--reference" in no_reference.stderr
    unknown = _invoke([restored, "--metrics", "psnr,sharpness", "-r", str(tmp_path / "reference")])
    assert unknown.exit_code == 2 and "sharpness" in unknown.stderr
    default = _invoke([restored, "--json"])  # no reference: NIQE only
    assert default.exit_code == 0
    assert all(set(row) == {"name", "niqe"} for row in _json_lines(default.stdout))
    if not torch.cuda.is_available():
        cuda = _invoke([restored, "--device", "cuda"])
        assert cuda.exit_code == 2 and "CUDA is not available" in cuda.stderr


def test_missing_niqe_parameters_warn_once(photos: dict[str, np.ndarray], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-mirror"
    empty.mkdir()
    store = weight_store.WeightStore(home=tmp_path / "home", mirror=empty, allow_download=False)
    monkeypatch.setattr(weight_store, "_default_store", store)
    monkeypatch.setattr(metrics_api, "_warned", set())
    naturalness._pristine_cpu.cache_clear()
    try:
        result = _invoke([str(tmp_path / "restored"), "--json"])
    finally:
        naturalness._pristine_cpu.cache_clear()
    assert result.exit_code == 0
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "niqe-pristine" in warnings[0]
    assert "  then run: mgan weights fetch niqe-pristine" in result.stderr.splitlines()
    rows = _json_lines(result.stdout)
    assert len(rows) == 3 and all(row["niqe"] is None for row in rows)


def test_exit_status_is_2_when_no_image_could_be_measured(photos: dict[str, np.ndarray], tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.png").write_bytes(b"not an image")
    (broken / "b.png").write_bytes(b"")
    result = _invoke([str(broken)])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("skipped")]
    assert len(lines) == 2 and all(line.count(str(broken)) == 1 for line in lines), lines  # the path once
    _save(broken / "c.png", photos["restored/face"])
    assert _invoke([str(broken)]).exit_code == 1  # some measured, some skipped
