"""The `mgan directions` command: files, their contents, and refusing to overwrite."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from PIL import Image

from mgan_cli import directions
from mgan_cli.cli import main
from mgan_cli.generator_loading import load_generator


def test_directions_writes_vectors_metadata_and_a_preview(tmp_path: Path) -> None:
    out = tmp_path / "dirs"
    args = ["directions", "dcgan32-celeba", "--method", "sefa", "-n", "3", "--strengths", "-2,0,2",
            "--samples", "2", "-o", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    vectors = np.load(out / "sefa.npy")
    assert vectors.shape == (3, 100) and vectors.dtype == np.float32
    expected = directions.sefa(load_generator("dcgan32-celeba"), 3).vectors.numpy()
    assert np.allclose(vectors, expected)
    info = json.loads((out / "sefa.json").read_text())
    assert info["generator"] == "dcgan32-celeba" and info["space"] == "z" and len(info["values"]) == 3
    with Image.open(out / "sefa_preview.png") as preview:
        # 3 rows of 32 px with 2 px gaps; 2 samples × 3 strengths of 32 px, 2 px gaps, 8 px between samples
        assert preview.size == (2 * (3 * 32 + 2 * 2) + 8, 3 * 32 + 2 * 2)
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 2 and "already exist" in again.output


def test_directions_reports_bad_requests_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["directions", "dcgan32-celeba", "--method", "pca", "-o", str(tmp_path)])
    assert result.exit_code == 2 and "--layer" in result.output and "Traceback" not in result.output
