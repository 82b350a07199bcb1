"""Running a restoration task over image files, in parts that each do one job and can be tested alone:

* :mod:`~mgan_cli.run.job` — :class:`Job` (what to do) and :class:`RunEvents` (progress callbacks).
* :mod:`~mgan_cli.run.planning` — inputs -> work items with their identity (sha256 of the input's bytes
  and of the effective settings) and records already settled (an output made from the same input and
  settings is skipped with its own results; another one behind an existing output is a clash).
* :mod:`~mgan_cli.run.names` — output-name planning: every name written into ``OUT`` belongs to one of the
  user's inputs (face crops and composites included); a later input that would take a claimed name is refused.
* :mod:`~mgan_cli.run.store` — the SQLite store in ``OUT/.mgan/``: every record of every run into
  ``OUT`` (the report files are views of it, :mod:`mgan_cli.report.tables`).
* :mod:`~mgan_cli.run.loading` — a work item -> its tensors (decode, fit to size, mask, reference).
* :mod:`~mgan_cli.run.restoring` — tensors in, tensors out, no files (the engine, batching, out-of-memory).
* :mod:`~mgan_cli.run.sink` — write the PNG, measure, complete the record, store and emit it.
* :mod:`~mgan_cli.run.runner` — wires them: the loader thread decodes batch i+1 while the main thread
  optimises batch i and the writer thread finishes batch i-1.

Failures travel as :class:`~mgan_cli.run.failures.Failure` values (stage + one-line message) in the
image's :class:`~mgan_cli.run.records.ImageRecord`; a bad input never stops the rest of the batch.
The runner never prints. A new per-image field: :mod:`mgan_cli.run.records`; a new report file (a view
of the store): :data:`mgan_cli.report.tables.VIEWS`.
"""

from mgan_cli.run.failures import Failure, Stage
from mgan_cli.run.job import Job, RunEvents, image_seed
from mgan_cli.run.records import ImageRecord
from mgan_cli.run.runner import Runner, open_output_folder

__all__ = ["Failure", "ImageRecord", "Job", "RunEvents", "Runner", "Stage", "image_seed", "open_output_folder"]
