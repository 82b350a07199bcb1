"""Scale-out with ``torchrun``: shard the inputs across ranks; every rank records into the one run store.

``torchrun --nproc-per-node G [--nnodes …] -m mgan_cli invert in/ -o out/`` starts G processes with
``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set. Each rank takes every G-th *file stem* (so two inputs that
would write the same output always meet on one rank), uses GPU ``LOCAL_RANK`` or the CPU, writes its own
images and records each one in ``OUT/.mgan/`` (:mod:`mgan_cli.run.store`, which does the locking); rank 0
keeps ``report.json``/``report.csv`` current and writes them once more after every rank is done.
A rerun resumes like a single-process run (finished outputs are skipped and keep their results).

The process group is always **gloo**, on GPUs too: the ranks only exchange small Python objects (status
rows, a barrier), which gloo carries over CPU tensors. NCCL would add nothing and, without a bound device,
puts every rank's object collective on GPU 0 ("Duplicate GPU detected" or a hang). Each GPU rank also makes
its own GPU the current CUDA device (``torch.cuda.set_device``), so nothing that defaults to the current
device lands on GPU 0.
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


#: the process-group backend on every device (see the module docstring)
BACKEND = "gloo"


def start(ranks: Ranks, device: torch.device) -> None:
    """Join the (gloo) process group; a rank working on a GPU first makes ``device`` its current CUDA device."""
    if not ranks.distributed:
        return
    if device.type == "cuda":
        torch.cuda.set_device(device if device.index is not None else torch.device("cuda", ranks.local_rank))
    if not dist.is_initialized():
        dist.init_process_group(BACKEND, timeout=datetime.timedelta(hours=12))


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
