"""`mgan analyze`: the (layer, codes) grid, its files and plots, resuming, and the code contribution maps."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from mgan_cli.analysis.contributions import code_shares, colour_map, palette
from mgan_cli.analysis.sweep import pair_dir, pair_means, parse_codes, parse_layers
from mgan_cli.cli import main
from mgan_cli.core.composition import compose
from mgan_cli.errors import ConfigurationError
from mgan_cli.weights.loading import load_generator
from tests.helpers import celeba_face, psnr_uint8


def test_layer_and_code_lists() -> None:
    assert parse_layers("1-8", 8) == tuple(range(1, 9)) and parse_layers("4,2,2", 8) == (2, 4)
    assert parse_codes(None) == (1, 5, 10, 20, 30)
    for bad in ("0-2", "3-1", "x", "9"):
        with pytest.raises(ConfigurationError, match="--layers"):
            parse_layers(bad, 8)
    for bad in ("0", "a,b", ""):
        with pytest.raises(ConfigurationError, match="--codes"):
            parse_codes(bad)


def test_means_skip_missing_and_infinite_values() -> None:
    rows = [{"layer": 1, "codes": 2, "psnr": 20.0, "ssim": 0.5, "lpips": 0.2, "seconds": 1.0},
            {"layer": 1, "codes": 2, "psnr": float("inf"), "ssim": 0.7, "lpips": None, "seconds": 3.0},
            {"layer": 2, "codes": 2, "psnr": None, "ssim": None, "lpips": None, "seconds": None}]
    first, second = pair_means(rows)
    assert first == {"layer": 1, "codes": 2, "images": 1, "psnr": 20.0, "ssim": pytest.approx(0.6),
                     "lpips": 0.2, "seconds": 2.0}
    assert second["images"] == 0 and second["psnr"] is None


@pytest.fixture(scope="module")
def small_generator():
    return load_generator("dcgan32-celeba")


def test_shares_are_each_codes_part_of_the_composition(small_generator) -> None:
    rng = torch.Generator().manual_seed(3)
    codes = torch.randn(2, 3, 100, generator=rng)
    channels = small_generator.layer(2).shape[0]
    alphas = torch.rand(2, 3, channels, generator=rng)
    alphas[1, 1:] = 0.0  # image 1: only code 0 takes part in the composition
    shares = code_shares(small_generator, 2, "z", codes, alphas, 32)
    assert shares.shape == (2, 3, 32, 32)
    assert torch.allclose(shares.sum(dim=1), torch.ones(2, 32, 32), atol=1e-5)
    assert shares.min() >= 0 and torch.allclose(shares[1, 0], torch.ones(32, 32))
    # against the composition itself: each code's term |α_n F_n| summed over channels, at the layer's size
    lower, _ = small_generator.split(2, "z")
    with torch.no_grad():
        features = lower(codes[0])
        terms = [compose(features[n:n + 1][None], alphas[0, n:n + 1][None]) for n in range(3)]
    sizes = torch.stack([t[0].abs().sum(0) for t in terms])
    at_layer = code_shares(small_generator, 2, "z", codes[:1], alphas[:1], features.shape[-1])[0]
    assert torch.allclose(at_layer, sizes / sizes.sum(0), atol=1e-5)


def test_colour_map_takes_the_dominant_codes_colour() -> None:
    shares = np.zeros((3, 2, 2))
    shares[0, 0, 0] = shares[2, 1, 1] = 1.0
    shares[:, 0, 1] = shares[:, 1, 0] = 1 / 3
    colours = colour_map(shares)
    assert np.allclose(colours[0, 0], palette(3)[0]) and np.allclose(colours[1, 1], palette(3)[2])
    assert colours[0, 1].max() < colours[0, 0].max()  # an even split is drawn dark
    assert len({tuple(c) for c in palette(25)}) == 25


def _face_folder(shared_dir, tmp_path, count: int):
    """``tmp_path/faces`` holding the first ``count`` CelebA photos, cropped to 64×64 PNGs."""
    faces = tmp_path / "faces"
    faces.mkdir()
    for photo in sorted((shared_dir / "data" / "celeba64").glob("*.jpg"))[:count]:
        celeba_face(photo).save(faces / f"{photo.stem}.png")
    return faces


def test_analyze_runs_the_grid_writes_rows_means_plots_and_resumes(shared_dir, tmp_path) -> None:
    faces = _face_folder(shared_dir, tmp_path, 2)
    out = tmp_path / "analysis"
    args = ["analyze", str(faces), "-o", str(out), "--layers", "1-2", "--codes", "1,2", "--iterations", "2",
            "--device", "cpu", "--quiet", "--contributions", "2:2"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    document = json.loads((out / "analysis.json").read_text())
    assert document["layers"] == [1, 2] and document["codes"] == [1, 2]
    rows = document["rows"]
    assert len(rows) == 2 * 2 * 2 and {(r["layer"], r["codes"]) for r in rows} == {(1, 1), (1, 2), (2, 1), (2, 2)}
    for row in rows:  # each value is the PSNR of that pair's written output against the input
        output = pair_dir(out, row["layer"], row["codes"]) / Path(row["input"]).name
        expected = psnr_uint8(np.asarray(Image.open(output)), np.asarray(Image.open(row["input"])))
        assert row["psnr"] == pytest.approx(expected, abs=1e-6) and row["seconds"] > 0
    for mean in document["means"]:
        group = [r for r in rows if (r["layer"], r["codes"]) == (mean["layer"], mean["codes"])]
        assert mean["images"] == 2 and mean["lpips"] == pytest.approx(sum(r["lpips"] for r in group) / 2)
    csv_lines = (out / "analysis.csv").read_text().splitlines()
    assert csv_lines[0] == "input,layer,codes,status,psnr,ssim,lpips,seconds" and len(csv_lines) == 9
    for plot in ("quality_vs_codes.png", "quality_vs_layer.png"):
        with Image.open(out / plot) as image:
            assert image.format == "PNG" and image.width > 600
    maps = sorted((out / "contributions" / "layer2-codes2").glob("*.png"))
    assert len(maps) == 2
    shares = np.load(maps[0].with_suffix(".npz"))["shares"].astype(np.float32)
    assert shares.shape == (2, 64, 64) and np.allclose(shares.sum(0), 1, atol=1e-2)
    page = (out / "analysis.html").read_text(encoding="utf-8")
    links = re.findall(r'(?:href|src)="([^"]+)"', page)
    assert len(links) == 2 + 4 + 2  # two plots, four pairs' pages, two contribution maps
    assert all((out / unquote(link)).is_file() for link in links) and "runs/layer2-codes1/index.html" in links

    # an interrupted run: one image of one pair is missing; the rerun redoes only that one
    redo = pair_dir(out, 2, 1) / Path(rows[0]["input"]).name
    redo.unlink()
    kept = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*.png") if p != redo}
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert redo.is_file() and all(p.stat().st_mtime_ns == t for p, t in kept.items())
    again = json.loads((out / "analysis.json").read_text())["rows"]
    assert len(again) == 8
    assert [r["psnr"] for r in again if (r["layer"], r["codes"]) != (2, 1)] == \
        [r["psnr"] for r in rows if (r["layer"], r["codes"]) != (2, 1)]  # skipped images keep their results
    assert sum(r["status"] == "skipped" for r in again) == 7


def test_analyze_reports_bad_arguments_in_one_line(tmp_path) -> None:
    (tmp_path / "a.png").write_bytes(b"")
    result = CliRunner().invoke(main, ["analyze", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"),
                                       "--layers", "1-9", "--device", "cpu"])
    assert result.exit_code == 2 and "--layers: layer 5 is out of range 1..4" in result.output


def test_analyze_refuses_a_preset_that_cannot_run_before_writing_anything(tmp_path) -> None:
    (tmp_path / "a.png").write_bytes(b"")
    out = tmp_path / "o"
    result = CliRunner().invoke(main, ["analyze", str(tmp_path / "a.png"), "-o", str(out), "--task", "superres",
                                       "--scale", "7", "--layers", "2", "--codes", "1", "--device", "cpu"])
    assert result.exit_code == 2 and "--scale 7 does not divide" in result.output
    assert not out.exists()


def test_analyze_exits_2_when_every_input_fails_and_names_each_path_once(tmp_path) -> None:
    (tmp_path / "a.png").write_bytes(b"not an image")
    result = CliRunner().invoke(main, ["analyze", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--layers",
                                       "2", "--codes", "1", "--iterations", "1", "--device", "cpu", "--quiet"])
    assert result.exit_code == 2, result.output
    warning = next(line for line in result.stderr.splitlines() if "skipped" in line)
    assert warning.count(str(tmp_path / "a.png")) == 1, warning


def test_analyze_shards_split_the_images_of_every_pair_and_merge(shared_dir, tmp_path) -> None:
    """``--shard I/N``: each shard analyses its own share of the images for every pair, no image twice, and the
    last shard's ``analysis.json`` holds the rows of both."""
    faces = _face_folder(shared_dir, tmp_path, 4)
    out = tmp_path / "analysis"
    common = ["analyze", str(faces), "-o", str(out), "--layers", "2", "--codes", "1", "--iterations", "1",
              "--device", "cpu", "--quiet", "--perceptual-weight", "0"]
    made: list[set[str]] = []
    for shard in ("0/2", "1/2"):
        result = CliRunner().invoke(main, [*common, "--shard", shard], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        rows = json.loads((out / "analysis.json").read_text())["rows"]
        made.append({Path(r["input"]).name for r in rows} - set().union(*made))
    assert all(made) and made[0].isdisjoint(made[1])
    assert made[0] | made[1] == {p.name for p in faces.iterdir()}
    rows = json.loads((out / "analysis.json").read_text())["rows"]
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows)
