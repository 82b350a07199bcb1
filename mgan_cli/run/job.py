"""What a run is asked to do (:class:`Job`) and how it reports progress (:class:`RunEvents`)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mgan_cli.config.presets import Preset
from mgan_cli.config.tasks import Task
from mgan_cli.core.engine import EngineOptions
from mgan_cli.encoder import resolve_start
from mgan_cli.run.extras import RunExtras
from mgan_cli.run.names import OutputNames
from mgan_cli.run.records import ImageRecord


@dataclass
class RunEvents:
    """Callbacks for progress: all optional. They may be called from the writer thread."""

    #: (step, total, loss): a batch's inversion steps (mean loss of the batch), then each image's tuning steps
    on_step: Callable[[int, int, float], None] | None = None
    on_record: Callable[[ImageRecord], None] | None = None  # an image finished (ok, failed or skipped)
    on_warning: Callable[[str], None] | None = None
    on_batch_done: Callable[[list[ImageRecord]], None] | None = None  # records so far (all stored already)
    #: adds per-row fields to a finished record (its output file is in place) before it is stored and emitted
    annotate: Callable[[ImageRecord], ImageRecord] | None = None

    def warn(self, message: str) -> None:
        if self.on_warning is not None:
            self.on_warning(message)

    def record(self, record: ImageRecord) -> None:
        if self.on_record is not None:
            self.on_record(record)


@dataclass
class Job:
    """Everything a run needs. ``mask`` is a file (one mask for all) or a folder (masks by file stem)."""

    task: Task
    preset: Preset
    inputs: list[Path]
    output_dir: Path
    reference_dir: Path | None = None
    mask: Path | None = None
    resize: str = "error"
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    overwrite: bool = False
    metrics: tuple[str, ...] = ("psnr", "ssim", "lpips", "niqe")
    engine: EngineOptions = field(default_factory=EngineOptions)
    weights_sha256: dict[str, str | None] = field(default_factory=dict)  # the weights used, by name
    extras: RunExtras = field(default_factory=RunExtras)  # tuning, saved latents, edits (run/extras.py)
    #: ``"auto"`` (as many as fit), a size, or ``None`` (auto on CUDA, the preset's size elsewhere)
    batch_size: int | str | None = None

    def __post_init__(self) -> None:
        self.preset = resolve_start(self.preset)  # init auto: decided once, before planning fingerprints the preset
    #: the output names claimed before planning, e.g. by ``--align faces`` for each photo (run/names.py);
    #: None: the planner starts from the inputs alone
    names: OutputNames | None = None


def image_seed(seed: int, name: str) -> int:
    """A per-image seed from the run's seed and the file name: results don't depend on batching or order."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)
