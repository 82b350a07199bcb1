"""Running a restoration task over image files, in parts that each do one job and can be tested alone:

* :mod:`~mgan_cli.run.job` — :class:`Job` (what to do) and :class:`RunEvents` (progress callbacks).
* :mod:`~mgan_cli.run.planning` — inputs -> :class:`WorkItem` s to restore and records already settled
  (outputs that exist are skipped, clashes fail).
* :mod:`~mgan_cli.run.loading` — a work item -> its tensors (decode, fit to size, mask, reference).
* :mod:`~mgan_cli.run.restoring` — tensors in, tensors out, no files (the engine, batching, out-of-memory).
* :mod:`~mgan_cli.run.sink` — write the PNG, measure, complete the record, emit it.
* :mod:`~mgan_cli.run.runner` — wires them: the loader thread decodes batch i+1 while the main thread
  optimises batch i and the writer thread finishes batch i-1.

Failures travel as :class:`~mgan_cli.run.failures.Failure` values (stage + one-line message) in the
image's :class:`~mgan_cli.run.records.ImageRecord`; a bad input never stops the rest of the batch.
The runner never prints.
"""

from mgan_cli.run.failures import Failure, Stage
from mgan_cli.run.job import Job, RunEvents, image_seed
from mgan_cli.run.records import ImageRecord
from mgan_cli.run.runner import Runner

__all__ = ["Failure", "ImageRecord", "Job", "RunEvents", "Runner", "Stage", "image_seed"]
