"""Loading: a work item -> the tensors its restoration needs (decoded, fitted image; mask; reference).

Tensors (the boundary of the engine): ``observed`` float32 ``[3, r, r]`` in [-1, 1] (r = the
degradation's observed size), ``mask`` float32 ``[1, R, R]`` in [0, 1] (1 = missing), ``reference``
uint8 ``[3, R, R]`` (R = the generator's resolution).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from mgan_cli.errors import ImageInputError, MganError
from mgan_cli.imageio import IMAGE_SUFFIXES, decode_image, decode_mask, fit_to_size, to_tensor, to_uint8
from mgan_cli.run.failures import Failure, Stage
from mgan_cli.run.job import Job
from mgan_cli.run.planning import WorkItem
from mgan_cli.run.records import ImageRecord


def find_by_stem(directory: Path, stem: str) -> Path | None:
    """The image file ``stem.<image suffix>`` in ``directory`` (None if there is none)."""
    for suffix in IMAGE_SUFFIXES:
        for candidate in (directory / f"{stem}{suffix}", directory / f"{stem}{suffix.upper()}"):
            if candidate.is_file():
                return candidate
    return None


@dataclass
class LoadedImage:
    """A work item with its tensors (see the module docstring) and its record so far."""

    item: WorkItem
    record: ImageRecord
    observed: torch.Tensor
    mask: torch.Tensor | None
    reference: torch.Tensor | None
    load_seconds: float


class Loader:
    """Decodes inputs, masks and references for ``job`` at the generator's ``resolution``."""

    def __init__(self, job: Job, resolution: int, observed_size: int, needs_mask: bool) -> None:
        self.job = job
        self.resolution = resolution
        self.observed_size = observed_size
        self.needs_mask = needs_mask

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
        mask = self._mask(path, record) if self.needs_mask else None
        reference = None
        if job.reference_dir is not None:
            reference_path = find_by_stem(job.reference_dir, path.stem)
            if reference_path is None:
                record.notes.append(f"no reference named {path.stem}.* in {job.reference_dir}")
            else:
                ref_decoded = decode_image(reference_path)
                record.notes.extend(f"reference {n}" for n in ref_decoded.notes)
                ref_image, ref_note = fit_to_size(ref_decoded.image, self.resolution, job.resize,
                                                  reference_path, what="reference")
                if ref_note:
                    record.notes.append(f"reference {ref_note}")
                reference = to_uint8(to_tensor(ref_image)[None])[0]
        elif job.task.compare_to_input and self.observed_size == self.resolution:
            reference = to_uint8(to_tensor(image)[None])[0]
        return LoadedImage(item, record, to_tensor(image), mask, reference, time.perf_counter() - started)

    def _mask(self, path: Path, record: ImageRecord) -> torch.Tensor:
        mask_path = self.job.mask
        if mask_path is not None and mask_path.is_dir():
            mask_path = find_by_stem(mask_path, path.stem)
            if mask_path is None:
                raise ImageInputError(f"{path}: no mask named {path.stem}.* in {self.job.mask}")
        assert mask_path is not None
        decoded = decode_mask(mask_path)
        record.notes.extend(f"mask {n}" for n in decoded.notes)
        mask_image = decoded.image
        if mask_image.size != (self.resolution, self.resolution):
            raise ImageInputError(
                f"{path}: mask {mask_path} is {mask_image.size[0]}x{mask_image.size[1]} but must be "
                f"{self.resolution}x{self.resolution} (the generator's resolution)")
        return to_tensor(mask_image)

    def load_batch(self, items: list[WorkItem]) -> tuple[list[LoadedImage], list[ImageRecord]]:
        """Load ``items``; those that cannot be used become failed records."""
        loaded: list[LoadedImage] = []
        failed: list[ImageRecord] = []
        for item in items:
            try:
                loaded.append(self.load(item))
            except MganError as exc:
                failed.append(ImageRecord(input=str(item.input)).fail(Failure(Stage.INPUT, str(exc))))
        return loaded, failed
