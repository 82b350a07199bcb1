"""The runner wires the parts of a run: plan, then load / restore / finish in three overlapping stages."""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor

from mgan_cli.errors import MganError, OutputError
from mgan_cli.generators import Generator
from mgan_cli.run.job import Job, RunEvents
from mgan_cli.run.loading import Loader
from mgan_cli.run.planning import Plan, Planner
from mgan_cli.run.records import ImageRecord
from mgan_cli.run.restoring import BatchRestorer
from mgan_cli.run.sink import Sink
from mgan_cli.run.store import RunStore
from mgan_cli.utils.atomic import make_folder
from mgan_cli.weights.loading import load_generator


def open_output_folder(job: Job, shard_label: str = "0of1") -> RunStore:
    """Create ``OUT`` (one clear :class:`OutputError` if it cannot be) and open this host's store of shard
    ``shard_label`` (``I``of``N``; :mod:`mgan_cli.run.store`). A link to a
    folder inside ``OUT`` (or ``OUT/.mgan``) is refused: files written into it (thumbnails, latents, frames)
    would land outside ``OUT``. So is a ``report.json``/``report.csv``/``index.html`` in ``OUT`` that its views
    would replace but mgan did not write (:func:`~mgan_cli.report.tables.check_views`), before any work."""
    from mgan_cli.report.tables import check_views

    make_folder(job.output_dir)
    check_views(job.output_dir)  # before this run's store exists: an OUT without one has no views of mgan's
    store = RunStore(job.output_dir, shard_label)
    for folder in (job.output_dir, store.folder):
        for entry in os.scandir(folder):
            if entry.is_symlink() and entry.is_dir():
                store.close()
                raise OutputError(f"{entry.path} is a link to a folder; mgan writes only inside the output folder "
                                  "(remove the link)")
    return store


class Runner:
    """Executes a :class:`Job` (see :mod:`mgan_cli.run`), recording into ``store`` (default: the output
    folder's) as run ``run_id`` (default: a new run with a minimal header)."""

    def __init__(self, job: Job, events: RunEvents | None = None, generator: Generator | None = None,
                 store: RunStore | None = None, run_id: int | None = None) -> None:
        self.job = job
        self.events = events or RunEvents()
        self.restorer = BatchRestorer.for_job(job, generator or load_generator(job.preset.generator),
                                      on_step=self.events.on_step, on_warning=self.events.on_warning)
        if self.restorer.needs_mask and job.mask is None:
            raise MganError(f"{job.task.name} needs --mask FILE_OR_DIR (white = missing pixels)")
        self.loader = Loader(job, self.restorer.resolution, self.restorer.observed_size, self.restorer.needs_mask)
        self.store = store or open_output_folder(job)
        if run_id is None:
            run_id = self.store.begin_run({"task": job.task.name, "preset": job.preset.to_dict()})
        self.sink = Sink(job, self.events, self.store, run_id)

    def plan(self) -> Plan:
        return Planner(self.job, self.store).plan()

    def run(self) -> list[ImageRecord]:
        """Process every input; returns one record per input, in input order.

        Three stages overlap: a loader thread decodes batch i+1 while the main thread optimises batch i,
        and a writer thread encodes, measures and records batch i-1. An interrupt (or an error of the
        output folder) stops the optimisation; batches already optimised are still written and recorded.
        """
        plan = self.plan()
        self.sink.settle(plan.settled)
        if plan.todo:
            self.restorer.fit_batch_to_memory(inputs=len(plan.todo), requested=self.job.batch_size)
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
                _raise_first_error(finishing)
                finishing.append(writer.submit(self.sink.finish, failed, loaded, chunks))
            for future in finishing:
                future.result()
        return self.in_input_order(self.sink.records)

    def in_input_order(self, records: list[ImageRecord]) -> list[ImageRecord]:
        order = {str(path): i for i, path in enumerate(self.job.inputs)}
        return sorted(records, key=lambda r: order.get(r.input, len(order)))


def _raise_first_error(futures: list[Future[None]]) -> None:
    """Stop early when the writer failed (e.g. the output folder is full)."""
    for future in futures:
        if future.done() and future.exception() is not None:
            future.result()
