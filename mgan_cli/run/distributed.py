"""Scale-out with ``torchrun``: shard the inputs across ranks; every rank records into the one run store.

``torchrun --nproc-per-node G [--nnodes …] -m mgan_cli invert in/ -o out/`` starts G processes with
``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set. Each rank takes every G-th *file stem* (so two inputs that
would write the same output always meet on one rank), uses GPU ``LOCAL_RANK`` (NCCL) or the CPU (gloo),
writes its own images and records each one in ``OUT/.mgan/`` (:mod:`mgan_cli.run.store`, which does the
locking); rank 0 keeps ``report.json``/``report.csv`` current and writes them once more after every rank
is done. A rerun resumes like a single-process run (finished outputs are skipped and keep their results).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Ranks:
    """This process's place in the job (``world_size`` 1 when not started by torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def from_environment() -> Ranks:
    """Ranks from torchrun's environment variables (a single process when they are absent)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Ranks()
    return Ranks(int(os.environ.get("RANK", "0")), world_size, int(os.environ.get("LOCAL_RANK", "0")))


def start(ranks: Ranks, device: torch.device) -> None:
    """Join the process group: NCCL when this rank works on a GPU, gloo on CPU."""
    if ranks.distributed and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(hours=12))


def device_for(ranks: Ranks, device: torch.device) -> torch.device:
    """Each rank of a multi-GPU job uses GPU ``LOCAL_RANK`` when the job asked for CUDA."""
    if ranks.distributed and device.type == "cuda" and device.index is None:
        return torch.device("cuda", ranks.local_rank)
    return device


def shard(paths: Sequence[Path], ranks: Ranks) -> list[Path]:
    """The inputs this rank handles: file stems in sorted order, every ``world_size``-th one."""
    if not ranks.distributed:
        return list(paths)
    stems = sorted({p.stem for p in paths})
    mine = set(stems[ranks.rank::ranks.world_size])
    return [p for p in paths if p.stem in mine]


def gather(rows: list[dict[str, Any]], ranks: Ranks) -> list[dict[str, Any]]:
    """Every rank's rows, on every rank (in rank order)."""
    if not ranks.distributed:
        return rows
    gathered: list[list[dict[str, Any]] | None] = [None] * ranks.world_size
    dist.all_gather_object(gathered, rows)
    return [row for part in gathered for row in (part or [])]


def stop(ranks: Ranks) -> None:
    if ranks.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ranks: Ranks) -> None:
    """Wait until every rank got here (all records are then in the run store)."""
    if ranks.distributed and dist.is_initialized():
        dist.barrier()
