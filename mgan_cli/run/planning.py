"""Planning: the job's inputs -> work items (what to restore) and settled records (what not to)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mgan_cli.run.failures import Failure, Stage
from mgan_cli.run.job import Job, image_seed
from mgan_cli.run.records import ImageRecord


@dataclass(frozen=True)
class WorkItem:
    """One input to restore into ``output`` with its per-image ``seed``."""

    input: Path
    output: Path
    seed: int


@dataclass
class Plan:
    """``todo`` in input order; ``settled`` are records already final (skipped, or failed before loading)."""

    todo: list[WorkItem]
    settled: list[ImageRecord]


def plan_work(job: Job, previous: dict[str, dict[str, Any]]) -> Plan:
    """Split the job's inputs into work and settled records: an input whose output would overwrite an
    input or another input's output fails; an existing output is skipped (keeping its ``previous`` row)
    unless ``job.overwrite``."""
    todo: list[WorkItem] = []
    settled: list[ImageRecord] = []
    claimed: dict[Path, Path] = {}
    inputs = {p.resolve() for p in job.inputs}
    for path in job.inputs:
        output = job.output_dir / f"{path.stem}.png"
        record = ImageRecord(input=str(path), output=str(output))
        if output.resolve() in inputs:
            settled.append(record.fail(Failure(Stage.PLAN, (
                f"{path}: its output {output} would overwrite an input; choose another -o folder"))))
        elif output in claimed:
            settled.append(record.fail(Failure(Stage.PLAN, (
                f"{path}: same file name as {claimed[output]}, both would write {output}; rename one"))))
        elif output.exists() and not job.overwrite:
            record.status = "skipped"
            record.restore_results(previous.get(str(output), {}))
            record.notes.append("output exists (use --overwrite to redo)")
            settled.append(record)
            claimed[output] = path
        else:
            claimed[output] = path
            todo.append(WorkItem(path, output, image_seed(job.preset.seed, path.name)))
    return Plan(todo, settled)
