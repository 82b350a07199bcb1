"""Loading: a work item -> the tensors its restoration needs (decoded, fitted image; mask; reference).

Tensors (the boundary of the engine): ``observed`` float32 ``[3, r, r]`` in [-1, 1] (r = the
degradation's observed size), ``mask`` float32 ``[1, R, R]`` in [0, 1] (1 = missing), ``reference``
uint8 ``[3, R, R]`` (R = the generator's resolution).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from mgan_cli.errors import ImageInputError, MganError
from mgan_cli.run.failures import Failure, Stage
from mgan_cli.run.job import Job
from mgan_cli.run.records import ImageRecord
from mgan_cli.utils.imageio import decode_image, decode_mask, fit_to_size, to_tensor, to_uint8
from mgan_cli.utils.pairing import StemIndex

if TYPE_CHECKING:
    from mgan_cli.run.planning import WorkItem


@dataclass
class LoadedImage:
    """A work item with its tensors (see the module docstring) and its record so far."""

    item: WorkItem
    record: ImageRecord
    observed: torch.Tensor
    mask: torch.Tensor | None
    reference: torch.Tensor | None
    load_seconds: float
    reference_missing: str | None = None  # why a --reference was given but there is none for this image


class Loader:
    """Decodes inputs, masks and references for ``job`` at the generator's ``resolution``."""

    def __init__(self, job: Job, resolution: int, observed_size: int, needs_mask: bool) -> None:
        self.job = job
        self.resolution = resolution
        self.observed_size = observed_size
        self.needs_mask = needs_mask
        self.references = StemIndex(job.reference_dir) if job.reference_dir is not None else None

    def load(self, item: WorkItem) -> LoadedImage:
        """Raises :class:`MganError` (e.g. :class:`ImageInputError`) for an input that cannot be used."""
        started = time.perf_counter()
        path, job = item.input, self.job
        record = ImageRecord(input=str(path), output=str(item.output), seed=item.seed)
        decoded = decode_image(path)
        record.notes.extend(decoded.notes)
        image, note = fit_to_size(decoded.image, self.observed_size, job.resize, path)
        if note:
            record.notes.append(note)
        mask = self._mask(path, item.mask, record) if self.needs_mask else None
        reference, reference_missing = None, None
        if self.references is not None:
            reference, reference_missing = self._reference(path.stem, record)
            if reference_missing is not None:
                record.notes.append(reference_missing)
        elif job.task.compare_to_input and self.observed_size == self.resolution:
            reference = to_uint8(to_tensor(image)[None])[0]
        return LoadedImage(item, record, to_tensor(image), mask, reference, time.perf_counter() - started,
                           reference_missing)

    def _reference(self, stem: str, record: ImageRecord) -> tuple[torch.Tensor | None, str | None]:
        """The reference named ``stem`` as uint8 ``[3, R, R]``, or None and why. A reference that is missing,
        ambiguous, unreadable or (under ``--resize error``) of the wrong size only makes the full-reference
        metrics null: the image itself is still restored."""
        assert self.references is not None
        try:
            path = self.references.require(stem)
            decoded = decode_image(path)
        except ImageInputError as exc:
            return None, f"{exc}: full-reference metrics are null"
        record.notes.extend(f"reference {n}" for n in decoded.notes)
        image = decoded.image
        if image.size != (self.resolution, self.resolution) and self.job.resize == "error":
            return None, (f"reference {path} is {image.size[0]}x{image.size[1]}, not {self.resolution}x"
                          f"{self.resolution}: full-reference metrics are null (or pass --resize crop|fit)")
        fitted, note = fit_to_size(image, self.resolution, self.job.resize, path, what="reference")
        if note:
            record.notes.append(f"reference {note}")
        return to_uint8(to_tensor(fitted)[None])[0], None

    def _mask(self, path: Path, mask_path: Path | None, record: ImageRecord) -> torch.Tensor:
        if mask_path is None:
            raise ImageInputError(f"{path}: no mask named {path.stem}.* in {self.job.mask}")
        decoded = decode_mask(mask_path)
        record.notes.extend(f"mask {n}" for n in decoded.notes)
        mask_image = decoded.image
        if mask_image.size != (self.resolution, self.resolution):
            raise ImageInputError(
                f"{path}: mask {mask_path} is {mask_image.size[0]}x{mask_image.size[1]} but must be "
                f"{self.resolution}x{self.resolution} (the generator's resolution)")
        return to_tensor(mask_image)

    def load_batch(self, items: list[WorkItem]) -> tuple[list[LoadedImage], list[tuple[ImageRecord, WorkItem]]]:
        """Load ``items``; those that cannot be used become failed records (with their item)."""
        loaded: list[LoadedImage] = []
        failed: list[tuple[ImageRecord, WorkItem]] = []
        for item in items:
            try:
                loaded.append(self.load(item))
            except MganError as exc:
                failed.append((ImageRecord(input=str(item.input)).fail(Failure(Stage.INPUT, str(exc))), item))
        return loaded, failed
