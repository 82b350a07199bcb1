"""``make gpu-check``: without CUDA it says so and writes nothing; with CUDA (simulated here) it runs its probes,
the reference-loop comparison and a torchrun, within 8 minutes, and appends one table to BENCHMARKS.md."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

from bench import gpu_check


def test_without_cuda_it_says_so_and_exits_0(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "BENCHMARKS.md"
    assert gpu_check.main(["--out", str(out)]) == 0
    assert "no CUDA device" in capsys.readouterr().out
    assert not out.exists()


def test_its_commands_parse_and_fit_in_eight_minutes(tmp_path: Path) -> None:
    """The benchmark, probe and invert commands it runs are valid for those programs (parsed, not run)."""
    from bench.__main__ import parse_args
    from bench.gpu_probes import PROBES
    from mgan_cli.cli import main

    args = parse_args(["--device", "cuda", *gpu_check.BENCH_ARGS, "--out", "x.md"])
    assert args.device == "cuda" and args.configs == "pggan256" and args.iterations >= 10
    planned = gpu_check.steps(tmp_path, " ".join(gpu_check.BENCH_ARGS), tmp_path / "b.md")
    assert [s.name for s in planned] == [*gpu_check.PROBES, "reference loop", "torchrun shards"]
    assert set(gpu_check.PROBES) == set(PROBES)
    torchrun = planned[-1].command
    invert = main.commands["invert"]
    context = invert.make_context("invert", torchrun[torchrun.index("invert") + 1:])
    assert context.params["device"] == "cuda:0"  # both ranks on the one GPU
    assert set(gpu_check.LIMITS) == {s.name for s in planned}
    assert sum(gpu_check.LIMITS.values()) <= gpu_check.TOTAL_LIMIT == 8 * 60


def test_with_cuda_it_records_every_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "NVIDIA H200 (simulated)")
    ran: list[list[str]] = []
    real_run = subprocess.run

    def fake_run(command, **kwargs):
        if command[:2] == ["git", "rev-parse"] or command[:2] == ["git", "status"]:
            return real_run(command, **kwargs)
        ran.append(list(command))
        if "bench.gpu_probes" in command:
            name = command[command.index("bench.gpu_probes") + 1]
            if name == "metrics-oom":
                return subprocess.CompletedProcess(command, 1, '{"probe": "metrics-oom", "ok": false, '
                                                               '"result": "2 of 3 restored"}\n')
            return subprocess.CompletedProcess(command, 0, f'{{"probe": "{name}", "ok": true, "result": "r-{name}"}}\n')
        if "invert" in command:
            rows = "\n".join(f'{{"input": "f{i}.png", "status": "ok", "psnr": {20 + i}, "seconds": 1.5}}'
                             for i in range(4))
            return subprocess.CompletedProcess(command, 0, rows + "\n")
        if "bench" in command:
            Path(command[command.index("--out") + 1]).write_text("### mgan vs reference loop — table\n| a |\n")
            raise subprocess.TimeoutExpired(command, 120)
        raise AssertionError(command)

    monkeypatch.setattr(gpu_check.subprocess, "run", fake_run)
    out = tmp_path / "BENCHMARKS.md"
    out.write_text("# Benchmarks\n")
    assert gpu_check.main(["--out", str(out)]) == 1  # a probe failed and the benchmark ran out of time
    assert len(ran) == len(gpu_check.LIMITS)
    text = out.read_text()
    assert text.startswith("# Benchmarks\n")  # appended, nothing overwritten
    assert "## GPU check — NVIDIA H200 (simulated)" in text
    assert f"torch {torch.__version__}" in text and gpu_check.git_commit().split("+")[0] in text
    assert "| reduce-overhead |" in text and "r-reduce-overhead" in text and "r-auto-batch" in text
    assert "| metrics-oom |" in text and "failed (exit 1)" in text and "2 of 3 restored" in text
    assert "| reference loop |" in text and "timed out after 120 s" in text
    assert "4 of 4 images restored, mean PSNR 21.50 dB" in text
    assert "### mgan vs reference loop — table" in text


def test_a_probe_runs_on_the_cpu_in_smoke_size(capsys) -> None:
    """The probes' code runs (tiny generators, CPU); on the GPU the same code measures."""
    from bench import gpu_probes

    assert gpu_probes.main(["stylegan3-step", "--device", "cpu", "--smoke"]) == 0
    assert '"ok": true' in capsys.readouterr().out
