"""``make gpu-check``: one command, at most 8 minutes on one H100/H200, aimed at what a first GPU run risks
(issue 19), and a record of what it measured.

On a machine with CUDA it runs, in order, each in its own process under a time limit (:data:`LIMITS`, which
sum to at most 8 minutes; start-up of the machine is not included):

1. ``reduce-overhead``: one StyleGAN2 batch with ``--compile reduce-overhead`` and early stopping
   (:mod:`bench.gpu_probes`; as are 2-5);
2. ``stylegan3-step``: StyleGAN3 seconds per step;
3. ``precision``: bf16 vs fp16 vs fp32 speed and PSNR on StyleGAN2-256 random weights;
4. ``auto-batch``: the ``--batch-size auto`` choice vs the largest batch that really runs;
5. ``metrics-oom``: a forced CUDA out-of-memory in the metrics (images restored, metrics null);
6. ``reference loop``: ``python -m bench --configs pggan256`` (PGGAN-256, ℓ = 8, N = 20): images per hour
   against the reference loop at equal final PSNR, achieved TFLOP/s and its share of the bf16 peak;
7. ``torchrun shards``: 2 processes on one GPU (``--device cuda:0``), each rank its own shard (no process group).

then appends one table to ``BENCHMARKS.md``: the device, torch and CUDA versions, the commit, the date, and
per step its command, outcome, wall time and result, followed by the benchmark's own tables. Without CUDA it
says so and exits 0 (nothing is run or written). The exit status is 1 when any step failed or ran out of time.

    python -m bench.gpu_check [--out BENCHMARKS.md] [--bench-args "--configs pggan256 --iterations 10"]
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
#: the reference-loop comparison of this check (``make bench`` runs every config, 50 steps, 4 images)
BENCH_ARGS = ("--configs", "pggan256", "--iterations", "20", "--images", "4", "--no-shipped")
#: the probes of :mod:`bench.gpu_probes`, in order
PROBES = ("reduce-overhead", "stylegan3-step", "precision", "auto-batch", "metrics-oom")
#: wall-clock limits in seconds per step; they sum to at most 8 minutes (a device check must fit ~15 minutes
#: of device time with the machine's start-up and a rerun)
LIMITS = {"reduce-overhead": 100, "stylegan3-step": 45, "precision": 75, "auto-batch": 45, "metrics-oom": 40,
          "reference loop": 120, "torchrun shards": 50}
TOTAL_LIMIT = 8 * 60


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


def probe_summary(stdout: str) -> str:
    """The ``result`` of a probe's JSON line."""
    rows = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    if not rows:
        raise ValueError("no result line")
    return str(rows[-1]["result"]).replace("|", "/")


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


def steps(tmp: Path, bench_args: str, bench_md: Path) -> list[Step]:
    """The commands of the check (see the module docstring)."""
    python = sys.executable
    probes = [Step(name, [python, "-m", "bench.gpu_probes", name, "--device", "cuda"]) for name in PROBES]
    inputs = REPO / "examples" / "faces"
    torchrun = [str(Path(python).with_name("torchrun")), "--standalone", "--nproc-per-node", "2", "-m", "mgan_cli",
                "invert", str(inputs), "-o", str(tmp / "torchrun"), "--overwrite", "--iterations", "5", "--codes",
                "4", "--device", "cuda:0", "--json"]
    return [*probes,
            Step("reference loop", [python, "-m", "bench", "--device", "cuda", *shlex.split(bench_args),
                                    "--out", str(bench_md)]),
            Step("torchrun shards", torchrun)]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu-check: no CUDA device on this machine; nothing to check (run `make gpu-check` where there is "
              "a GPU). Exit 0.")
        return 0
    device = torch.cuda.get_device_name(0)
    summaries = {name: probe_summary for name in PROBES}
    summaries.update({"reference loop": lambda out: "tables below", "torchrun shards": invert_summary})
    with tempfile.TemporaryDirectory(prefix="mgan-gpu-check-") as tmp:
        bench_md = Path(tmp) / "bench.md"
        planned = steps(Path(tmp), args.bench_args, bench_md)
        for step in planned:
            done = run_step(step, LIMITS[step.name])
            if done is not None:
                try:
                    step.result = summaries[step.name](done.stdout or "")
                except (ValueError, KeyError) as exc:  # a summary that cannot be read is not a failed step
                    step.result = f"(output not understood: {exc})"
            print(f"gpu-check: {step.name}: {step.outcome} in {step.seconds:.1f} s {step.result}", file=sys.stderr)
        tables = bench_md.read_text() if bench_md.is_file() else ""
        text = section(planned, device, tables)
    with args.out.open("a", encoding="utf-8") as handle:
        handle.write("\n" + text)
    print(text)
    print(f"gpu-check: appended to {args.out}", file=sys.stderr)
    return 0 if all(step.ok for step in planned) else 1


if __name__ == "__main__":
    sys.exit(main())
