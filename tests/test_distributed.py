"""torchrun on one host: every rank is a shard of its own (no process group, no collective), all recording
into one OUT; the views are the union."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mgan_cli.run.sharding import shard_of
from tests.helpers import celeba_face

REPO = Path(__file__).resolve().parents[1]


def test_no_process_group_is_joined() -> None:
    """The file pipeline needs no torch.distributed: a slow rank holds no other at a barrier."""
    source = (REPO / "mgan_cli" / "run" / "files.py").read_text()
    assert "torch.distributed" not in source and "barrier" not in source and "gather" not in source


@pytest.mark.slow
def test_torchrun_ranks_with_very_different_shares_both_finish(shared_dir, tmp_path) -> None:
    """Rank 0 gets one image, rank 1 five (names chosen by their shard): rank 0 finishes long before rank 1
    and exits without waiting in a collective; the last views hold every image once."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    photos = sorted((shared_dir / "data" / "celeba64").glob("*.jpg"))[:6]
    names = {0: [], 1: []}
    candidates = (f"img{i:03d}" for i in range(1000))
    while len(names[0]) < 1 or len(names[1]) < 5:
        name = next(candidates)
        rank = shard_of(f"{name}.png", 2)
        if len(names[rank]) < (1 if rank == 0 else 5):
            names[rank].append(name)
    for photo, name in zip(photos, names[0] + names[1], strict=True):
        celeba_face(photo).save(inputs / f"{name}.png")
    out = tmp_path / "out"
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [str(torchrun), "--standalone", "--nproc-per-node", "2", "-m", "mgan_cli", "invert", str(inputs),
               "-o", str(out), "--iterations", "2", "--codes", "2", "--device", "cpu", "--json",
               "--batch-size", "1", "--perceptual-weight", "0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "Timeout" not in first.stderr and "Traceback" not in first.stderr
    report = json.loads((out / "report.json").read_text())
    reported = sorted(Path(row["input"]).stem for row in report["images"])
    assert reported == sorted(names[0] + names[1])  # every input exactly once, from both ranks
    assert all(row["status"] == "ok" for row in report["images"])
    shards = {(run["shard"]["index"], run["shard"]["count"], run["shard"]["source"]) for run in report["runs"]}
    assert shards == {(0, 2, "torchrun RANK/WORLD_SIZE"), (1, 2, "torchrun RANK/WORLD_SIZE")}
    assert sorted(p.name for p in (out / ".mgan").glob("runs-*.sqlite3")) == sorted(
        f"runs-{report['runs'][0]['host']}-{i}of2.sqlite3" for i in range(2))
    assert len(first.stdout.splitlines()) == 6  # one JSON line per image, from both ranks
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    rerun = json.loads((out / "report.json").read_text())
    assert sorted(row["status"] for row in rerun["images"]) == ["skipped"] * 6
    assert {Path(r["input"]).stem: r["psnr"] for r in rerun["images"]} == {
        Path(r["input"]).stem: r["psnr"] for r in report["images"]}
