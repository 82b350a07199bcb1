"""``mgan edit``'s library side: an edit request from its flags, and rendering saved latents into frames.

* :func:`resolve_edit` turns ``--direction``/``--condition``/``--strengths``/``--edit-layers``/``--edit-upper``
  into an :class:`~mgan_cli.run.extras.EditRequest` for codes of one generator and latent space, refusing what
  cannot work (``mgan edit INPUT...`` hands it to the file pipeline as extras).
* :func:`render_saved` renders the ``.safetensors`` files ``--save-latents`` wrote (``mgan edit --from-latents``):
  no inversion; each file's generator (and its tuned weights) renders its frames, each with the direction
  computed for that generator; a bad file fails alone; ``OUT/report.json``/``.csv`` get one row per file.
"""

from __future__ import annotations

import datetime
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
from mgan_cli.report.tables import summarize, write_csv, write_json
from mgan_cli.run.extras import EditRequest, RunExtras, frame_paths, strip_path
from mgan_cli.run.files import extras_header
from mgan_cli.run.records import ImageRecord
from mgan_cli.run.store import STORE_DIR, StoreReader
from mgan_cli.utils.atomic import make_folder
from mgan_cli.utils.imageio import to_uint8, write_png
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
    """What :func:`render_saved` did: one report row per latents file (input order) and the report it wrote."""

    rows: list[dict[str, Any]]
    report: Path

    @property
    def failed(self) -> int:
        return sum(row["status"] == "failed" for row in self.rows)

    @property
    def strips(self) -> int:
        return sum(row["status"] == "ok" for row in self.rows)


def render_saved(directory: Path, output_dir: Path, *, direction: str, strengths: str,
                 conditions: Sequence[str] = (), edit_layers: str | None = None, edit_upper: bool = False,
                 device: torch.device, generator: str | None = None, overwrite: bool = False,
                 channels_last: bool | None = None, command: str | None = None,
                 on_warning: Callable[[str], None] | None = None) -> SavedRender:
    """Render every latents file in ``directory`` into ``output_dir`` (see the module docstring). ``generator``:
    refuse latents of any other generator. Raises :class:`ConfigurationError` for a direction that cannot apply
    and :class:`OutputError` for an output folder that cannot be used (both stop everything); any other problem
    of one file fails that file, reported through ``on_warning``."""
    started = time.time()
    files = sorted(directory.glob(f"*{latents.SUFFIX}"))
    if not files:
        raise MganError(f"{directory}: no {latents.SUFFIX} files (write them with --save-latents)")
    if StoreReader(output_dir).paths():
        # its report.json/.csv are views of those stores: replacing them would lose the runs' rows
        raise OutputError(f"{output_dir} holds another run's results (its run store in {STORE_DIR}/); "
                          "render saved latents into another -o folder")
    frames_dir, strips_dir = frame_paths(output_dir, "x", (0.0,))[0].parent, strip_path(output_dir, "x").parent
    for folder in (frames_dir, strips_dir):  # before any work: a link there is refused in one line
        make_folder(output_dir, folder)
    rows: list[dict[str, Any]] = []
    models: dict[str, tuple[Generator, str | None]] = {}
    edits: dict[tuple[str, str], EditRequest] = {}  # per (generator, space): a direction belongs to its generator
    for path in files:
        record = ImageRecord(input=str(path))
        try:
            saved = latents.load(path, generator)
            name = saved.generator
            if name not in models:
                model = load_generator(name).to(device)
                if channels_last is not False:  # the layout the inverting run used by default
                    model = model.to(memory_format=torch.channels_last)
                models[name] = (model, generator_identity(name)[2])
            model, sha = models[name]
            saved = latents.load(path, name, sha)  # the weights present must be the ones inverted with
            latents.check_fits(saved, model)
            key = (name, saved.inversion.space)
            if key not in edits:
                edits[key] = resolve_edit(name, saved.inversion.space, direction, conditions, strengths, edit_layers,
                                          edit_upper, generator=lambda model=model: model)
            edit = edits[key]
            renderer = apply_tuned_state(model, saved.tuned) if saved.tuned else model
            frames = to_uint8(render_frames(renderer, saved.inversion.to(device), edit.direction, edit.strengths,
                                            edit.rows, edit.move_upper)).cpu()
            stem = path.name[:-len(latents.SUFFIX)]
            paths = frame_paths(output_dir, stem, edit.strengths)
            existing = [p for p in paths if p.exists()]
            if existing and not overwrite:
                raise MganError(f"{existing[0]} exists (use --overwrite to redo)")
            for folder in (frames_dir, strips_dir):
                make_folder(output_dir, folder)
            for frame, frame_path in zip(frames, paths, strict=True):
                write_png(frame, frame_path)
            write_png(strip_uint8(frames), strip_path(output_dir, stem))
            record.status = "ok"
            record.fields = {"frames": [{"strength": s, "path": str(p)}
                                        for s, p in zip(edit.strengths, paths, strict=True)],
                             "strip": str(strip_path(output_dir, stem)), "generator": name}
            record.notes.append("rendered from saved latents (no inversion, no metrics)")
        except (ConfigurationError, OutputError):
            raise  # a direction that cannot apply, or an output folder that cannot be written, fails the command
        except (MganError, OSError) as exc:
            record.status, record.error = "failed", str(exc)
            if on_warning is not None:
                on_warning(skipped_line(path, exc))
        rows.append(record.to_json())
    header = {"mgan_version": __version__, "task": "edit",
              "command": command if command is not None else " ".join(["mgan", *sys.argv[1:]]),
              "from_latents": str(directory), "device": str(device), "torch": torch.__version__,
              "started": datetime.datetime.fromtimestamp(started, datetime.UTC).isoformat(timespec="seconds"),
              "elapsed_seconds": round(time.time() - started, 3)}
    if edits:
        header.update(extras_header(RunExtras(edit=next(iter(edits.values())))))
        if len(edits) > 1:
            header["generators"] = sorted({name for name, _ in edits})
    make_folder(output_dir)
    report = output_dir / "report.json"
    write_json(report, {**header, "summary": summarize(rows), "images": rows})
    write_csv(output_dir / "report.csv", rows, ("input", "status", "error", "generator", "strip", "notes"),
              extra_columns=False)
    return SavedRender(rows, report)
