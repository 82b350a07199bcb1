"""Runs a restoration task over a list of image files: load, batch, invert, write, measure, report.

The runner never prints. It reports through :class:`RunEvents` callbacks (the command line shows them
with rich, or as JSON lines) and returns one :class:`ImageRecord` per input. A bad input (unreadable,
wrong size, missing mask) becomes a ``failed`` record and the rest of the batch still runs. Outputs are
written atomically; an output that already exists is kept and the image ``skipped`` unless
``overwrite`` is set, so a rerun into the same folder resumes where the last one stopped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mgan_cli.degradations import Degradation, build_degradation
from mgan_cli.engine import EngineOptions, InversionResult, invert
from mgan_cli.errors import ImageInputError, MganError
from mgan_cli.generators import Generator, load_generator
from mgan_cli.imageio import IMAGE_SUFFIXES, fit_to_size, read_image, read_mask, to_tensor, to_uint8, write_png
from mgan_cli.losses import ReconstructionLoss
from mgan_cli.measure import measure
from mgan_cli.presets import Preset
from mgan_cli.records import ImageRecord
from mgan_cli.report import previous_records
from mgan_cli.tasks import Task


@dataclass
class RunEvents:
    """Callbacks for progress: all optional."""

    on_step: Callable[[int, int, float], None] | None = None  # (step, iterations, mean loss of the batch)
    on_record: Callable[[ImageRecord], None] | None = None  # an image finished (ok, failed or skipped)
    on_warning: Callable[[str], None] | None = None
    on_batch_done: Callable[[list[ImageRecord]], None] | None = None  # records so far (to save the report)


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


def image_seed(seed: int, name: str) -> int:
    """A per-image seed from the run's seed and the file name: results don't depend on batching or order."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def fitting_batch_size(free_bytes: int, per_image_bytes: int, limit: int, headroom: float = 0.85) -> int:
    """How many images fit in ``headroom`` × the free memory at ``per_image_bytes`` each (1 .. ``limit``).

    >>> fitting_batch_size(10 * 2**30, 2**30, 16)
    8
    """
    if per_image_bytes <= 0:
        return max(1, limit)
    return max(1, min(limit, int(headroom * free_bytes // per_image_bytes)))


def _find_by_stem(directory: Path, stem: str) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        for candidate in (directory / f"{stem}{suffix}", directory / f"{stem}{suffix.upper()}"):
            if candidate.is_file():
                return candidate
    return None


@dataclass
class _Prepared:
    record: ImageRecord
    observed: torch.Tensor  # [3, r, r] in [-1, 1]
    mask: torch.Tensor | None  # [1, R, R] in [0, 1]
    reference: torch.Tensor | None  # uint8 [3, R, R]
    output_path: Path
    load_seconds: float


class Runner:
    """Executes a :class:`Job` (see the module docstring)."""

    def __init__(self, job: Job, events: RunEvents | None = None, generator: Generator | None = None) -> None:
        self.job = job
        self.events = events or RunEvents()
        self.generator = (generator or load_generator(job.preset.generator)).to(job.device)
        self.degradation: Degradation = build_degradation(job.preset.degradation).to(job.device)
        self.observed_size = self.degradation.observed_size(self.generator.resolution)
        loss = job.preset.loss
        self.loss = ReconstructionLoss(loss.perceptual_weight, loss.vgg_layer, loss.perceptual_resolution,
                                       loss.distance).to(job.device)
        if self.degradation.needs_mask and job.mask is None:
            raise MganError(f"{job.task.name} needs --mask FILE_OR_DIR (white = missing pixels)")

    # -- planning ---------------------------------------------------------------------------------
    def plan(self) -> tuple[list[tuple[Path, Path]], list[ImageRecord]]:
        """Split inputs into (to process, already settled): skipped outputs, clashes, inputs as outputs."""
        todo: list[tuple[Path, Path]] = []
        settled: list[ImageRecord] = []
        previous = previous_records(self.job.output_dir)
        claimed: dict[Path, Path] = {}
        inputs = {p.resolve() for p in self.job.inputs}
        for path in self.job.inputs:
            output = self.job.output_dir / f"{path.stem}.png"
            record = ImageRecord(input=str(path), output=str(output))
            if output.resolve() in inputs:
                record.status, record.error = "failed", (
                    f"{path}: its output {output} would overwrite an input; choose another -o folder")
                settled.append(record)
            elif output in claimed:
                record.status, record.error = "failed", (
                    f"{path}: same file name as {claimed[output]}, both would write {output}; rename one")
                settled.append(record)
            elif output.exists() and not self.job.overwrite:
                record.status = "skipped"
                record.restore_results(previous.get(str(output), {}))
                record.notes.append("output exists (use --overwrite to redo)")
                settled.append(record)
                claimed[output] = path
            else:
                claimed[output] = path
                todo.append((path, output))
        return todo, settled

    # -- loading ----------------------------------------------------------------------------------
    def _prepare(self, path: Path, output: Path) -> _Prepared:
        started = time.perf_counter()
        record = ImageRecord(input=str(path), output=str(output), seed=image_seed(self.job.preset.seed, path.name))
        resolution = self.generator.resolution
        image, note = fit_to_size(read_image(path), self.observed_size, self.job.resize, path)
        if note:
            record.notes.append(note)
        mask = None
        if self.degradation.needs_mask:
            mask_path = self.job.mask
            if mask_path is not None and mask_path.is_dir():
                mask_path = _find_by_stem(mask_path, path.stem)
                if mask_path is None:
                    raise ImageInputError(f"{path}: no mask named {path.stem}.* in {self.job.mask}")
            assert mask_path is not None
            mask_image = read_mask(mask_path)
            if mask_image.size != (resolution, resolution):
                raise ImageInputError(
                    f"{path}: mask {mask_path} is {mask_image.size[0]}x{mask_image.size[1]} but must be "
                    f"{resolution}x{resolution} (the generator's resolution)")
            mask = to_tensor(mask_image)
        reference = None
        if self.job.reference_dir is not None:
            reference_path = _find_by_stem(self.job.reference_dir, path.stem)
            if reference_path is None:
                record.notes.append(f"no reference named {path.stem}.* in {self.job.reference_dir}")
            else:
                ref_image, ref_note = fit_to_size(read_image(reference_path), resolution, self.job.resize,
                                                  reference_path, what="reference")
                if ref_note:
                    record.notes.append(f"reference {ref_note}")
                reference = to_uint8(to_tensor(ref_image)[None])[0]
        elif self.job.task.compare_to_input and self.observed_size == resolution:
            reference = to_uint8(to_tensor(image)[None])[0]
        return _Prepared(record, to_tensor(image), mask, reference, output, time.perf_counter() - started)

    # -- running ----------------------------------------------------------------------------------
    def run(self) -> list[ImageRecord]:
        """Process every input; returns one record per input, in input order.

        Three stages overlap: a loader thread decodes batch i+1 while the main thread optimises batch i,
        and a writer thread encodes, measures and reports batch i-1.
        """
        todo, settled = self.plan()
        for record in settled:
            self._emit(record)
        self.job.output_dir.mkdir(parents=True, exist_ok=True)
        self._records = list(settled)
        self._batch_limit = max(1, self.job.preset.batch_size)
        if self.job.device.type == "cuda" and todo:
            self._batch_limit = self._fitting_batch_size()
        batches = [todo[i:i + self._batch_limit] for i in range(0, len(todo), self._batch_limit)]
        with ThreadPoolExecutor(1, thread_name_prefix="mgan-load") as loader, \
                ThreadPoolExecutor(1, thread_name_prefix="mgan-write") as writer:
            loading = loader.submit(self._load, batches[0]) if batches else None
            finishing = []
            for index in range(len(batches)):
                assert loading is not None
                prepared, failed = loading.result()
                if index + 1 < len(batches):
                    loading = loader.submit(self._load, batches[index + 1])
                outcomes = self._optimise(prepared)
                finishing.append(writer.submit(self._finish, failed, outcomes))
            for future in finishing:
                future.result()
        return self._in_input_order(self._records)

    def _fitting_batch_size(self) -> int:
        """On CUDA: the preset's batch size, lowered to what fits in free memory, measured with a one-image
        probe of two optimisation steps (out-of-memory later still halves it, see :meth:`_optimise`)."""
        device = self.job.device
        probe = torch.zeros(1, 3, self.observed_size, self.observed_size, device=device)
        mask = torch.zeros(1, 1, self.generator.resolution, self.generator.resolution, device=device)
        settings = dataclasses.replace(self.job.preset.inversion, iterations=2, early_stop_window=0)
        torch.cuda.synchronize(device)
        baseline = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        invert(self.generator, probe, self.degradation, self.loss, settings, [0],
               mask=mask if self.degradation.needs_mask else None, options=self.job.engine)
        per_image = torch.cuda.max_memory_allocated(device) - baseline
        free, _ = torch.cuda.mem_get_info(device)
        return fitting_batch_size(free, per_image, self.job.preset.batch_size)

    def _in_input_order(self, records: list[ImageRecord]) -> list[ImageRecord]:
        order = {str(path): i for i, path in enumerate(self.job.inputs)}
        return sorted(records, key=lambda r: order.get(r.input, len(order)))

    def _load(self, batch: list[tuple[Path, Path]]) -> tuple[list[_Prepared], list[ImageRecord]]:
        """Decode a batch's images (and masks, references); bad files become failed records."""
        prepared: list[_Prepared] = []
        failed: list[ImageRecord] = []
        for path, output in batch:
            try:
                prepared.append(self._prepare(path, output))
            except MganError as exc:
                failed.append(ImageRecord(input=str(path), output=None, status="failed", error=str(exc)))
        return prepared, failed

    def _optimise(self, items: list[_Prepared]) -> list[tuple[list[_Prepared], InversionResult | str, float]]:
        """Invert ``items`` in chunks of the current batch limit; on GPU out-of-memory, halve the limit
        (for the rest of the run too) and retry. Returns (items, result or error message, seconds/image)."""
        outcomes: list[tuple[list[_Prepared], InversionResult | str, float]] = []
        start = 0
        while start < len(items):
            chunk = items[start:start + self._batch_limit]
            started = time.perf_counter()
            try:
                result: InversionResult | str = self._invert(chunk)
            except torch.OutOfMemoryError:
                if self.job.device.type == "cuda":
                    torch.cuda.empty_cache()
                if len(chunk) > 1:
                    self._batch_limit = max(1, len(chunk) // 2)
                    if self.events.on_warning:
                        self.events.on_warning(f"out of memory with {len(chunk)} images per batch; retrying with "
                                               f"{self._batch_limit}")
                    continue
                result = ("out of memory for a single image; lower --codes, or use --precision bf16 or a "
                          "device with more memory")
            outcomes.append((chunk, result, (time.perf_counter() - started) / len(chunk)))
            start += len(chunk)
        return outcomes

    def _invert(self, items: list[_Prepared]) -> InversionResult:
        device = self.job.device
        observed = torch.stack([p.observed for p in items]).to(device)
        masks = torch.stack([p.mask for p in items]).to(device) if items[0].mask is not None else None
        settings = self.job.preset.inversion

        def on_progress(step: int, losses: torch.Tensor) -> None:
            if self.events.on_step:
                self.events.on_step(step, settings.iterations, float(losses.mean()))

        result = invert(self.generator, observed, self.degradation, self.loss, settings,
                        [p.record.seed or 0 for p in items], mask=masks, progress=on_progress,
                        options=self.job.engine, warn=self.events.on_warning)
        result.images = self.degradation.finalize(result.images, self._observed_full(observed), masks)
        return result

    def _finish(self, failed: list[ImageRecord],
                outcomes: list[tuple[list[_Prepared], InversionResult | str, float]]) -> None:
        """Write outputs, measure them, emit records and save the report (runs on the writer thread)."""
        done = list(failed)
        for record in failed:
            self._emit(record)
        for items, result, compute_seconds in outcomes:
            if isinstance(result, str):
                for item in items:
                    item.record.status, item.record.error, item.record.output = "failed", result, None
                    self._emit(item.record)
                    done.append(item.record)
                continue
            outputs = to_uint8(result.images).cpu()
            metrics, warnings = measure(outputs, [p.reference for p in items], self.job.metrics, self.job.device)
            for message in warnings:
                if self.events.on_warning:
                    self.events.on_warning(message)
            for index, item in enumerate(items):
                record = item.record
                try:
                    write_png(outputs[index], item.output_path)
                except OSError as exc:
                    record.status, record.output = "failed", None
                    record.error = f"{item.output_path}: cannot write ({exc})"
                else:
                    record.status = "ok"
                    record.metrics = metrics[index]
                    record.loss = float(result.losses[index])
                    if result.steps is not None and int(result.steps[index]) < self.job.preset.inversion.iterations:
                        record.notes.append(f"stopped early after {int(result.steps[index])} steps")
                    if item.reference is None and not self.job.task.compare_to_input:
                        record.notes.append("no --reference: full-reference metrics are null")
                record.seconds = round(compute_seconds + item.load_seconds, 3)
                self._emit(record)
                done.append(record)
        self._records.extend(done)
        if self.events.on_batch_done:
            self.events.on_batch_done(self._in_input_order(self._records))

    def _observed_full(self, observed: torch.Tensor) -> torch.Tensor:
        """The observed images at the generator's resolution (what ``finalize`` blends with)."""
        if observed.shape[-1] == self.generator.resolution:
            return observed
        return torch.nn.functional.interpolate(observed, size=self.generator.resolution, mode="bicubic",
                                               align_corners=False).clamp(-1, 1)

    def _emit(self, record: ImageRecord) -> None:
        if self.events.on_record:
            self.events.on_record(record)
