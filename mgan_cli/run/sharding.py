"""Shards: which part of the inputs this process restores, so that any scheduler can run a folder in pieces.

The inputs form a *manifest*: every input, sorted by the output it writes (``<stem>.png``) and then by path.
Each input belongs to shard ``sha256(output name) mod N``, so inputs that would write the same output always
meet on one shard (the planner then reports the clash), the shards' union is the manifest and no two shards
overlap, and an input's shard does not depend on which other files a node happened to see (a file that
arrives while an array runs lands on exactly one shard).

Where the shard comes from (:func:`from_environment`), first match wins:

1. ``--shard I/N``;
2. a SLURM job array: ``SLURM_ARRAY_TASK_ID`` within ``SLURM_ARRAY_TASK_MIN``..``MAX`` (a contiguous range,
   as ``--array=0-15`` or ``--array=1-16``), or with ``SLURM_ARRAY_TASK_COUNT`` alone (ids from 0);
3. torchrun's ``RANK``/``WORLD_SIZE``;
4. 0/1 (everything).

Under torchrun, each rank splits the shard of 1. or 2. again: rank r of W takes shard ``I + N·r`` of ``N·W``,
whose union over the ranks is exactly shard I of N (``h mod N·W ≡ h mod N`` modulo N). Each rank works on GPU
``LOCAL_RANK`` and needs no process group. The report header records the shard and where it came from.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from mgan_cli.errors import ConfigurationError


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based), where that came from (``source``) and torchrun's
    ``local_rank`` (None outside torchrun)."""

    index: int = 0
    count: int = 1
    source: str = "default"
    local_rank: int | None = None
    rank: int = 0  # torchrun's RANK (0 outside torchrun)

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ConfigurationError(f"shard {self.index}/{self.count}: need 0 <= I < N")

    @property
    def label(self) -> str:
        """``"3of16"``: how store files name the shard."""
        return f"{self.index}of{self.count}"

    @property
    def is_main(self) -> bool:
        """The process that shows progress on a shared terminal (torchrun's rank 0; any other process)."""
        return self.rank == 0

    def header(self) -> dict[str, object]:
        return {"index": self.index, "count": self.count, "source": self.source}


_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(text: str) -> tuple[int, int]:
    """``"3/16"`` -> ``(3, 16)``; raises :class:`ConfigurationError` for anything else.

    >>> parse_shard("3/16")
    (3, 16)
    """
    match = _SHARD.match(text)
    if match is None:
        raise ConfigurationError(f"--shard {text!r}: give I/N, e.g. 3/16 (shard I of N, counting from 0)")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or index >= count:
        raise ConfigurationError(f"--shard {text}: I must be at least 0 and less than N (0/{max(count, 1)} .. "
                                 f"{max(count, 1) - 1}/{max(count, 1)})")
    return index, count


def _integer(environ: Mapping[str, str], name: str) -> int | None:
    value = environ.get(name)
    if value is None or value.strip() == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigurationError(f"{name}={value!r} is not a whole number") from None


def _slurm(environ: Mapping[str, str]) -> tuple[int, int, str] | None:
    task = _integer(environ, "SLURM_ARRAY_TASK_ID")
    if task is None:
        return None
    low, high = _integer(environ, "SLURM_ARRAY_TASK_MIN"), _integer(environ, "SLURM_ARRAY_TASK_MAX")
    count = _integer(environ, "SLURM_ARRAY_TASK_COUNT")
    if low is not None and high is not None:
        if count is not None and count != high - low + 1:
            raise ConfigurationError(
                f"SLURM array task {task}: the array ({count} tasks from {low} to {high}) is not a contiguous range, "
                "so its index does not say which shard this is; pass --shard I/N (e.g. when resubmitting failed "
                "indices: --shard $SLURM_ARRAY_TASK_ID/N with the first array's N)")
        return task - low, high - low + 1, "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_MIN..MAX"
    if count is not None:
        if task >= count:
            raise ConfigurationError(f"SLURM_ARRAY_TASK_ID={task} is not below SLURM_ARRAY_TASK_COUNT={count}; "
                                     "pass --shard I/N")
        return task, count, "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT"
    raise ConfigurationError("SLURM_ARRAY_TASK_ID is set without SLURM_ARRAY_TASK_COUNT or _MIN/_MAX; "
                             "pass --shard I/N")


def from_environment(explicit: str | None = None, environ: Mapping[str, str] | None = None) -> Shard:
    """This process's shard (see the module docstring); ``explicit`` is ``--shard``'s text."""
    environ = os.environ if environ is None else environ
    world = _integer(environ, "WORLD_SIZE") or 1
    rank = (_integer(environ, "RANK") or 0) if world > 1 else 0
    local_rank = (_integer(environ, "LOCAL_RANK") or 0) if world > 1 else None
    if world > 1 and not 0 <= rank < world:
        raise ConfigurationError(f"RANK={rank} is not below WORLD_SIZE={world}")
    if explicit is not None:
        index, count = parse_shard(explicit)
        source = "--shard"
    elif (slurm := _slurm(environ)) is not None:
        index, count, source = slurm
        if not 0 <= index < count:
            raise ConfigurationError(f"SLURM array task {index} is outside its array of {count}; pass --shard I/N")
    else:
        index, count, source = 0, 1, "default"
    if world > 1:  # each torchrun rank takes its part of that shard (see the module docstring)
        index, count = index + count * rank, count * world
        source = "torchrun RANK/WORLD_SIZE" if source == "default" else f"{source} × torchrun RANK/WORLD_SIZE"
    return Shard(index, count, source, local_rank, rank)


def output_name(path: Path) -> str:
    """The file name an input writes in ``OUT`` (what the shard is decided by)."""
    return f"{path.stem}.png"


def shard_of(name: str, count: int) -> int:
    """The shard of the output ``name`` among ``count`` (stable across machines, Python versions and runs).

    >>> shard_of("a.png", 1)
    0
    """
    return int.from_bytes(hashlib.sha256(name.encode("utf-8", "surrogateescape")).digest()[:8], "big") % count


def manifest(paths: Sequence[Path], key: Callable[[Path], str] = output_name) -> list[Path]:
    """Every input once, sorted by output name and then by path."""
    return sorted(dict.fromkeys(paths), key=lambda p: (key(p), str(p)))


def take(paths: Sequence[Path], shard: Shard, key: Callable[[Path], str] = output_name) -> list[Path]:
    """Shard ``shard``'s inputs among ``paths``, in the order given (all of them for shard 0/1)."""
    if shard.count == 1:
        return list(paths)
    return [p for p in paths if shard_of(key(p), shard.count) == shard.index]


def device_for(shard: Shard, device: torch.device) -> torch.device:
    """A torchrun rank asked for CUDA without an index works on GPU ``LOCAL_RANK`` (made current)."""
    if shard.local_rank is not None and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", shard.local_rank)
    if shard.local_rank is not None and device.type == "cuda":
        torch.cuda.set_device(device)
    return device
