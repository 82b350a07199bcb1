"""``make gpu-check``: without CUDA it says so and writes nothing; with CUDA (simulated here) it runs its three
commands and appends device, commands, commit, date and results to BENCHMARKS.md."""

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


def test_its_commands_parse() -> None:
    """The benchmark and invert commands it runs are valid for those programs (parsed, not run)."""
    from bench.__main__ import parse_args
    from mgan_cli.cli import main

    args = parse_args(["--device", "cuda", *gpu_check.BENCH_ARGS, "--out", "x.md"])
    assert args.device == "cuda" and args.iterations >= 10
    invert = main.commands["invert"]
    context = invert.make_context("invert", ["examples/faces", "--device", "cuda", "-o", "out", "--overwrite",
                                             "--json"])
    assert context.params["device"] == "cuda"
    assert (gpu_check.REPO / "examples" / "faces").is_dir()
    assert sum(gpu_check.LIMITS.values()) <= 20 * 60 and gpu_check.LIMITS["bench"] <= 8 * 60


def test_with_cuda_it_records_every_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "NVIDIA H200 (simulated)")
    ran: list[list[str]] = []
    real_run = subprocess.run

    def fake_run(command, **kwargs):
        if command[:2] == ["git", "rev-parse"] or command[:2] == ["git", "status"]:
            return real_run(command, **kwargs)
        ran.append(list(command))
        if "pytest" in command:
            return subprocess.CompletedProcess(command, 0, "..\n2 passed, 1 deselected in 3.1s\n")
        if "invert" in command:
            rows = "\n".join(f'{{"input": "f{i}.png", "status": "ok", "psnr": {20 + i}, "seconds": 1.5}}'
                             for i in range(4))
            return subprocess.CompletedProcess(command, 0, rows + "\n")
        if "bench" in command:
            Path(command[command.index("--out") + 1]).write_text("### mgan vs reference loop — table\n| a |\n")
            raise subprocess.TimeoutExpired(command, 480)
        raise AssertionError(command)

    monkeypatch.setattr(gpu_check.subprocess, "run", fake_run)
    out = tmp_path / "BENCHMARKS.md"
    out.write_text("# Benchmarks\n")
    assert gpu_check.main(["--out", str(out)]) == 1  # the benchmark ran out of time
    assert [c[2] for c in ran] == ["pytest", "mgan_cli", "bench"] and "cuda" in ran[0] and "cuda" in ran[1]
    text = out.read_text()
    assert text.startswith("# Benchmarks\n")  # appended, nothing overwritten
    assert "## GPU check — NVIDIA H200 (simulated)" in text
    assert f"torch {torch.__version__}" in text and gpu_check.git_commit().split("+")[0] in text
    assert "| cuda tests | `python -m pytest -q -m cuda tests` | ok |" in text and "2 passed, 1 deselected" in text
    assert "4 of 4 images restored, mean PSNR 21.50 dB, 1.50 s per image" in text
    assert "| bench |" in text and "timed out after 480 s" in text
    assert "### mgan vs reference loop — table" in text
