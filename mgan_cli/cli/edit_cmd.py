"""``mgan edit``: invert each image with the multi-code prior, then render it moved along a direction."""

from __future__ import annotations

import datetime
import sys
import time
from pathlib import Path
from typing import Any

import click
import torch
from rich.markup import escape

from mgan_cli.cli.common import exit_for_failures, reports_errors, skipped_line, stderr_console
from mgan_cli.cli.restore import _common_options, extras_options, run_task
from mgan_cli.config.presets import Preset
from mgan_cli.config.tasks import TASKS
from mgan_cli.core.tuning import TuningSettings, apply_tuned_state
from mgan_cli.edit import boundaries, latents
from mgan_cli.edit.frames import (
    DEFAULT_STRENGTHS,
    Direction,
    check_compatible,
    parse_rows,
    parse_strengths,
    render_frames,
    strip_uint8,
)
from mgan_cli.errors import ConfigurationError, MganError, OutputError
from mgan_cli.report.tables import summarize, write_csv, write_json
from mgan_cli.run import ImageRecord
from mgan_cli.run.extras import EditRequest, RunExtras, frame_paths, strip_path
from mgan_cli.run.files import extras_header
from mgan_cli.run.store import STORE_DIR, StoreReader
from mgan_cli.utils.atomic import make_folder
from mgan_cli.utils.devices import resolve_device
from mgan_cli.utils.imageio import to_uint8, write_png
from mgan_cli.version import __version__
from mgan_cli.weights.importing import generator_identity
from mgan_cli.weights.loading import load_generator

HELP = """Semantic editing: invert each INPUT with the multi-code prior, then render one frame per strength s
with every code moved by s·d in the codes' latent space (z for DCGAN/PGGAN, w for StyleGANs), importances and
the upper latent kept. Strength 0 is the inversion itself. For StyleGANs the codes render the style rows below
the composing layer ℓ and the upper latent the rows from ℓ up, so a W edit reaches rows 0 … ℓ-1; --edit-upper
moves the upper latent's rows too (the whole W+ stack), for attributes that live in rows at or above ℓ.

Writes OUT/<stem>.png (the inversion), OUT/frames/<stem>_<s>.png per strength, OUT/strips/<stem>.png (the
frames side by side) and OUT/report.json whose rows list their frames ([{strength, path}]) and the metrics of
the strength-0 image against the input. Every inversion option and --preset apply (the task is `invert`).

--direction is a registry boundary (`mgan weights list`, kind boundary: InterFaceGAN's, refused for another
generator or latent space), a .npy file ([D] or [1, D]; FILE.npy:K for row K of `mgan directions` output),
or sefa:K / pca:K (direction K, from 0, computed for this generator). --condition B removes d's component
along B (InterFaceGAN's conditional editing; repeatable).

With --from-latents DIR nothing is inverted: the .safetensors files that --save-latents wrote are rendered
exactly as they were (with their tuned weights, if any); latents of another generator are refused.

\b
Examples:
  mgan edit faces/ -o edits/ --direction sefa:0 --strengths -3,0,3
  mgan edit faces/ -o edits/ --generator pggan-celebahq1024 --direction pggan-celebahq1024-smile \\
      --condition pggan-celebahq1024-gender
  mgan invert faces/ -o inv/ --save-latents
  mgan edit --from-latents inv/latents -o edits/ --direction dirs/sefa.npy:2
"""


def _edit_options(command: Any) -> Any:
    options = [
        click.option("--direction", required=True, help="Boundary name, FILE.npy[:K], or sefa:K / pca:K."),
        click.option("--strengths", default=",".join(f"{s:g}" for s in DEFAULT_STRENGTHS), show_default=True,
                     help="Comma-separated strengths s, one frame each."),
        click.option("--condition", "conditions", multiple=True, help="Remove the component along this direction."),
        click.option("--edit-layers", help="W/W+ codes only: move only these w+ rows (from 0), e.g. 4-7."),
        click.option("--edit-upper", is_flag=True,
                     help="W/W+ codes only: move the upper latent's rows (at and above ℓ) as well as the codes."),
        click.option("--from-latents", type=click.Path(exists=True, file_okay=False, path_type=Path),
                     help="Edit saved latents (--save-latents) instead of inverting INPUTs."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def resolve_edit(generator_name: str, space: str, direction: str, conditions: tuple[str, ...], strengths: str,
                 edit_layers: str | None, edit_upper: bool = False) -> EditRequest:
    """The edit request for codes of ``generator_name`` in ``space``; refuses what cannot work."""
    default_space = "z" if space == "z" else "w"
    cache: dict[str, Any] = {}

    def generator() -> Any:
        if "model" not in cache:
            cache["model"] = load_generator(generator_name)
        return cache["model"]

    main_direction = boundaries.resolve(direction, generator_name, default_space, generator)
    others = [boundaries.resolve(c, generator_name, default_space, generator) for c in conditions]
    resolved: Direction = boundaries.condition(main_direction, others)
    check_compatible(resolved, space, resolved.vector.numel())
    rows = parse_rows(edit_layers, "--edit-layers") if edit_layers else None
    if rows is not None and space == "z":
        raise ConfigurationError("--edit-layers needs codes in w or w+ (--space w); these are z codes")
    if edit_upper and space == "z":
        raise ConfigurationError("--edit-upper needs codes in w or w+ (--space w); these are z codes")
    return EditRequest(resolved, parse_strengths(strengths), rows, edit_upper)


@click.command("edit", help=HELP)
@_common_options
@_edit_options
@extras_options
@reports_errors
def edit_command(direction: str, strengths: str, conditions: tuple[str, ...], edit_layers: str | None,
                 edit_upper: bool, from_latents: Path | None, tune_generator: int, tune_layers: str,
                 save_latents: bool, **kwargs: Any) -> None:
    if from_latents is not None:
        if kwargs.get("shard"):
            raise click.UsageError("--shard does not apply to --from-latents (it renders every saved file)")
        kwargs.pop("shard", None)
        _edit_saved(from_latents, direction, strengths, conditions, edit_layers, edit_upper, kwargs)
        return
    tuning = TuningSettings(steps=tune_generator, layers=tune_layers)

    def make_extras(preset: Preset) -> RunExtras:
        edit = resolve_edit(preset.generator, preset.inversion.space, direction, conditions, strengths, edit_layers,
                            edit_upper)
        return RunExtras(tuning, save_latents, edit)

    run_task(TASKS.get("invert"), make_extras=make_extras, **kwargs)


# the INPUT argument is optional with --from-latents
for _param in edit_command.params:
    if _param.name == "inputs":
        _param.required = False


def _edit_saved(directory: Path, direction: str, strengths: str, conditions: tuple[str, ...],
                edit_layers: str | None, edit_upper: bool, options: dict[str, Any]) -> None:
    """Render the saved latents in ``directory`` (no inversion); one report row per file."""
    if options.get("inputs"):
        raise click.UsageError("give either INPUT images or --from-latents DIR, not both")
    started = time.time()
    output_dir: Path = options["output_dir"]
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
    device = resolve_device(options.get("device") or "auto")
    wanted = options.get("generator")
    rows: list[dict[str, Any]] = []
    models: dict[str, Any] = {}
    edits: dict[tuple[str, str], EditRequest] = {}  # per (generator, space): a direction belongs to its generator
    for path in files:
        record = ImageRecord(input=str(path))
        try:
            saved = latents.load(path, wanted)
            name = saved.generator
            if name not in models:
                sha = generator_identity(name)[2]
                model = load_generator(name).to(device)
                if options.get("channels_last") is not False:  # the layout the inverting run used by default
                    model = model.to(memory_format=torch.channels_last)
                models[name] = (model, sha)
            model, sha = models[name]
            saved = latents.load(path, name, sha)  # the weights present must be the ones inverted with
            latents.check_fits(saved, model)
            key = (name, saved.inversion.space)
            if key not in edits:
                edits[key] = resolve_edit(name, saved.inversion.space, direction, conditions, strengths, edit_layers,
                                          edit_upper)
            edit = edits[key]
            generator = apply_tuned_state(model, saved.tuned) if saved.tuned else model
            inversion = saved.inversion
            inversion = type(inversion)(inversion.codes.to(device), inversion.alphas.to(device),
                                        None if inversion.upper_latent is None else inversion.upper_latent.to(device),
                                        inversion.layer, inversion.space, inversion.composition)
            frames = to_uint8(render_frames(generator, inversion, edit.direction, edit.strengths, edit.rows,
                                            edit.move_upper)).cpu()
            stem = path.name[:-len(latents.SUFFIX)]
            paths = frame_paths(output_dir, stem, edit.strengths)
            existing = [p for p in paths if p.exists()]
            if existing and not options.get("overwrite"):
                raise MganError(f"{existing[0]} exists (use --overwrite to redo)")
            for folder in (frames_dir, strips_dir):
                make_folder(output_dir, folder)
            for frame, frame_path in zip(frames, paths, strict=True):
                write_png(frame, frame_path)
            write_png(strip_uint8(frames), strip_path(output_dir, stem))
            record.status = "ok"
            record.fields = {"frames": [{"strength": s, "path": str(p)} for s, p in zip(edit.strengths, paths,
                                                                                      strict=True)],
                            "strip": str(strip_path(output_dir, stem)), "generator": name}
            record.notes.append("rendered from saved latents (no inversion, no metrics)")
        except (ConfigurationError, OutputError):
            raise  # a direction that cannot apply, or an output folder that cannot be written, fails the command
        except (MganError, OSError) as exc:
            record.status, record.error = "failed", str(exc)
            stderr_console.print(f"[yellow]mgan: warning:[/] {escape(skipped_line(path, exc))}", soft_wrap=True)
        rows.append(record.to_json())
    header = {"mgan_version": __version__, "task": "edit", "command": " ".join(["mgan", *sys.argv[1:]]),
              "from_latents": str(directory), "device": str(device), "torch": torch.__version__,
              "started": datetime.datetime.fromtimestamp(started, datetime.UTC).isoformat(timespec="seconds"),
              "elapsed_seconds": round(time.time() - started, 3)}
    if edits:
        header.update(extras_header(RunExtras(edit=next(iter(edits.values())))))
        if len(edits) > 1:
            header["generators"] = sorted({name for name, _ in edits})
    make_folder(output_dir)
    write_json(output_dir / "report.json", {**header, "summary": summarize(rows), "images": rows})
    write_csv(output_dir / "report.csv", rows, ("input", "status", "error", "generator", "strip", "notes"),
              extra_columns=False)
    if not options.get("quiet"):
        stderr_console.print(f"wrote {sum(r['status'] == 'ok' for r in rows)} strips to {output_dir / 'strips'} "
                             f"and {output_dir / 'report.json'}")
    exit_for_failures(sum(r["status"] == "failed" for r in rows), len(rows))
