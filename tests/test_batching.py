"""The batch-size policy (``--batch-size auto``), with a fake memory API: no GPU needed."""

from __future__ import annotations

import pytest

from mgan_cli.run.batching import MemoryProbe, choose_batch_size, probe_memory

GiB = 2**30


class FakeCuda:
    """A 141 GB device where the allocator holds ``reserved`` and hands out ``allocated`` of it."""

    def __init__(self, free: int, total: int, reserved: int, allocated: int) -> None:
        self.free, self.total, self.reserved, self.allocated = free, total, reserved, allocated
        self.asked: list[object] = []

    def mem_get_info(self, device=None):
        self.asked.append(device)
        return self.free, self.total

    def memory_reserved(self, device=None):
        return self.reserved

    def memory_allocated(self, device=None):
        return self.allocated


def test_free_memory_counts_what_the_allocator_has_cached() -> None:
    api = FakeCuda(free=40 * GiB, total=141 * GiB, reserved=60 * GiB, allocated=10 * GiB)
    probe = probe_memory(api, "cuda:1", baseline_allocated=1 * GiB, peak_allocated=3 * GiB)
    assert probe == MemoryProbe(per_image_bytes=2 * GiB, free_bytes=90 * GiB, total_bytes=141 * GiB)
    assert api.asked == ["cuda:1"]


def test_auto_grows_past_the_preset_on_cuda_capped_by_the_inputs() -> None:
    probe = MemoryProbe(per_image_bytes=1 * GiB, free_bytes=130 * GiB, total_bytes=141 * GiB)
    many = choose_batch_size(None, 2, 1000, "cuda", probe)  # default on CUDA: auto
    assert many.mode == "auto" and many.batch_size == int(0.85 * 130) and many.fits == int(0.85 * 130)
    few = choose_batch_size("auto", 2, 7, "cuda", probe)
    assert few.batch_size == 7 and few.limit == 7


def test_a_reserve_for_the_metrics_is_kept_out_of_the_batch() -> None:
    probe = MemoryProbe(per_image_bytes=1 * GiB, free_bytes=21 * GiB, total_bytes=24 * GiB)
    assert choose_batch_size("auto", 2, 100, "cuda", probe, headroom=1.0, reserve_bytes=5 * GiB).batch_size == 16


def test_fixed_and_preset_sizes_are_caps_the_probe_only_lowers() -> None:
    roomy = MemoryProbe(per_image_bytes=1 * GiB, free_bytes=100 * GiB, total_bytes=141 * GiB)
    tight = MemoryProbe(per_image_bytes=10 * GiB, free_bytes=30 * GiB, total_bytes=141 * GiB)
    assert choose_batch_size(4, 2, 100, "cuda", roomy).batch_size == 4
    assert choose_batch_size(4, 2, 100, "cuda", tight).batch_size == 2
    assert choose_batch_size(None, 8, 100, "cpu", None).batch_size == 8  # CPU default: the preset's size
    assert choose_batch_size(None, 8, 3, "cpu", None).batch_size == 3


def test_never_below_one_image_and_bad_values_are_errors() -> None:
    huge = MemoryProbe(per_image_bytes=200 * GiB, free_bytes=100 * GiB, total_bytes=141 * GiB)
    assert choose_batch_size("auto", 2, 10, "cuda", huge).batch_size == 1  # halving on OOM takes over
    assert choose_batch_size("auto", 2, 10, "cuda", None).batch_size == 2  # no probe: the preset's size
    with pytest.raises(ValueError):
        choose_batch_size(0, 2, 10, "cuda", None)
    with pytest.raises(ValueError):
        choose_batch_size("big", 2, 10, "cuda", None)


def test_the_header_carries_the_probe_numbers() -> None:
    probe = MemoryProbe(per_image_bytes=3 * GiB, free_bytes=100 * GiB, total_bytes=141 * GiB)
    header = choose_batch_size("auto", 2, 500, "cuda", probe).header()
    assert header["batch_size"] == 28 and header["batch_mode"] == "auto"
    assert header["probe_per_image_bytes"] == 3 * GiB and header["probe_free_bytes"] == 100 * GiB
