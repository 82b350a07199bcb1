"""One device parser for every command: auto, cpu, cuda, cuda:N; anything else is one clear error."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from mgan_cli.cli import main
from mgan_cli.errors import ConfigurationError
from mgan_cli.utils.devices import resolve_device


def test_names_parse_to_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ConfigurationError, match="only 2 CUDA device"):
        resolve_device("cuda:2")


@pytest.mark.parametrize("bad", ["tpu", "gpu", "cuda:x", "mps"])
def test_other_names_are_refused(bad: str) -> None:
    with pytest.raises(ConfigurationError, match="auto, cpu, cuda or cuda:N"):
        resolve_device(bad)


def test_cuda_without_cuda_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ConfigurationError, match="CUDA is not available"):
        resolve_device("cuda:1")


def test_metrics_accepts_cuda_n_like_the_tasks(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`mgan metrics --device cuda:1` reaches the device parser (it was refused as an invalid choice)."""
    from PIL import Image

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    Image.new("RGB", (64, 64), (120, 80, 40)).save(tmp_path / "face.png")
    runner = CliRunner()
    metrics = runner.invoke(main, ["metrics", str(tmp_path), "--device", "cuda:1"])
    invert = runner.invoke(main, ["invert", str(tmp_path), "--device", "cuda:1", "-o", str(tmp_path / "out")])
    assert metrics.exit_code == 2 and "CUDA is not available" in metrics.output, metrics.output
    assert "invalid choice" not in metrics.output
    assert invert.exit_code != 0 and "CUDA is not available" in invert.output, invert.output
