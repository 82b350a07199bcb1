"""Shards past one machine (issue 20): hosts that share an OUT never write the same database file, a node
that dies loses nothing finished, SLURM arrays take their share, and `mgan report OUT` merges every store."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mgan_cli.cli import main
from mgan_cli.run.sharding import Shard, take
from tests.helpers import celeba_photos

REPO = Path(__file__).resolve().parents[1]
FAST = ["--iterations", "2", "--codes", "2", "--device", "cpu", "--perceptual-weight", "0", "--batch-size", "1"]
SLOW = ["--iterations", "200", "--codes", "2", "--device", "cpu", "--perceptual-weight", "0", "--batch-size", "1"]


@pytest.fixture(scope="module")
def photos(shared_dir, tmp_path_factory) -> list[Path]:
    return celeba_photos(shared_dir, tmp_path_factory.mktemp("shard-photos"), 6)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    return {**env, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def on_host(host: str, *args: str) -> subprocess.Popen:
    """``mgan ARGS`` in a UTS namespace of its own whose host name is ``host``."""
    script = f'hostname {host} && exec "$0" -m mgan_cli "$@"'
    return subprocess.Popen(["unshare", "--user", "--map-root-user", "--uts", "sh", "-c", script, sys.executable,
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())


def _unshare_works() -> str | None:
    if shutil.which("unshare") is None:
        return "no unshare command"
    done = subprocess.run(["unshare", "--user", "--map-root-user", "--uts", "sh", "-c", "hostname probe && hostname"],
                          capture_output=True, text=True)
    return None if done.returncode == 0 and done.stdout.strip() == "probe" else f"unshare refused: {done.stderr!r}"


def store_hosts(out: Path) -> dict[str, set[str]]:
    """Per store file of OUT: the hosts its runs' headers name (opened read-only)."""
    hosts = {}
    for path in sorted((out / ".mgan").glob("runs-*.sqlite3")):
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            hosts[path.name] = {json.loads(h)["host"] for (h,) in db.execute("SELECT header FROM runs")}
        finally:
            db.close()
    return hosts


def assert_valid_views(out: Path) -> dict:
    report = json.loads((out / "report.json").read_text())
    assert report["summary"]["images"] == len(report["images"])
    with open(out / "report.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == len(report["images"])
    assert (out / "index.html").read_text().rstrip().endswith("</html>")
    return report


@pytest.mark.slow
def test_two_hosts_one_out_a_killed_shard_rerun_then_one_report(photos, tmp_path) -> None:
    reason = _unshare_works()
    if reason is not None:
        pytest.skip(reason)
    out = tmp_path / "out"
    common = [*map(str, photos), "-o", str(out), "--json", *SLOW]
    host_a = on_host("hosta", "invert", *common, "--shard", "0/2")
    host_b = on_host("hostb", "invert", *common, "--shard", "1/2")
    assert host_b.stdout is not None
    first = json.loads(host_b.stdout.readline())  # hostb finished one image: kill the node mid-run
    host_b.send_signal(signal.SIGKILL)
    host_b.communicate(timeout=60)
    _, a_err = host_a.communicate(timeout=600)
    assert host_a.returncode == 0, a_err[-2000:]
    share_b = take(photos, Shard(1, 2))
    assert len(share_b) > 1 and first["status"] == "ok"
    again = on_host("hostb", "invert", *common, "--shard", "1/2")
    b_out, b_err = again.communicate(timeout=600)
    assert again.returncode == 0, b_err[-2000:]
    statuses = {Path(line["input"]).name: line["status"] for line in map(json.loads, b_out.splitlines())}
    assert statuses == {p.name: "skipped" if p.name == Path(first["input"]).name else "ok" for p in share_b}
    assert CliRunner().invoke(main, ["report", str(out)]).exit_code == 0
    report = assert_valid_views(out)
    rows = {Path(r["input"]).name: r for r in report["images"]}
    assert sorted(Path(r["input"]).name for r in report["images"]) == sorted(p.name for p in photos)  # once each
    assert all(r["status"] in ("ok", "skipped") and r["psnr"] is not None for r in rows.values())
    assert rows[Path(first["input"]).name]["psnr"] == first["psnr"]  # finished before the kill: kept, not redone
    assert all((out / f"{p.stem}.png").is_file() for p in photos)
    # every database file was written by one host only
    assert store_hosts(out) == {"runs-hosta-0of2.sqlite3": {"hosta"}, "runs-hostb-1of2.sqlite3": {"hostb"}}


def test_a_slurm_array_task_takes_its_share_and_another_n_skips_everything(photos, tmp_path) -> None:
    out = tmp_path / "out"
    args = ["invert", *map(str, photos), "-o", str(out), "--json", *FAST]
    runner = CliRunner()
    done: dict[str, dict] = {}
    for task in (1, 0):
        env = {"SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_COUNT": "2", "WORLD_SIZE": None, "RANK": None}
        result = runner.invoke(main, args, env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        share = sorted(p.name for p in take(photos, Shard(task, 2)))
        assert sorted(Path(line["input"]).name for line in lines) == share
        done.update({Path(line["input"]).name: line for line in lines})
    header = json.loads((out / "report.json").read_text())
    assert header["shard"] == {"index": 0, "count": 2, "source": "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT"}
    for task in range(3):  # the whole array again with N = 3: every image finished, under N = 2
        env = {"SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_COUNT": "3", "WORLD_SIZE": None, "RANK": None}
        result = runner.invoke(main, args, env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        for line in map(json.loads, result.stdout.splitlines()):
            assert line["status"] == "skipped"
            assert line["psnr"] == done[Path(line["input"]).name]["psnr"]  # keeps its results
    rows = assert_valid_views(out)["images"]
    assert sorted(Path(r["input"]).name for r in rows) == sorted(p.name for p in photos)
    assert {r["status"] for r in rows} == {"skipped"}


def test_report_while_a_shard_runs_and_twice_in_a_row(photos, tmp_path) -> None:
    out = tmp_path / "out"
    env = _env()
    process = subprocess.Popen([sys.executable, "-m", "mgan_cli", "invert", *map(str, photos[:3]), "-o", str(out),
                                "--json", *SLOW], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None
    json.loads(process.stdout.readline())  # one image recorded, the others still running
    runner = CliRunner()
    seen = []
    for _ in range(2):
        result = runner.invoke(main, ["report", str(out)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        seen.append(len(assert_valid_views(out)["images"]))
    assert process.poll() is None, "the shard finished before the reports: nothing was tested"
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-2000:]
    assert 1 <= seen[0] <= seen[1] <= 3
    for _ in range(2):
        assert runner.invoke(main, ["report", str(out)], catch_exceptions=False).exit_code == 0
        report = assert_valid_views(out)
        assert len(report["images"]) == 3 and {r["status"] for r in report["images"]} == {"ok"}


def test_report_of_a_folder_without_a_store_is_one_line(tmp_path) -> None:
    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("mgan: error:") and "no run store" in result.stderr
