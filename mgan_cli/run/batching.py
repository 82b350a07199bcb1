"""How many images to optimise at once: a pure policy over a memory probe's numbers (no device calls).

On CUDA the default is ``--batch-size auto``: as many images as the probe says fit, capped only by the
number of inputs (a 141 GB H200 holds far more than a preset's CPU-sized ``batch_size``). Free memory
counts what the caching allocator holds but has not handed out (``mem_get_info``'s free + reserved −
allocated), and a reserve is kept for what runs beside the optimisation (the metrics on the writer thread,
the allocator's fragmentation: ``headroom``). Elsewhere, and with an explicit ``--batch-size N``, the
preset's (or the given) size is an upper bound the probe can only lower.

:func:`choose_batch_size` is the policy; :func:`probe_memory` reads the numbers from a memory API (the real
``torch.cuda`` or a fake one in tests).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

import torch

#: the ``--batch-size`` value that sizes the batch from the memory probe
AUTO = "auto"


class MemoryApi(Protocol):
    """The part of ``torch.cuda`` the probe reads (a fake in tests)."""

    def mem_get_info(self, device: Any = None) -> tuple[int, int]: ...

    def memory_reserved(self, device: Any = None) -> int: ...

    def memory_allocated(self, device: Any = None) -> int: ...


@dataclass(frozen=True)
class MemoryProbe:
    """What the one-image probe measured: ``per_image_bytes`` (its peak minus what was allocated before),
    ``free_bytes`` (device free + allocator-cached-but-unallocated), ``total_bytes`` of the device."""

    per_image_bytes: int
    free_bytes: int
    total_bytes: int


@dataclass(frozen=True)
class BatchChoice:
    """The batch size chosen and why (goes into the report header: :meth:`header`)."""

    batch_size: int
    mode: str  # "auto", "fixed" or "preset"
    limit: int  # the cap that applied: number of inputs (auto) or the requested/preset size
    fits: int | None  # images that fit by the probe (None: no probe, e.g. on the CPU)
    probe: MemoryProbe | None
    reserve_bytes: int = 0

    def header(self) -> dict[str, Any]:
        """The numbers for the run report's header."""
        row: dict[str, Any] = {"batch_size": self.batch_size, "batch_mode": self.mode, "batch_limit": self.limit,
                               "batch_fits": self.fits, "batch_reserve_bytes": self.reserve_bytes}
        if self.probe is not None:
            row.update({f"probe_{key}": value for key, value in asdict(self.probe).items()})
        return row


def probe_memory(api: MemoryApi, device: Any, baseline_allocated: int, peak_allocated: int) -> MemoryProbe:
    """The probe's numbers: per image = ``peak_allocated - baseline_allocated`` of a one-image run; free =
    the device's free memory plus what the allocator has reserved but not allocated (it reuses that first)."""
    free, total = api.mem_get_info(device)
    cached = max(0, api.memory_reserved(device) - api.memory_allocated(device))
    return MemoryProbe(max(0, peak_allocated - baseline_allocated), free + cached, total)


def choose_batch_size(requested: int | str | None, preset_batch_size: int, inputs: int, device_type: str,
                      probe: MemoryProbe | None, headroom: float = 0.85, reserve_bytes: int = 0) -> BatchChoice:
    """The batch size for a run of ``inputs`` images.

    requested: ``"auto"``, an explicit size, or ``None`` (the default: ``auto`` on CUDA, the preset's size
    elsewhere). With a probe, ``headroom`` × (free − ``reserve_bytes``) bounds the batch; ``auto`` is capped
    only by ``inputs``; a fixed or preset size is a cap the probe can only lower. Always ≥ 1.

    >>> probe = MemoryProbe(per_image_bytes=2**30, free_bytes=100 * 2**30, total_bytes=141 * 2**30)
    >>> choose_batch_size(None, 2, 500, "cuda", probe).batch_size
    85
    >>> choose_batch_size(None, 2, 500, "cpu", None).batch_size
    2
    """
    if requested is None:
        requested = AUTO if device_type == "cuda" else preset_batch_size
    inputs = max(1, inputs)
    if requested == AUTO:
        mode, limit = "auto", inputs
    elif isinstance(requested, int) and not isinstance(requested, bool) and requested >= 1:
        mode = "fixed" if requested != preset_batch_size else "preset"
        limit = min(requested, inputs)
    else:
        raise ValueError(f"batch size must be {AUTO!r} or a positive integer, got {requested!r}")
    fits = None
    if probe is not None:
        usable = max(0, probe.free_bytes - reserve_bytes)
        fits = int(headroom * usable // probe.per_image_bytes) if probe.per_image_bytes > 0 else limit
        fits = max(1, fits)
    elif mode == "auto":  # nothing measured: the preset's size is the safe choice
        limit = min(max(1, preset_batch_size), inputs)
    size = max(1, min(limit, fits if fits is not None else limit))
    return BatchChoice(size, mode, limit, fits, probe, reserve_bytes)


def cuda_memory_api() -> MemoryApi:
    """The real memory API."""
    return torch.cuda  # type: ignore[return-value]
