"""The runner wires the parts of a run: plan, then load / restore / finish in three overlapping stages."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from mgan_cli.errors import MganError
from mgan_cli.generator_loading import load_generator
from mgan_cli.generators import Generator
from mgan_cli.run.job import Job, RunEvents
from mgan_cli.run.loading import Loader
from mgan_cli.run.planning import Plan, WorkItem, plan_work
from mgan_cli.run.records import ImageRecord
from mgan_cli.run.restoring import BatchRestorer
from mgan_cli.run.sink import Sink


class Runner:
    """Executes a :class:`Job` (see :mod:`mgan_cli.run`)."""

    def __init__(self, job: Job, events: RunEvents | None = None, generator: Generator | None = None) -> None:
        self.job = job
        self.events = events or RunEvents()
        self.restorer = BatchRestorer(job, generator or load_generator(job.preset.generator),
                                      on_step=self.events.on_step, on_warning=self.events.on_warning)
        if self.restorer.needs_mask and job.mask is None:
            raise MganError(f"{job.task.name} needs --mask FILE_OR_DIR (white = missing pixels)")
        self.loader = Loader(job, self.restorer.resolution, self.restorer.observed_size, self.restorer.needs_mask)
        self.sink = Sink(job, self.events)

    def plan(self, previous: dict[str, dict[str, Any]] | None = None) -> Plan:
        from mgan_cli.report import previous_records

        return plan_work(self.job, previous_records(self.job.output_dir) if previous is None else previous)

    def run(self) -> list[ImageRecord]:
        """Process every input; returns one record per input, in input order.

        Three stages overlap: a loader thread decodes batch i+1 while the main thread optimises batch i,
        and a writer thread encodes, measures and records batch i-1.
        """
        plan = self.plan()
        self.sink.settle(plan.settled)
        self.job.output_dir.mkdir(parents=True, exist_ok=True)
        if plan.todo:
            self.restorer.fit_batch_to_memory()
        limit = self.restorer.batch_limit
        batches = [plan.todo[i:i + limit] for i in range(0, len(plan.todo), limit)]
        with ThreadPoolExecutor(1, thread_name_prefix="mgan-load") as loader, \
                ThreadPoolExecutor(1, thread_name_prefix="mgan-write") as writer:
            loading = loader.submit(self.loader.load_batch, batches[0]) if batches else None
            finishing: list[Future[None]] = []
            for index in range(len(batches)):
                assert loading is not None
                loaded, failed = loading.result()
                if index + 1 < len(batches):
                    loading = loader.submit(self.loader.load_batch, batches[index + 1])
                chunks = self.restorer.restore_all([p.observed for p in loaded], [p.mask for p in loaded],
                                                   [p.item.seed for p in loaded])
                finishing.append(writer.submit(self.sink.finish, failed, loaded, chunks))
            for future in finishing:
                future.result()
        return self.in_input_order(self.sink.records)

    def in_input_order(self, records: list[ImageRecord]) -> list[ImageRecord]:
        order = {str(path): i for i, path in enumerate(self.job.inputs)}
        return sorted(records, key=lambda r: order.get(r.input, len(order)))


__all__ = ["Runner", "WorkItem"]
