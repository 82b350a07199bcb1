"""The runner's batching policy: out-of-memory halves the batch and retries; nothing is lost."""

from __future__ import annotations

import torch

from mgan_cli.config.presets import apply_overrides, load_preset
from mgan_cli.config.tasks import TASKS
from mgan_cli.run import Job, RunEvents, Runner
from tests.helpers import celeba_face


def test_out_of_memory_halves_the_batch_and_retries(shared_dir, tmp_path, monkeypatch) -> None:
    inputs = []
    for photo in sorted((shared_dir / "data" / "celeba64").glob("*.jpg"))[:5]:
        path = tmp_path / f"{photo.stem}.png"
        celeba_face(photo).save(path)
        inputs.append(path)
    preset = apply_overrides(load_preset("dcgan64-invert"), iterations=1, codes=2, batch_size=4)
    warnings: list[str] = []
    runner = Runner(Job(TASKS.get("invert"), preset, inputs, tmp_path / "out"), RunEvents(on_warning=warnings.append))
    real_restore = runner.restorer.restore
    sizes: list[int] = []

    def tight_memory(observed, masks, seeds):
        sizes.append(len(observed))
        if len(observed) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_restore(observed, masks, seeds)

    monkeypatch.setattr(runner.restorer, "restore", tight_memory)
    records = runner.run()
    assert [r.status for r in records] == ["ok"] * 5
    assert sizes[:3] == [4, 2, 1] and all(size == 1 for size in sizes[3:])  # the smaller size is kept
    assert any("retrying with 2" in w for w in warnings) and any("retrying with 1" in w for w in warnings)
    assert len(list((tmp_path / "out").glob("*.png"))) == 5


def test_a_failing_metric_costs_metrics_never_the_output(shared_dir, tmp_path, monkeypatch) -> None:
    """An out-of-memory in the metrics (writer thread) is retried image by image; the image whose metrics
    still fail keeps its output, with null metrics and a reason; the run goes on."""
    from mgan_cli.run import sink

    inputs = []
    for photo in sorted((shared_dir / "data" / "celeba64").glob("*.jpg"))[:3]:
        path = tmp_path / f"{photo.stem}.png"
        celeba_face(photo).save(path)
        inputs.append(path)
    preset = apply_overrides(load_preset("dcgan64-invert"), iterations=1, codes=2, batch_size=3)
    warnings: list[str] = []
    runner = Runner(Job(TASKS.get("invert"), preset, inputs, tmp_path / "out", metrics=("psnr",)),
                    RunEvents(on_warning=warnings.append))
    real_measure = sink.measure
    calls = {"n": 0}

    def fragile_measure(outputs, references, names, device):
        calls["n"] += 1
        if outputs.shape[0] > 1 or calls["n"] == 3:  # the batch, then the second image alone
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_measure(outputs, references, names, device)

    monkeypatch.setattr(sink, "measure", fragile_measure)
    records = runner.run()
    assert [r.status for r in records] == ["ok"] * 3
    assert len(list((tmp_path / "out").glob("*.png"))) == 3
    failed = [r for r in records if r.metrics.get("psnr") is None]
    assert len(failed) == 1 and "OutOfMemoryError" in failed[0].metrics["psnr_reason"]
    assert all(isinstance(r.metrics["psnr"], float) for r in records if r is not failed[0])
    assert any("output kept, metrics null" in w for w in warnings)
