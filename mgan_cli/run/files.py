"""The whole file pipeline of a task: inputs on disk in, ``OUT/`` with images, run store and report out.

:func:`restore_files` is what ``mgan invert|colorize|superres|inpaint|denoise`` and ``mgan edit`` run (the
command line only parses flags, shows progress and turns the outcome into an exit status), and what
:meth:`mgan_cli.api.Restorer.restore_files` runs from Python. It resolves the inputs, finds faces
(``align="faces"``) in this process's shard of the inputs (:mod:`mgan_cli.run.sharding`: ``--shard``, a SLURM
array task or a torchrun rank), records every image into this host's and shard's run store in ``OUT``, keeps
``report.json``/``report.csv``/``index.html`` (the union of every store of ``OUT``) current after every batch
and once more at the end, and pastes faces back. Shards never wait for each other.
It never prints: progress, records and warnings go to :class:`~mgan_cli.run.job.RunEvents`.
"""

from __future__ import annotations

import dataclasses
import datetime
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mgan_cli.config.family_defaults import generator_facts
from mgan_cli.config.presets import VGG16_WEIGHTS, Preset
from mgan_cli.config.tasks import Task
from mgan_cli.core.degradations import build_degradation
from mgan_cli.core.engine import EngineOptions
from mgan_cli.encoder import load_encoder
from mgan_cli.errors import ConfigurationError, MganError
from mgan_cli.faces.alignment import generator_alignment, is_face_generator
from mgan_cli.faces.identity import IdentityRows
from mgan_cli.faces.session import FaceSession
from mgan_cli.generators import Generator
from mgan_cli.report.tables import Report, check_views, write_views
from mgan_cli.run import sharding
from mgan_cli.run.extras import RunExtras
from mgan_cli.run.failures import BEFORE_RESTORING, Stage
from mgan_cli.run.job import Job, RunEvents
from mgan_cli.run.records import ImageRecord
from mgan_cli.run.runner import Runner, open_output_folder
from mgan_cli.run.store import RunStore, host_name
from mgan_cli.utils.imageio import collect_inputs
from mgan_cli.version import __version__
from mgan_cli.weights.importing import generator_identity
from mgan_cli.weights.store import default_store

#: :attr:`FilesOutcome.status`: every image ok or skipped / some failed / nothing could run
ALL_DONE, SOME_FAILED, NOTHING_RAN = 0, 1, 2


class RunInterrupted(KeyboardInterrupt):
    """An interrupt (Ctrl-C, SIGINT) stopped a file run; ``finished`` images are recorded in ``output_dir``
    and running the same command again resumes. A :class:`KeyboardInterrupt`, so that it stops a notebook
    cell or a script as an interrupt does."""

    def __init__(self, finished: int, output_dir: Path) -> None:
        super().__init__(f"interrupted; {finished} finished images are recorded in {output_dir}: run the same "
                         "command again to resume")
        self.finished = finished
        self.output_dir = output_dir


@dataclass
class FilesOptions:
    """What a file run does besides restoring: where references and masks come from, how inputs are
    fitted, faces, rerun policy, and the per-image work after the inversion (:class:`RunExtras`)."""

    reference_dir: Path | None = None
    mask: Path | None = None
    resize: str = "error"
    recursive: bool = False
    overwrite: bool = False
    align: str = "none"
    paste_back: bool = False
    face_alignment: str | None = None
    extras: RunExtras = dataclasses.field(default_factory=RunExtras)
    batch_size: int | str | None = None  # "auto", a size, or None: auto on CUDA, the preset's elsewhere
    stdin_lines: Sequence[str] = ()  # the paths "-" stands for among the inputs
    command: str | None = None  # recorded in the report header (default: this process's command line)
    shard: str | None = None  # "I/N"; None: from SLURM's array or torchrun's variables, else everything


@dataclass
class FilesOutcome:
    """What a file run did: this process's ``records`` (input order), the ``report`` views it wrote last
    (every shard of ``OUT``) and the ``status`` of this process's shard: :data:`ALL_DONE`,
    :data:`SOME_FAILED` or :data:`NOTHING_RAN`."""

    records: list[ImageRecord]
    report: Report | None
    status: int
    output_dir: Path
    shard: sharding.Shard = dataclasses.field(default_factory=sharding.Shard)


def run_status(outcomes: Sequence[tuple[str, Stage | None]]) -> int:
    """:data:`ALL_DONE` if every image is ok or skipped; :data:`NOTHING_RAN` if every image failed before
    restoring; :data:`SOME_FAILED` otherwise.

    >>> run_status([("ok", None), ("failed", Stage.RESTORE)])
    1
    """
    failed = [stage for status, stage in outcomes if status == "failed"]
    if not failed:
        return ALL_DONE
    if len(failed) == len(outcomes) and all(stage in BEFORE_RESTORING for stage in failed):
        return NOTHING_RAN
    return SOME_FAILED


def used_weights(preset: Preset) -> dict[str, str | None]:
    """The sha256 of every weight file the run uses: the generator, VGG16 only when λ > 0, and the encoder with
    ``init: encoder`` (they enter the settings fingerprint: a rerun with other weights is a clash)."""
    weights = {preset.generator: generator_identity(preset.generator)[2]}
    if preset.loss.perceptual_weight > 0:
        weights[VGG16_WEIGHTS] = default_store().entry(VGG16_WEIGHTS).sha256
    if preset.inversion.init == "encoder":  # refused here, before anything runs, when there is none
        weights[f"encoder:{preset.generator}"] = load_encoder(preset.generator).sha256
    return weights


def extras_header(extras: RunExtras) -> dict[str, Any]:
    """What the report header says about tuning, latents and edits (nothing when none was asked for)."""
    header: dict[str, Any] = {}
    if extras.tuning.steps:
        header["tuning"] = dataclasses.asdict(extras.tuning)
    if extras.save_latents:
        header["save_latents"] = True
    if extras.edit is not None:
        header["edit"] = {"direction": extras.edit.direction.name, "space": extras.edit.direction.space,
                          "strengths": list(extras.edit.strengths),
                          "edit_layers": None if extras.edit.rows is None else
                          f"{extras.edit.rows.start}-{extras.edit.rows.stop - 1}",
                          "edit_upper": extras.edit.move_upper}
    return header


def face_session(task: Task, preset: Preset, output_dir: Path, face_alignment: str | None,
                 paste_back: bool = False) -> FaceSession:
    """The faces of this run: the generator's crop convention and the sizes the task observes and outputs."""
    convention, alignment_options = generator_alignment(preset.generator, face_alignment)
    resolution = generator_facts(preset.generator).resolution
    observed = build_degradation(preset.degradation).observed_size(resolution)
    return FaceSession(output_dir, convention, alignment_options, observed, resolution, task.compare_to_input,
                       composites=paste_back)


def restore_files(task: Task, preset: Preset, inputs: Sequence[str | Path], output_dir: Path,
                  options: FilesOptions | None = None, *, device: torch.device, engine: EngineOptions,
                  generator: Callable[[], Generator] | None = None, events: RunEvents | None = None
                  ) -> FilesOutcome:
    """Restore the images named by ``inputs`` (files, folders, ``-`` for ``options.stdin_lines``) into
    ``output_dir`` with ``preset`` (already resolved and checked) on ``device``; see the module docstring.
    ``generator()`` gives the preset's generator (e.g. one already loaded) instead of loading it here; it is
    called once the inputs and the output folder are known to be usable.

    Raises :class:`ConfigurationError` for unusable options (no inputs, ``paste_back`` without faces),
    :class:`~mgan_cli.errors.OutputError` when ``OUT`` cannot be used, :class:`RunInterrupted` on an interrupt.
    """
    started = time.time()
    options = options or FilesOptions()
    events = events or RunEvents()
    paths = collect_inputs([str(i) for i in inputs], recursive=options.recursive,
                           stdin_lines=list(options.stdin_lines), exclude=output_dir)
    if not paths:
        raise ConfigurationError("no input images found (give files, folders, or - to read paths from stdin)")
    if options.paste_back and options.align != "faces":
        raise ConfigurationError("--paste-back needs --align faces")
    shard = sharding.from_environment(options.shard)
    paths = sharding.take(paths, shard)  # photos by their own name: a photo's faces all stay on its shard
    reference_dir, mask, faces = options.reference_dir, options.mask, None
    check_views(output_dir)  # before any work (staging faces included): never replace a report mgan did not write
    if options.align == "faces" and paths:
        faces = face_session(task, preset, output_dir, options.face_alignment, options.paste_back)
        paths, reference_dir, mask = faces.stage(paths, reference_dir, mask)
    run_device = sharding.device_for(shard, device)
    job = Job(task=task, preset=preset, inputs=paths, output_dir=output_dir,
              reference_dir=reference_dir, mask=mask, resize=options.resize, device=run_device,
              overwrite=options.overwrite, engine=engine, weights_sha256=used_weights(preset), extras=options.extras,
              batch_size=options.batch_size, names=faces.names if faces is not None else None)
    command = options.command if options.command is not None else " ".join(["mgan", *sys.argv[1:]])

    def header() -> dict[str, Any]:
        return {
            "mgan_version": __version__,
            "task": task.name,
            "command": command,
            "preset": preset.to_dict(),
            "seed": preset.seed,
            "device": str(run_device),
            "engine": dataclasses.asdict(engine),
            "shard": shard.header(),
            "host": host_name(),
            "weights_sha256": job.weights_sha256,
            **extras_header(job.extras),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "started": datetime.datetime.fromtimestamp(started, datetime.UTC).isoformat(timespec="seconds"),
            "elapsed_seconds": round(time.time() - started, 3),
        }

    store = open_output_folder(job, shard.label)
    try:
        records, report = _run_into(store, job, header, events, faces, options.paste_back, generator)
    finally:
        store.close()
    outcomes = [(r.status, r.failure.stage if r.failure else None) for r in records]
    return FilesOutcome(records, report, run_status(outcomes) if outcomes else ALL_DONE, output_dir, shard)


def _run_into(store: RunStore, job: Job, header: Callable[[], dict[str, Any]],
              events: RunEvents, faces: FaceSession | None, paste_back: bool,
              generator: Callable[[], Generator] | None) -> tuple[list[ImageRecord], Report | None]:
    """Run this shard into ``store``, keeping the views current; this run's records and last views."""
    runner: Runner | None = None
    plain_header = header

    def header() -> dict[str, Any]:  # with the batch size chosen (and the memory probe's numbers) once known
        choice = None if runner is None else runner.restorer.batch_choice
        return plain_header() | ({"batch": choice.header()} if choice is not None else {})

    run_id = store.begin_run(header())
    events = dataclasses.replace(events)
    after_batch = events.on_batch_done

    def save(records: list[ImageRecord]) -> None:  # after every batch (records are stored as they finish)
        store.update_run(run_id, header())
        write_views(store, header())
        if after_batch is not None:
            after_batch(records)

    events.on_batch_done = save
    if faces is not None:  # each face crop's record becomes its photo's, with the face and its identity
        events.annotate = faces.annotate
        if events.on_warning is not None:  # warnings name the user's photos, not staged crops
            warn, user_text = events.on_warning, faces.user_text
            events.on_warning = lambda message: warn(user_text(message))
    elif is_face_generator(job.preset.generator):  # identity of the output's face in every row
        events.annotate = IdentityRows(job.reference_dir, job.task.compare_to_input).annotate
    runner = Runner(job, events, generator=None if generator is None else generator(), store=store, run_id=run_id)
    try:
        if faces is not None:  # photos without a usable face
            runner.sink.settle([(record, None, None) for record in faces.failed])
        records = runner.run()
    except (KeyboardInterrupt, MganError) as exc:
        try:
            store.update_run(run_id, header())
            write_views(store, header())
        except MganError:
            pass
        if isinstance(exc, KeyboardInterrupt):
            raise RunInterrupted(len(runner.sink.records), job.output_dir) from None
        raise
    if faces is not None and paste_back:
        for photo, error in faces.paste_back(records, job.overwrite).items():
            events.warn(error)
            for record in records:
                if record.input == photo and record.status == "ok":
                    record.notes.append(error)
        runner.sink.update(records)  # paste-back adds the composite to each face's row
    store.update_run(run_id, header())
    return records, write_views(store, header())
