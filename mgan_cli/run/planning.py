"""Planning: the job's inputs -> work items (what to restore) and settled records (what not to).

An output ``OUT/<stem>.png`` belongs to the input that produced it: the run store records, per output,
the sha256 of the input file's bytes and of the effective settings (:func:`settings_fingerprint`). An
existing output made from the same input and settings is skipped and keeps its own earlier results; one
made from another input or other settings (or that no run recorded) is redone with ``--overwrite`` and is
otherwise a clash, reported as a failure with the reason. Which input may write which name at all is
:class:`mgan_cli.run.names.OutputNames` (shared with ``--align faces``, which claims a photo's face outputs and
composite before staging its crops); messages name the user's files.

Planning decides against what the stores hold when it reads them; another run may record the same output
name meanwhile. Each work item therefore carries the :class:`~mgan_cli.run.store.Claim` it was planned
against (none with ``--overwrite``), and the store decides again when the image is committed
(:meth:`RunStore.put <mgan_cli.run.store.RunStore.put>`): the second run to commit an output with other
settings gets the same clash (:func:`clash_message`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mgan_cli.errors import MganError
from mgan_cli.run.extras import EditRequest
from mgan_cli.run.failures import Failure, Stage
from mgan_cli.run.job import Job, image_seed
from mgan_cli.run.names import OutputNames
from mgan_cli.run.records import ImageRecord
from mgan_cli.run.store import Claim, Identity, RunStore, StoredImage, input_key
from mgan_cli.utils.inputs import open_regular
from mgan_cli.utils.pairing import StemIndex


@dataclass(frozen=True)
class WorkItem:
    """One input to restore into ``output`` with its per-image ``seed``, its mask file (None: none, or not
    found; loading then says so), its :class:`Identity` and the :class:`Claim` on ``output`` it was planned
    against (None: ``--overwrite``, whoever commits last wins)."""

    input: Path
    output: Path
    seed: int
    mask: Path | None = None
    identity: Identity | None = None
    claim: Claim | None = None

    @property
    def output_name(self) -> str:
        return self.output.name

    @property
    def input_key(self) -> str:
        return input_key(self.input)


@dataclass
class Plan:
    """``todo`` in input order; ``settled`` are records already final (skipped, or failed before loading),
    each with the key of its row in the store and the run that produced it."""

    todo: list[WorkItem]
    settled: list[tuple[ImageRecord, WorkItem | None, str | None]]


def settings_fingerprint(job: Job) -> dict[str, Any]:
    """The settings that decide an output's pixels (the preset after overrides, the weights' sha256,
    the task, degradation, seed, resize policy, precision, generator tuning, and what else the run writes:
    saved latents, edit frames), as plain data."""
    preset = job.preset.to_dict()
    settings = {"task": job.task.name, "generator": preset["generator"], "degradation": preset["degradation"],
                "inversion": warm_start_free(preset["inversion"]), "loss": preset["loss"], "seed": preset["seed"],
                "weights_sha256": dict(sorted(job.weights_sha256.items())), "resize": job.resize,
                "precision": job.engine.precision}
    if job.extras.tuning.steps > 0:  # a tuned generator renders other pixels
        settings["tuning"] = dataclasses.asdict(job.extras.tuning)
    if job.extras.save_latents:  # an output the run writes
        settings["save_latents"] = True
    if job.extras.edit is not None:  # the frames' pixels
        settings["edit"] = edit_settings(job.extras.edit)
    return settings


def warm_start_free(inversion: dict[str, Any]) -> dict[str, Any]:
    """A resolved preset's ``inversion`` block without the fields that do not change its pixels by themselves: the
    encoder recipe's iterations and tuning steps (resolved into ``iterations`` and the run's tuning, which the
    fingerprint holds, :func:`mgan_cli.encoder.resolve_start`) and, for a random start, the encoder start's noise
    scale (so outputs recorded before these fields existed still match)."""
    kept = {k: v for k, v in inversion.items() if k not in ("encoder_iterations", "encoder_tune_steps")}
    if kept.get("init") == "random":
        kept.pop("init_noise", None)
    return kept


def edit_settings(edit: EditRequest) -> dict[str, Any]:
    """What of an edit request decides its frames' pixels (the direction's vector by its sha256), as plain data
    (``mgan edit INPUT...`` and ``mgan edit --from-latents`` both fingerprint edits with it)."""
    # rounded, so that the same direction computed on another device (last-bit differences) still matches
    vector = (edit.direction.vector.detach().double().cpu() * 1e5).round().to(torch.int64).numpy().tobytes()
    return {"direction": edit.direction.name, "space": edit.direction.space,
            "vector_sha256": hashlib.sha256(vector).hexdigest(), "strengths": list(edit.strengths),
            "rows": None if edit.rows is None else [edit.rows.start, edit.rows.stop],
            "move_upper": edit.move_upper}


#: :func:`decide`'s answers
REDO, SKIP, CLASH = "redo", "skip", "clash"


def decide(exists: bool, owner: StoredImage | None, identity: Identity, overwrite: bool,
           missing: Callable[[], bool]) -> str:
    """What to do with an output (see the module docstring): :data:`REDO` it (nothing there yet, ``overwrite``,
    or made from this input and settings but ``missing()`` one of its files), :data:`SKIP` it (made from this
    input with these settings, every file there) or report a :data:`CLASH` (made otherwise, or by no recorded
    run). ``exists``: a file of the output is there; ``owner``: the stored row that made it."""
    if not exists:
        return REDO
    if owner is not None and owner.identity == identity and not overwrite:
        return REDO if missing() else SKIP
    return REDO if overwrite else CLASH


def skipped_record(owner: StoredImage, path: Path, output: Path,
                   metric_names: tuple[str, ...] = ("psnr", "ssim", "lpips", "niqe")) -> ImageRecord:
    """The record of an output :func:`decide` skips: its producer's row, marked skipped."""
    record = ImageRecord.from_row(owner.row, metric_names)
    record.input, record.output, record.status, record.error = str(path), str(output), "skipped", None
    note = "output exists, made from this input with these settings (use --overwrite to redo)"
    record.notes = [n for n in record.notes if not n.startswith("output exists")] + [note]
    return record


def clash_message(path: Path, output: Path, owner: StoredImage | None, identity: Identity | None) -> str:
    """Why ``output`` (there already) is not replaced by what ``path`` makes, and what to do."""
    if owner is None:
        why = "no run recorded what made it"
    elif owner.identity is None or identity is None or owner.identity.input_sha256 != identity.input_sha256:
        why = f"it was made from another input ({owner.input})"
    else:
        why = "it was made with other settings"
    return f"{path}: {output} already exists and {why}; pass --overwrite to replace it, or choose another -o"


def sha256_file(path: Path) -> str:
    """The sha256 of a regular file's bytes (an input's identity). Raises :class:`OSError`."""
    digest = hashlib.sha256()
    with open_regular(path) as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Planner:
    """Turns the job's inputs into a :class:`Plan` against what ``store`` recorded in ``OUT``."""

    def __init__(self, job: Job, store: RunStore) -> None:
        self.job = job
        self.store = store
        self._settings = json.dumps(settings_fingerprint(job), sort_keys=True, default=str)
        self._masks = StemIndex(job.mask, "mask") if job.mask is not None and job.mask.is_dir() else None

    def mask_for(self, path: Path) -> Path | None:
        """The mask file of ``path`` (None: no mask, or none of its name; loading then fails it).
        Raises :class:`ImageInputError` when several masks have its name."""
        if self._masks is not None:
            return self._masks.find(path.stem)
        return self.job.mask

    def identity(self, path: Path, seed: int, mask: Path | None) -> Identity:
        """Raises :class:`OSError` if the input (or its mask) cannot be read."""
        mask_sha = sha256_file(mask) if mask is not None and mask.is_file() else None
        settings = _sha256_text(f"{self._settings}|seed={seed}|mask={mask_sha}")
        return Identity(sha256_file(path), settings)

    def plan(self) -> Plan:
        job = self.job
        todo: list[WorkItem] = []
        settled: list[tuple[ImageRecord, WorkItem | None, str | None]] = []
        names = job.names if job.names is not None else OutputNames(job.inputs)
        owners = self.store.owners()  # every store of OUT, read once (an output newer than this: read again)

        def fail(record: ImageRecord, item: WorkItem | None, stage: Stage, message: str) -> None:
            settled.append((record.fail(Failure(stage, message)), item, None))

        for path in job.inputs:
            output = job.output_dir / f"{path.stem}.png"
            record = ImageRecord(input=str(path), output=str(output))
            user = names.user_path(path)  # the user's file (a face crop's photo), as messages name it
            if "\0" in str(path):
                fail(record, None, Stage.INPUT, f"{input_key(path)}: the path contains a NUL byte")
                continue
            try:
                mask = self.mask_for(path)
            except MganError as exc:
                fail(record, None, Stage.INPUT, str(exc))
                continue
            item = WorkItem(path, output, image_seed(job.preset.seed, path.name), mask)
            refusal = names.claim(path, [output])
            if refusal is not None:
                fail(record, item, Stage.PLAN, refusal)
                continue
            try:
                identity = self.identity(path, item.seed, item.mask)
                item = dataclasses.replace(item, identity=identity)
            except FileNotFoundError:
                fail(record, item, Stage.INPUT, f"{user}: no such file")
                continue
            except OSError as exc:
                fail(record, item, Stage.INPUT, f"{user}: cannot read ({exc.strerror or exc})")
                continue
            exists = os.path.lexists(output)
            owner = owners.get(output.name)
            if exists and owner is None:
                owner = self.store.owner_once_written(output.name)
            # an output is done only when all its files are there
            choice = decide(exists, owner, identity, job.overwrite,
                            lambda stem=output.stem: self._extras_missing(stem))
            if choice == SKIP:
                assert owner is not None
                settled.append((skipped_record(owner, path, output, job.metrics), item, owner.run))
            elif choice == REDO:
                todo.append(self._claimed(item, owner))  # the owner it was planned against (--overwrite: none)
            else:
                fail(record, item, Stage.PLAN, clash_message(user, output, owner, identity))
        return Plan(todo, settled)

    def _claimed(self, item: WorkItem, owner: StoredImage | None) -> WorkItem:
        """``item`` planned against ``owner`` (the output's owner now); with ``--overwrite`` it claims nothing."""
        return item if self.job.overwrite else dataclasses.replace(item, claim=Claim.of(owner))

    def _extras_missing(self, stem: str) -> bool:
        """Whether a file the run writes beside ``OUT/<stem>.png`` (saved latents, frames, strip) is missing."""
        from mgan_cli.edit.latents import latents_path
        from mgan_cli.run.extras import frame_paths, strip_path

        extras, out = self.job.extras, self.job.output_dir
        wanted: list[Path] = [latents_path(out, stem)] if extras.save_latents else []
        if extras.edit is not None:
            wanted += [*frame_paths(out, stem, extras.edit.strengths), strip_path(out, stem)]
        return any(not path.is_file() for path in wanted)
