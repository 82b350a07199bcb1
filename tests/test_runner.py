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
