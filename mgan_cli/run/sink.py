"""The sink: restored tensors -> PNG files, metrics, records and events (runs on the writer thread)."""

from __future__ import annotations

import torch

from mgan_cli.baselines import score_baselines
from mgan_cli.imageio import to_uint8, write_png
from mgan_cli.measure import measure
from mgan_cli.run.failures import Failure, Stage
from mgan_cli.run.job import Job, RunEvents
from mgan_cli.run.loading import LoadedImage
from mgan_cli.run.records import ImageRecord
from mgan_cli.run.restoring import Chunk, RestoredBatch
from mgan_cli.thumbnails import THUMB_DIR, write_thumbnails


class Sink:
    """Finishes images: writes each restored one, measures it, completes its record and emits it."""

    def __init__(self, job: Job, events: RunEvents) -> None:
        self.job = job
        self.events = events
        self.records: list[ImageRecord] = []

    def settle(self, records: list[ImageRecord]) -> None:
        """Records that are final already (skipped, failed while planning or loading)."""
        for record in records:
            self.events.record(record)
        self.records.extend(records)

    def finish(self, failed: list[ImageRecord], loaded: list[LoadedImage], chunks: list[Chunk]) -> None:
        """Write, measure and record the restored ``chunks`` of ``loaded``, then report the batch done."""
        self.settle(failed)
        for chunk in chunks:
            items = loaded[chunk.start:chunk.start + chunk.count]
            if isinstance(chunk.outcome, Failure):
                for item in items:
                    self._done(item.record.fail(chunk.outcome), item, chunk.seconds_per_image)
                continue
            self._finish_restored(items, chunk.outcome, chunk.seconds_per_image)
        if self.events.on_batch_done:
            self.events.on_batch_done(list(self.records))

    def _finish_restored(self, items: list[LoadedImage], batch: RestoredBatch, seconds: float) -> None:
        metrics, warnings = measure(batch.images, [p.reference for p in items], self.job.metrics, self.job.device)
        baselines, baseline_scores, baseline_warnings = score_baselines(
            self.job.task.baseline, [p.observed for p in items], [p.mask for p in items],
            [p.reference for p in items], batch.images.shape[-1], self.job.metrics, self.job.device)
        for message in [*warnings, *baseline_warnings]:
            self.events.warn(message)
        iterations = self.job.preset.inversion.iterations
        for index, item in enumerate(items):
            record = item.record
            failure = batch.failures[index]
            if failure is not None:
                self._done(record.fail(failure), item, seconds)
                continue
            try:
                write_png(batch.images[index], item.item.output)
            except OSError as exc:
                record.fail(Failure(Stage.OUTPUT, f"{item.item.output}: cannot write ({exc})"))
            else:
                record.status = "ok"
                record.metrics = {**metrics[index], **baseline_scores[index]}
                self._thumbnails(item, batch.images[index], None if baselines is None else baselines[index])
                record.loss = batch.losses[index]
                if batch.steps[index] < iterations:
                    record.notes.append(f"stopped early after {batch.steps[index]} steps")
                if item.reference is None and not self.job.task.compare_to_input:
                    record.notes.append("no --reference: full-reference metrics are null")
            self._done(record, item, seconds)

    def _thumbnails(self, item: LoadedImage, output: torch.Tensor, baseline: torch.Tensor | None) -> None:
        """Thumbnails for the HTML report; failing to write them is a warning, never a failed image."""
        try:
            write_thumbnails(self.job.output_dir / THUMB_DIR, item.item.output.stem, {
                "input": to_uint8(item.observed[None])[0], "output": output, "reference": item.reference,
                "baseline": baseline})
        except OSError as exc:
            self.events.warn(f"cannot write thumbnails for {item.item.output.name} ({exc})")

    def _done(self, record: ImageRecord, item: LoadedImage, seconds: float) -> None:
        record.seconds = round(seconds + item.load_seconds, 3)
        self.events.record(record)
        self.records.append(record)
