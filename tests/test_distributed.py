"""Scale-out: ``torchrun`` with 2 CPU processes (gloo) shards the inputs and merges one report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mgan_cli.run.distributed import Ranks, shard
from tests.helpers import celeba_face


def test_shards_cover_every_stem_once_and_keep_equal_stems_together() -> None:
    paths = [Path(f"in/{name}") for name in ("a.png", "b.png", "a.jpg", "c.png", "d.png")]
    shards = [shard(paths, Ranks(rank, 2, rank)) for rank in range(2)]
    assert sorted(p for part in shards for p in part) == sorted(paths)
    assert any({Path("in/a.png"), Path("in/a.jpg")} <= set(part) for part in shards)


@pytest.mark.slow
def test_torchrun_two_processes_merge_one_report(shared_dir, tmp_path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    photos = sorted((shared_dir / "data" / "celeba64").glob("*.jpg"))[:5]
    for photo in photos:
        celeba_face(photo).save(inputs / f"{photo.stem}.png")
    out = tmp_path / "out"
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [str(torchrun), "--standalone", "--nproc-per-node", "2", "-m", "mgan_cli", "invert", str(inputs),
               "-o", str(out), "--iterations", "2", "--codes", "2", "--device", "cpu", "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["processes"] == 2
    reported = [Path(row["input"]).stem for row in report["images"]]
    assert sorted(reported) == sorted(p.stem for p in photos)  # every input exactly once
    assert all(row["status"] == "ok" for row in report["images"])
    assert len(first.stdout.splitlines()) == 5  # one JSON line per image, from both ranks
    made_by: dict[int, set[str]] = {}  # each rank recorded its own run and the images of its shard, once
    for row in report["images"]:
        made_by.setdefault(row["run"], set()).add(Path(row["input"]).stem)
    stems = sorted(p.stem for p in photos)
    assert sorted(made_by.values(), key=sorted) == [set(stems[0::2]), set(stems[1::2])]
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    rerun = json.loads((out / "report.json").read_text())
    assert [row["status"] for row in rerun["images"]] == ["skipped"] * 5
    assert [row["psnr"] for row in rerun["images"]] == [row["psnr"] for row in report["images"]]


def test_gpu_ranks_use_gloo_and_bind_their_own_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rank 1 of a CUDA job makes GPU 1 current before joining a gloo group (NCCL without a bound device
    puts every rank's object collectives on GPU 0)."""
    import torch
    import torch.distributed as dist

    from mgan_cli.run import distributed

    calls: list[tuple[str, object]] = []
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group",
                        lambda backend, **kwargs: calls.append(("init", backend)))
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: calls.append(("set_device", torch.device(device))))
    ranks = Ranks(1, 2, 1)
    device = distributed.device_for(ranks, torch.device("cuda"))
    assert device == torch.device("cuda", 1)
    distributed.start(ranks, device)
    assert calls == [("set_device", torch.device("cuda", 1)), ("init", "gloo")]
    calls.clear()
    distributed.start(Ranks(0, 2, 0), torch.device("cpu"))
    assert calls == [("init", "gloo")]  # a CPU rank touches no CUDA state
    calls.clear()
    distributed.start(Ranks(), torch.device("cuda"))
    assert calls == []  # a single process joins nothing
