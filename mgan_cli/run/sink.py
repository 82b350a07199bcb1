"""The sink: restored tensors -> PNG files, metrics, stored records and events (runs on the writer thread).

Each image is one transaction of the run store: its PNG is encoded to a temporary file, then renamed into
place and its record committed together (:meth:`RunStore.put`). An output that another run recorded with
other settings since this run planned it (:class:`OutputClashError`) fails that image with the clash, its PNG
unwritten. A problem of the output folder itself (full, read-only) is an :class:`OutputError` that stops the
run: every image finished before it stays recorded.

Metrics can never take down a run: a metric that raises (an out-of-memory error on the GPU included) is
retried image by image, and an image whose metrics still fail keeps its output with every metric null and
a ``<name>_reason`` saying why (:meth:`Sink._measure`). Nothing here changes process-wide state (this runs
on the writer thread while the main thread optimises).
"""

from __future__ import annotations

from pathlib import Path

import torch

from mgan_cli.edit import frames as editing
from mgan_cli.edit import latents
from mgan_cli.errors import OutputError
from mgan_cli.metrics.api import NO_REFERENCE
from mgan_cli.metrics.baselines import score_baselines
from mgan_cli.metrics.measure import measure
from mgan_cli.report.thumbnails import THUMB_DIR, write_thumbnails
from mgan_cli.run.extras import frame_paths, strip_path
from mgan_cli.run.failures import Failure, Stage
from mgan_cli.run.job import Job, RunEvents
from mgan_cli.run.loading import LoadedImage
from mgan_cli.run.planning import WorkItem, clash_message
from mgan_cli.run.records import ImageRecord
from mgan_cli.run.restoring import AfterInversion, Chunk, RestoredBatch
from mgan_cli.run.store import Identity, OutputClashError, RunStore, input_key
from mgan_cli.utils.atomic import StagedFile, make_folder, stage
from mgan_cli.utils.imageio import encode_png, to_uint8, write_png


def null_metrics(names: list[str] | tuple[str, ...], reason: str) -> dict[str, float | str | None]:
    """Every metric in ``names`` null with ``reason``."""
    row: dict[str, float | str | None] = {}
    for name in names:
        row[name], row[f"{name}_reason"] = None, reason
    return row


class Sink:
    """Finishes images: writes each restored one, measures it, completes, stores and emits its record."""

    def __init__(self, job: Job, events: RunEvents, store: RunStore, run_id: int) -> None:
        self.job = job
        self.events = events
        self.store = store
        self.run_id = run_id
        self.records: list[ImageRecord] = []
        self._stored_as: dict[int, tuple[str, str, Identity | None, int | str]] = {}

    def settle(self, entries: list[tuple[ImageRecord, WorkItem | None, str | None]]) -> None:
        """Records that are final already (skipped, failed before restoring), with their work item and the
        run that produced their output (None: this run)."""
        for record, item, producer in entries:
            if self.events.annotate is not None:
                record = self.events.annotate(record)
            self._store(record, item, producer)
            self.events.record(record)
            self.records.append(record)

    def finish(self, failed: list[tuple[ImageRecord, WorkItem]], loaded: list[LoadedImage],
               chunks: list[Chunk]) -> None:
        """Write, measure and record the restored ``chunks`` of ``loaded``, then report the batch done."""
        self.settle([(record, item, None) for record, item in failed])
        for chunk in chunks:
            items = loaded[chunk.start:chunk.start + chunk.count]
            if isinstance(chunk.outcome, Failure):
                for item in items:
                    self._done(item.record.fail(chunk.outcome), item, chunk.seconds_per_image)
                continue
            self._finish_restored(items, chunk.outcome, chunk.seconds_per_image)
        if self.events.on_batch_done:
            self.events.on_batch_done(list(self.records))

    def _scores(self, items: list[LoadedImage], images: torch.Tensor
                ) -> tuple[list[dict[str, float | str | None]], torch.Tensor | None,
                           list[dict[str, float | str | None]], list[str]]:
        """Metrics and baseline (images, scores) of ``items`` and their warnings; raises what they raise."""
        metrics, warnings = measure(images, [p.reference for p in items], self.job.metrics, self.job.device)
        baselines, baseline_scores, baseline_warnings = score_baselines(
            self.job.task.baseline, [p.observed for p in items], [p.mask for p in items],
            [p.reference for p in items], images.shape[-1], self.job.metrics, self.job.device)
        return metrics, baselines, baseline_scores, [*warnings, *baseline_warnings]

    def _measure(self, items: list[LoadedImage], images: torch.Tensor
                 ) -> tuple[list[dict[str, float | str | None]], list[torch.Tensor | None]]:
        """Per image: metric row (baseline scores merged) and baseline image; a failure costs metrics, never
        an output (see the module docstring)."""
        try:
            metrics, baselines, scores, warnings = self._scores(items, images)
            for message in warnings:
                self.events.warn(message)
            return ([{**m, **b} for m, b in zip(metrics, scores, strict=True)],
                    [None] * len(items) if baselines is None else list(baselines))
        except Exception as exc:
            first = exc
        self._release_cached_memory()
        rows: list[dict[str, float | str | None]] = []
        baseline_images: list[torch.Tensor | None] = []
        for index, item in enumerate(items):
            try:
                metrics, baselines, scores, warnings = self._scores([item], images[index:index + 1])
                for message in warnings:
                    self.events.warn(message)
                rows.append({**metrics[0], **scores[0]})
                baseline_images.append(None if baselines is None else baselines[0])
            except Exception as exc:
                reason = f"metric failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                self.events.warn(f"{item.item.output.name}: {reason}; output kept, metrics null")
                rows.append(null_metrics(self.job.metrics, reason[:300]))
                baseline_images.append(None)
                self._release_cached_memory()
        if len(items) > 1:
            self.events.warn(f"metrics of a batch failed ({type(first).__name__}); measured image by image")
        return rows, baseline_images

    def _release_cached_memory(self) -> None:
        if self.job.device.type == "cuda":
            torch.cuda.empty_cache()

    def _finish_restored(self, items: list[LoadedImage], batch: RestoredBatch, seconds: float) -> None:
        metrics, baselines = self._measure(items, batch.images)
        iterations = self.job.preset.inversion.iterations
        for index, item in enumerate(items):
            record = item.record
            failure = batch.failures[index]
            if failure is not None:
                self._done(record.fail(failure), item, seconds)
                continue
            output = item.item.output
            try:
                staged = stage(output, encode_png(batch.images[index]))
            except OSError as exc:
                raise OutputError(f"{output}: cannot write ({exc.strerror or exc})") from None
            record.status = "ok"
            record.metrics = dict(metrics[index])
            if item.reference_missing is not None:
                for key, value in list(record.metrics.items()):
                    if key.endswith("_reason") and value == NO_REFERENCE:
                        record.metrics[key] = item.reference_missing
            self._thumbnails(item, batch.images[index], baselines[index])
            record.loss = batch.losses[index]
            if batch.after is not None:
                try:
                    self._write_after(record, item, batch.after[index])
                except BaseException:
                    staged.discard()  # no temporary PNG left behind on a full disk
                    raise
            if batch.steps[index] < iterations:
                record.notes.append(f"stopped early after {batch.steps[index]} steps")
            if self.job.reference_dir is None and not self.job.task.compare_to_input:
                record.notes.append("no --reference: full-reference metrics are null")
            self._done(record, item, seconds, staged)

    def _write_after(self, record: ImageRecord, item: LoadedImage, after: AfterInversion) -> None:
        """Saved latents, edit frames and strip of one image (see :mod:`mgan_cli.run.extras`)."""
        extras, output_dir, stem = self.job.extras, self.job.output_dir, item.item.output.stem
        try:
            if extras.save_latents:
                path = latents.latents_path(output_dir, stem)
                make_folder(output_dir, path.parent)
                latents.save(path, after.inversion, self.job.preset.generator,
                             self.job.weights_sha256.get(self.job.preset.generator), after.tuned)
                record.fields["latents"] = str(path)
            if extras.edit is not None and after.frames is not None:
                paths = frame_paths(output_dir, stem, extras.edit.strengths)
                strip = strip_path(output_dir, stem)
                for folder in (paths[0].parent, strip.parent):
                    make_folder(output_dir, folder)
                for frame, path in zip(after.frames, paths, strict=True):
                    write_png(frame, path)
                write_png(editing.strip_uint8(after.frames), strip)
                record.fields["frames"] = [{"strength": s, "path": str(p)}
                                           for s, p in zip(extras.edit.strengths, paths, strict=True)]
                record.fields["strip"] = str(strip)
        except OSError as exc:
            raise OutputError(f"{output_dir}: cannot write the latents or frames of {stem} "
                              f"({exc.strerror or exc})") from None
        if extras.tuning.steps > 0:
            record.fields["tuned_steps"] = extras.tuning.steps

    def _thumbnails(self, item: LoadedImage, output: torch.Tensor, baseline: torch.Tensor | None) -> None:
        """Thumbnails for the HTML report; failing to write them is a warning, never a failed image."""
        try:
            write_thumbnails(make_folder(self.job.output_dir, self.job.output_dir / THUMB_DIR), item.item.output.stem, {
                "input": to_uint8(item.observed[None])[0], "output": output, "reference": item.reference,
                "baseline": baseline})
        except (OSError, OutputError) as exc:  # OutputError: no folder for them (full, or a link: never followed)
            self.events.warn(f"cannot write thumbnails for {item.item.output.name} ({exc})")

    def _done(self, record: ImageRecord, item: LoadedImage, seconds: float, staged: StagedFile | None = None) -> None:
        record.seconds = round(seconds + item.load_seconds, 3)
        try:
            self._store(record, item.item, None, staged)
        except OutputClashError as clash:  # another run recorded the output since this one planned it
            record = ImageRecord(input=record.input, output=record.output, seed=record.seed, seconds=record.seconds)
            work = item.item
            record.fail(Failure(Stage.OUTPUT, clash_message(work.input, work.output, clash.owner, work.identity)))
            self._store(record, work, None)
        finally:
            if staged is not None:
                staged.discard()
        if self.events.annotate is not None:  # after the rename: annotations may read the output file
            record = self.events.annotate(record)
            self._store(record, item.item, None)
        self.events.record(record)
        self.records.append(record)

    def update(self, records: list[ImageRecord]) -> None:
        """Store again records this sink finished that were changed since (e.g. notes added at the end)."""
        for record in records:
            where = self._stored_as.get(id(record))
            if where is not None:
                self.store.put(record, *where)

    def _store(self, record: ImageRecord, item: WorkItem | None, producer: str | None,
               staged: StagedFile | None = None) -> None:
        if item is not None:
            output_name, key, identity = item.output_name, item.input_key, item.identity
        else:
            path = Path(record.input)
            output_name, key, identity = f"{path.stem}.png", input_key(path), None
        run: int | str = self.run_id if producer is None else producer
        claim = item.claim if item is not None and staged is not None else None  # the image this run restored
        self.store.put(record, output_name, key, identity, run, staged, claim)
        self._stored_as[id(record)] = (output_name, key, identity, run)
