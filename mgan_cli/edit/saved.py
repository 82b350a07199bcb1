"""``mgan edit``'s library side: an edit request from its flags, and rendering saved latents into frames.

* :func:`resolve_edit` turns ``--direction``/``--condition``/``--strengths``/``--edit-layers``/``--edit-upper``
  into an :class:`~mgan_cli.run.extras.EditRequest` for codes of one generator and latent space, refusing what
  cannot work (``mgan edit INPUT...`` hands it to the file pipeline as extras).
* :func:`render_saved` renders the ``.safetensors`` files ``--save-latents`` wrote (``mgan edit --from-latents``):
  no inversion; each file's generator (and its tuned weights) renders its frames, each with the direction
  computed for that generator; a bad file fails alone.

``--from-latents`` records into ``OUT``'s run store as every task does (:mod:`mgan_cli.run.store`,
:mod:`mgan_cli.run.planning`): each latents file is an input (its identity: the sha256 of its bytes), its
output is ``OUT/strips/<stem>.png`` with its frames (stored as ``strips/<stem>.png``, so it never takes the
place of an inverted ``OUT/<stem>.png``), and the settings are the edit (direction vector, strengths, rows),
the generator and its weights' sha256. The same command again skips every file; other settings are a clash
unless ``--overwrite`` (which removes the frames only the replaced record had); ``OUT/report.json``/``.csv``/
``index.html`` are views of every run of ``OUT``, so an invert run's rows stay beside the edit's.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mgan_cli.core.tuning import apply_tuned_state
from mgan_cli.edit import boundaries, latents
from mgan_cli.edit.frames import Direction, check_compatible, parse_rows, parse_strengths, render_frames, strip_uint8
from mgan_cli.errors import ConfigurationError, MganError, OutputError
from mgan_cli.generators import Generator
from mgan_cli.report.tables import write_views
from mgan_cli.run.extras import EditRequest, RunExtras, frame_paths, strip_path
from mgan_cli.run.failures import Failure, Stage
from mgan_cli.run.files import extras_header
from mgan_cli.run.planning import CLASH, SKIP, clash_message, decide, edit_settings, sha256_file, skipped_record
from mgan_cli.run.records import ImageRecord
from mgan_cli.run.store import Identity, RunStore, StoredImage, host_name, input_key
from mgan_cli.utils.atomic import make_folder, stage
from mgan_cli.utils.imageio import encode_png, to_uint8, write_png
from mgan_cli.utils.messages import skipped_line
from mgan_cli.version import __version__
from mgan_cli.weights.importing import generator_identity
from mgan_cli.weights.loading import load_generator


def resolve_edit(generator_name: str, space: str, direction: str, conditions: Sequence[str], strengths: str,
                 edit_layers: str | None, edit_upper: bool = False,
                 generator: Callable[[], Generator] | None = None) -> EditRequest:
    """The edit request for codes of ``generator_name`` in ``space``; refuses what cannot work. ``generator()``
    gives the generator when a direction must be computed for it (``sefa:K``/``pca:K``; default: load it)."""
    default_space = "z" if space == "z" else "w"
    cache: dict[str, Generator] = {}

    def model() -> Generator:
        if "model" not in cache:
            cache["model"] = generator() if generator is not None else load_generator(generator_name)
        return cache["model"]

    main_direction = boundaries.resolve(direction, generator_name, default_space, model)
    others = [boundaries.resolve(c, generator_name, default_space, model) for c in conditions]
    resolved: Direction = boundaries.condition(main_direction, others)
    check_compatible(resolved, space, resolved.vector.numel())
    rows = parse_rows(edit_layers, "--edit-layers") if edit_layers else None
    if rows is not None and space == "z":
        raise ConfigurationError("--edit-layers needs codes in w or w+ (--space w); these are z codes")
    if edit_upper and space == "z":
        raise ConfigurationError("--edit-upper needs codes in w or w+ (--space w); these are z codes")
    return EditRequest(resolved, parse_strengths(strengths), rows, edit_upper)


@dataclass
class SavedRender:
    """What :func:`render_saved` did: this run's record of each latents file (input order; ok, skipped or
    failed) and the report it wrote (the views of every run of ``OUT``)."""

    rows: list[dict[str, Any]]
    report: Path

    @property
    def failed(self) -> int:
        return sum(row["status"] == "failed" for row in self.rows)

    @property
    def strips(self) -> int:
        return sum(row["status"] == "ok" for row in self.rows)

    @property
    def skipped(self) -> int:
        return sum(row["status"] == "skipped" for row in self.rows)


def saved_settings(edit: EditRequest, generator: str, generator_sha256: str | None) -> str:
    """The sha256 of what decides the pixels of a latents file's frames: the edit, the generator and its
    weights (the latents' own bytes are the input's identity)."""
    settings = {"task": "edit", "from_latents": True, "generator": generator, "generator_sha256": generator_sha256,
                "edit": edit_settings(edit)}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


class _SavedRun:
    """One ``--from-latents`` run into ``OUT``'s run store: models and directions loaded once each, one
    record per latents file."""

    def __init__(self, store: RunStore, run_id: int, output_dir: Path, *, direction: str, strengths: str,
                 conditions: Sequence[str], edit_layers: str | None, edit_upper: bool, device: torch.device,
                 generator: str | None, overwrite: bool, channels_last: bool | None) -> None:
        self.store, self.run_id, self.output_dir = store, run_id, output_dir
        self.direction, self.strengths, self.conditions = direction, strengths, conditions
        self.edit_layers, self.edit_upper = edit_layers, edit_upper
        self.device, self.generator, self.overwrite, self.channels_last = device, generator, overwrite, channels_last
        self.models: dict[str, tuple[Generator, str | None]] = {}
        self.edits: dict[tuple[str, str], EditRequest] = {}  # per (generator, space): a direction is its generator's
        self.owners: dict[str, StoredImage] = store.owners()  # read once (an output newer than this: read again)

    def model(self, name: str) -> tuple[Generator, str | None]:
        if name not in self.models:
            model = load_generator(name).to(self.device)
            if self.channels_last is not False:  # the layout the inverting run used by default
                model = model.to(memory_format=torch.channels_last)
            self.models[name] = (model, generator_identity(name)[2])
        return self.models[name]

    def render(self, path: Path, on_warning: Callable[[str], None] | None) -> ImageRecord:
        """Render, skip or fail one latents file and store its record. Raises :class:`ConfigurationError` (a
        direction that cannot apply) and :class:`OutputError` (``OUT`` cannot be written)."""
        stem = path.name[:-len(latents.SUFFIX)]
        strip = strip_path(self.output_dir, stem)
        output_name, key = strip.relative_to(self.output_dir).as_posix(), input_key(path)
        record = ImageRecord(input=str(path), output=str(strip))
        identity: Identity | None = None
        try:
            input_sha = sha256_file(path)
            saved = latents.load(path, self.generator)
            name = saved.generator
            model, sha = self.model(name)
            saved = latents.load(path, name, sha)  # the weights present must be the ones inverted with
            latents.check_fits(saved, model)
            space = saved.inversion.space
            if (name, space) not in self.edits:
                self.edits[(name, space)] = resolve_edit(name, space, self.direction, self.conditions, self.strengths,
                                                         self.edit_layers, self.edit_upper,
                                                         generator=lambda model=model: model)
            edit = self.edits[(name, space)]
            identity = Identity(input_sha, saved_settings(edit, name, sha))
            paths = frame_paths(self.output_dir, stem, edit.strengths)
            written = [*paths, strip]
            there = [p for p in written if os.path.lexists(p)]
            owner = (self.owners.get(output_name) or self.store.owner(output_name)) if there else None
            choice = decide(bool(there), owner, identity, self.overwrite,
                            lambda: any(not p.is_file() for p in written))
            if choice == SKIP:
                assert owner is not None
                skipped = skipped_record(owner, path, strip)
                self.store.put(skipped, output_name, key, identity, owner.run)
                return skipped
            if choice == CLASH:
                record.fail(Failure(Stage.PLAN, clash_message(path, there[0], owner, identity)))
            else:
                staged = stage(strip, encode_png(self._write(saved, model, edit, paths, strip)))
                record.status = "ok"
                record.fields = {"frames": [{"strength": s, "path": str(p)}
                                            for s, p in zip(edit.strengths, paths, strict=True)],
                                 "strip": str(strip), "generator": name}
                record.notes.append("rendered from saved latents (no inversion, no metrics)")
                try:
                    self.store.put(record, output_name, key, identity, self.run_id, staged)
                finally:
                    staged.discard()
                return record
        except (ConfigurationError, OutputError):
            raise  # a direction that cannot apply, or an output folder that cannot be written, fails the command
        except (MganError, OSError) as exc:
            record.fail(Failure(Stage.INPUT, str(exc)))
        if on_warning is not None:
            on_warning(skipped_line(path, record.error))
        self.store.put(record, output_name, key, identity, self.run_id)
        return record

    def _write(self, saved: latents.SavedLatents, model: Generator, edit: EditRequest, paths: list[Path],
               strip: Path) -> torch.Tensor:
        """Render and write the frames; returns the strip's pixels (renamed into place with the record)."""
        renderer = apply_tuned_state(model, saved.tuned) if saved.tuned else model
        frames = to_uint8(render_frames(renderer, saved.inversion.to(self.device), edit.direction, edit.strengths,
                                        edit.rows, edit.move_upper)).cpu()
        for folder in (paths[0].parent, strip.parent):
            make_folder(self.output_dir, folder)
        for frame, frame_path in zip(frames, paths, strict=True):
            write_png(frame, frame_path)
        return strip_uint8(frames)


def render_saved(directory: Path, output_dir: Path, *, direction: str, strengths: str,
                 conditions: Sequence[str] = (), edit_layers: str | None = None, edit_upper: bool = False,
                 device: torch.device, generator: str | None = None, overwrite: bool = False,
                 channels_last: bool | None = None, command: str | None = None,
                 on_warning: Callable[[str], None] | None = None) -> SavedRender:
    """Render every latents file in ``directory`` into ``output_dir`` (see the module docstring). ``generator``:
    refuse latents of any other generator. Raises :class:`ConfigurationError` for a direction that cannot apply
    and :class:`OutputError` for an output folder that cannot be used (both stop everything: what was recorded
    before stays, and the views show it); any other problem of one file (a clash included) fails that file,
    reported through ``on_warning``."""
    started = time.time()
    files = sorted(directory.glob(f"*{latents.SUFFIX}"))
    if not files:
        raise MganError(f"{directory}: no {latents.SUFFIX} files (write them with --save-latents)")
    for folder in (frame_paths(output_dir, "x", (0.0,))[0].parent, strip_path(output_dir, "x").parent):
        make_folder(output_dir, folder)  # before any work: a link there is refused in one line
    command = command if command is not None else " ".join(["mgan", *sys.argv[1:]])
    run: _SavedRun | None = None

    def header() -> dict[str, Any]:
        info: dict[str, Any] = {
            "mgan_version": __version__, "task": "edit", "command": command, "from_latents": str(directory),
            "device": str(device), "host": host_name(), "torch": torch.__version__,
            "python": platform.python_version(),
            "started": datetime.datetime.fromtimestamp(started, datetime.UTC).isoformat(timespec="seconds"),
            "elapsed_seconds": round(time.time() - started, 3)}
        if run is not None and run.edits:
            info.update(extras_header(RunExtras(edit=next(iter(run.edits.values())))))
            if len(run.edits) > 1:
                info["generators"] = sorted({name for name, _ in run.edits})
        return info

    store = RunStore(output_dir)
    try:
        run_id = store.begin_run(header())
        run = _SavedRun(store, run_id, output_dir, direction=direction, strengths=strengths, conditions=conditions,
                        edit_layers=edit_layers, edit_upper=edit_upper, device=device, generator=generator,
                        overwrite=overwrite, channels_last=channels_last)
        records: list[ImageRecord] = []
        try:
            for path in files:
                records.append(run.render(path, on_warning))
        except (KeyboardInterrupt, MganError):
            try:  # what was recorded before stays in the views
                store.update_run(run_id, header())
                write_views(store, header())
            except MganError:
                pass
            raise
        store.update_run(run_id, header())
        write_views(store, header())
    finally:
        store.close()
    return SavedRender([record.to_json() for record in records], output_dir / "report.json")
