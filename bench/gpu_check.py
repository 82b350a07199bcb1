"""``make gpu-check``: one command that proves the GPU path, and records what it measured.

On a machine with CUDA it runs, in order, each under a time limit:

1. the ``cuda``-marked tests (``pytest -m cuda``);
2. ``mgan invert examples/faces --device cuda`` (the default preset; about a minute at most);
3. ``python -m bench --device cuda`` at a size that finishes in under 8 minutes on one H100/H200
   (:data:`BENCH_ARGS`: every config, fewer timed steps and images than ``make bench``);

then appends a section to ``BENCHMARKS.md``: the device, torch and CUDA versions, the commit, the date, and per
step its command, outcome, wall time and result, followed by the benchmark's own tables. Without CUDA it says
so and exits 0 (nothing is run or written). The exit status is 1 when any step failed or ran out of time.

    python -m bench.gpu_check [--out BENCHMARKS.md] [--bench-args "--configs dcgan64 --iterations 10"]
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
#: the benchmark's size for this check (``make bench`` uses 50 steps and 4 images)
BENCH_ARGS = ("--iterations", "20", "--images", "2")
#: wall-clock limits in seconds: the cuda tests, the example inversion, the benchmark
LIMITS = {"cuda tests": 600, "invert": 120, "bench": 480}


@dataclass
class Step:
    """One command of the check and what came of it."""

    name: str
    command: list[str]
    outcome: str = "not run"
    seconds: float = 0.0
    result: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


def run_step(step: Step, limit: float) -> subprocess.CompletedProcess[str] | None:
    """Run ``step.command`` from the repository root (stdout captured, stderr shown live)."""
    print(f"gpu-check: {step.name}: {shlex.join(step.command)}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    try:
        done = subprocess.run(step.command, cwd=REPO, stdout=subprocess.PIPE, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        step.seconds, step.outcome = time.perf_counter() - start, f"timed out after {limit:.0f} s"
        return None
    step.seconds = time.perf_counter() - start
    step.outcome = "ok" if done.returncode == 0 else f"failed (exit {done.returncode})"
    return done


def pytest_summary(stdout: str) -> str:
    """The last line of pytest's summary (``3 passed, 1 skipped in 4.2s``)."""
    lines = [line.strip(" =") for line in stdout.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def invert_summary(stdout: str) -> str:
    """Images restored and their mean PSNR / seconds from ``mgan invert --json`` lines."""
    rows = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    done = [row for row in rows if row.get("status") == "ok"]
    psnr = [row["psnr"] for row in done if isinstance(row.get("psnr"), int | float)]
    seconds = [row["seconds"] for row in done if isinstance(row.get("seconds"), int | float)]
    text = f"{len(done)} of {len(rows)} images restored"
    if psnr:
        text += f", mean PSNR {sum(psnr) / len(psnr):.2f} dB"
    if seconds:
        text += f", {sum(seconds) / len(seconds):.2f} s per image"
    return text


def git_commit() -> str:
    """``HEAD``'s short hash, ``+dirty`` when the working tree has changes."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def section(steps: Sequence[Step], device: str, bench_tables: str) -> str:
    """The markdown appended to BENCHMARKS.md."""
    now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    lines = [
        f"## GPU check — {device}",
        "",
        f"`make gpu-check` (`python -m bench.gpu_check`), commit {git_commit()}, {now}, torch {torch.__version__}, "
        f"CUDA {torch.version.cuda}",
        "",
        "| step | command | outcome | wall s | result |",
        "|---|---|---|---:|---|",
    ]
    for step in steps:
        command = shlex.join(step.command).replace(sys.executable, "python").replace("|", "\\|")
        lines.append(f"| {step.name} | `{command}` | {step.outcome} | {step.seconds:.1f} | {step.result} |")
    lines.append("")
    if bench_tables:
        lines += [bench_tables.rstrip(), ""]
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md", help="append the results here")
    parser.add_argument("--bench-args", default=shlex.join(BENCH_ARGS),
                        help=f"arguments of the benchmark step besides --device (default: {shlex.join(BENCH_ARGS)})")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu-check: no CUDA device on this machine; nothing to check (run `make gpu-check` where there is "
              "a GPU). Exit 0.")
        return 0
    device = torch.cuda.get_device_name(0)
    with tempfile.TemporaryDirectory(prefix="mgan-gpu-check-") as tmp:
        bench_md = Path(tmp) / "bench.md"
        tests = Step("cuda tests", [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "tests"])
        invert = Step("invert", [sys.executable, "-m", "mgan_cli", "invert", "examples/faces", "--device", "cuda",
                                 "-o", str(Path(tmp) / "invert"), "--overwrite", "--json"])
        bench = Step("bench", [sys.executable, "-m", "bench", "--device", "cuda", *shlex.split(args.bench_args),
                               "--out", str(bench_md)])
        summaries = {"cuda tests": pytest_summary, "invert": invert_summary,
                     "bench": lambda out: "tables below"}
        for step in (tests, invert, bench):
            done = run_step(step, LIMITS[step.name])
            if done is not None:
                try:
                    step.result = summaries[step.name](done.stdout or "")
                except (ValueError, KeyError) as exc:  # a summary that cannot be read is not a failed step
                    step.result = f"(output not understood: {exc})"
            print(f"gpu-check: {step.name}: {step.outcome} in {step.seconds:.1f} s {step.result}", file=sys.stderr)
        tables = bench_md.read_text() if bench_md.is_file() else ""
        text = section((tests, invert, bench), device, tables)
    with args.out.open("a", encoding="utf-8") as handle:
        handle.write("\n" + text)
    print(text)
    print(f"gpu-check: appended to {args.out}", file=sys.stderr)
    return 0 if all(step.ok for step in (tests, invert, bench)) else 1


if __name__ == "__main__":
    sys.exit(main())
