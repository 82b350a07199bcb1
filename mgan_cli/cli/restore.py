"""The restoration commands (invert, colorize, superres, inpaint, denoise), one per registered task."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from mgan_cli.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_SOME_FAILED,
    EXIT_UNUSABLE,
    fail,
    reports_errors,
    stderr_console,
    stdout_console,
)
from mgan_cli.cli.options import override_option, override_options
from mgan_cli.config.family_defaults import choose_preset, generator_facts
from mgan_cli.config.preflight import check_preset_fits
from mgan_cli.config.presets import Preset, apply_overrides
from mgan_cli.config.tasks import TASKS, Task
from mgan_cli.core.engine import COMPILE_MODES, PRECISIONS, EngineOptions
from mgan_cli.core.tuning import TUNE_LAYERS, TuningSettings
from mgan_cli.errors import MganError
from mgan_cli.faces.alignment import ALIGNMENTS, generator_alignment, is_face_generator
from mgan_cli.faces.identity import IdentityRows
from mgan_cli.faces.session import FaceSession
from mgan_cli.report.tables import METRIC_COLUMNS, summarize, write_views
from mgan_cli.run import ImageRecord, Job, RunEvents, Runner, Stage, distributed, open_output_folder
from mgan_cli.run.extras import RunExtras
from mgan_cli.run.failures import BEFORE_RESTORING
from mgan_cli.run.store import RunStore
from mgan_cli.utils.devices import resolve_device
from mgan_cli.utils.imageio import RESIZE_POLICIES, collect_inputs
from mgan_cli.version import __version__
from mgan_cli.weights.importing import generator_identity
from mgan_cli.weights.store import default_store

EXAMPLES = {
    "invert": "mgan invert faces/ -o restored/\n  mgan invert a.png b.png -o out/ --codes 30 --layer 3 --json",
    "colorize": "mgan colorize grey/ -o coloured/ --reference originals/",
    "superres": "mgan superres lowres/ -o sr/ --scale 4\n  find lr/ -name '*.png' | mgan superres - -o sr/ --scale 8",
    "inpaint": "mgan inpaint photos/ -o filled/ --mask mask.png\n  mgan inpaint photos/ -o filled/ --mask masks/",
    "denoise": "mgan denoise noisy/ -o clean/ --reference clean_originals/",
}


class _OutputFolder(click.Path):
    """A folder path that is not empty (``-o ""`` would otherwise mean the current folder)."""

    def __init__(self) -> None:
        super().__init__(file_okay=False, path_type=Path)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip():
            self.fail("must name a folder (it is empty)", param, ctx)
        return super().convert(value, param, ctx)


def _common_options(command: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.argument("inputs", nargs=-1, required=True, metavar="INPUT..."),
        click.option("-o", "--output", "output_dir", required=True, type=_OutputFolder(),
                     help="Folder for the restored images (<input stem>.png) and report.json/report.csv."),
        click.option("--preset", help="Preset name (`mgan presets list`) or a YAML file. [default: the generator's "
                                      "built-in preset or per-family defaults, else the task's]"),
        click.option("--generator", help="Registry or imported generator (`mgan weights list`); without --preset "
                                         "its settings come from the per-family defaults "
                                         "(`mgan presets show --generator NAME --task TASK`)."),
        override_options(),
        click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."),
        click.option("--reference", "reference_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
                     help="Ground-truth images with the same file stems, for PSNR/SSIM/LPIPS."),
        click.option("--resize", type=click.Choice(RESIZE_POLICIES), default="error", show_default=True,
                     help="Inputs of the wrong size: error, crop (centre square, then resize) or fit (resize)."),
        click.option("--align", type=click.Choice(["none", "faces"]), default="none", show_default=True,
                     help="faces: find every face in photos of any size, crop each as the generator was trained "
                          "(its registry entry's alignment) and restore it as OUT/<stem>_face<k>.png."),
        click.option("--paste-back", is_flag=True,
                     help="With --align faces: also write OUT/<stem>.png, the photo with every restored face "
                          "blended back (feathered); pixels outside the faces stay the photo's own."),
        click.option("--face-alignment", type=click.Choice(ALIGNMENTS.names()),
                     help="With --align faces: the crop convention, instead of the generator's."),
        click.option("--recursive", is_flag=True, help="Also take images from sub-folders of INPUT folders."),
        click.option("--json", "json_lines", is_flag=True,
                     help="One JSON object per finished image on stdout, nothing else there."),
        click.option("--quiet", is_flag=True, help="No progress bar or summary table."),
        click.option("--overwrite", is_flag=True, help="Redo images whose output already exists."),
        click.option("--precision", type=click.Choice(["auto", *PRECISIONS]), default="auto", show_default=True,
                     help="Autocast of the networks: auto = bf16 on CUDA GPUs and CPUs that compute bf16 natively "
                          "(AVX512-BF16, AMX), else fp32; codes and optimiser state stay fp32."),
        click.option("--compile", "compile_mode", type=click.Choice(COMPILE_MODES), default="off",
                     show_default=True, help="torch.compile the step (reduce-overhead adds CUDA graphs)."),
        click.option("--channels-last/--no-channels-last", default=None,
                     help="NHWC memory layout for the convolutions (faster on GPUs and most CPUs). [default: on]"),
    ]
    for option in reversed(options):
        command = option(command)
    return command


class _Display:
    """Progress bar (stderr), JSON lines (stdout) and warnings for one run."""

    def __init__(self, json_lines: bool, quiet: bool, total_inputs: int) -> None:
        self.json_lines = json_lines
        self.quiet = quiet
        self.progress: Progress | None = None
        self.images_task: Any = None
        self.steps_task: Any = None
        self.warned: set[str] = set()
        if not (json_lines or quiet):
            self.progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[loss]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                console=stderr_console, transient=False,
            )
            self.images_task = self.progress.add_task("images", total=total_inputs, loss="")
            self.steps_task = self.progress.add_task("  steps", total=None, loss="")

    def events(self) -> RunEvents:
        return RunEvents(on_step=self.on_step, on_record=self.on_record,
                         on_warning=self.on_warning)

    def on_step(self, step: int, total: int, loss: float) -> None:
        if self.progress is not None:
            self.progress.update(self.steps_task, completed=step, total=total, loss=f"loss {loss:.4f}")
            self.progress.update(self.images_task, loss=f"loss {loss:.4f}")

    def on_record(self, record: ImageRecord) -> None:
        if self.json_lines:
            row = record.to_json()
            keys = ("input", "output", "status", "error", *METRIC_COLUMNS, "seconds")
            line = {k: row.get(k) for k in keys} | {k: v for k, v in row.items() if k not in keys}
            sys.stdout.write(json.dumps(line) + "\n")
            sys.stdout.flush()
        if record.status == "failed":
            error = str(record.error)  # input errors start with the path already: name it once
            self.on_warning(f"skipped {error if error.startswith(record.input) else f'{record.input}: {error}'}")
        if self.progress is not None:
            self.progress.advance(self.images_task)

    def on_warning(self, message: str) -> None:
        if message not in self.warned:
            self.warned.add(message)
            stderr_console.print(f"[yellow]mgan: warning:[/] {message}", soft_wrap=True)

    def __enter__(self) -> _Display:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()


def _summary_table(task: str, rows: list[dict[str, Any]], summary: dict[str, Any]) -> Table:
    table = Table(title=f"mgan {task}: {summary['ok']} ok, {summary['skipped']} skipped, {summary['failed']} failed",
                  title_justify="left")
    table.add_column("image")
    table.add_column("status")
    for name in (*METRIC_COLUMNS, "seconds"):
        table.add_column(name, justify="right")

    def fmt(value: Any, digits: int = 4) -> str:
        if value is None:
            return "–"
        return f"{value:.{digits}f}" if isinstance(value, float) else str(value)

    for row in rows[:50]:
        table.add_row(Path(row["input"]).name, row["status"], *(fmt(row.get(n)) for n in (*METRIC_COLUMNS, "seconds")))
    if len(rows) > 50:
        table.add_row(f"… {len(rows) - 50} more in report.json", "", *[""] * 5)
    table.add_row("mean", "", *(fmt(summary.get(f"mean_{n}")) for n in (*METRIC_COLUMNS, "seconds")),
                  style="bold")
    return table


def run_task(task: Task, inputs: tuple[str, ...], output_dir: Path, preset: str | None, generator: str | None,
             device: str,
             reference_dir: Path | None, resize: str, recursive: bool, json_lines: bool, quiet: bool,
             overwrite: bool, precision: str, compile_mode: str, channels_last: bool | None,
             mask: Path | None = None, align: str = "none", paste_back: bool = False,
             face_alignment: str | None = None, extras: RunExtras | None = None,
             make_extras: Callable[[Preset], RunExtras] | None = None, **overrides: Any) -> None:
    """Resolve the preset and inputs, run, write the report, show the summary. Exit status: 0 every image
    ok or skipped, 1 some failed, 2 nothing could run, 130 interrupted (what finished is recorded).
    ``extras`` (or ``make_extras(preset)``, once the preset is known) adds tuning, latents and edits."""
    started = time.time()
    resolved = apply_overrides(choose_preset(task.name, preset, generator), **overrides)
    if make_extras is not None:
        extras = make_extras(resolved)
    if resolved.task != task.name:
        raise click.UsageError(f"preset {resolved.name!r} is for `mgan {resolved.task}`, not `mgan {task.name}`")
    check_preset_fits(resolved)  # layer, space, scale: refused before anything is written
    stdin_lines = sys.stdin.read().splitlines() if "-" in inputs else []
    paths = collect_inputs(inputs, recursive=recursive, stdin_lines=stdin_lines, exclude=output_dir)
    if not paths:
        raise click.UsageError("no input images found (give files, folders, or - to read paths from stdin)")
    if paste_back and align != "faces":
        raise click.UsageError("--paste-back needs --align faces")
    faces = None
    if align == "faces":
        faces = _face_session(task, resolved, output_dir, face_alignment)
        paths, reference_dir, mask = faces.stage(paths, reference_dir, mask)
    ranks = distributed.from_environment()
    if paste_back and ranks.distributed:  # a photo's faces may land on different ranks
        raise click.UsageError("--paste-back does not work under torchrun yet; run it in one process")
    run_device = distributed.device_for(ranks, resolve_device(device))
    options = EngineOptions.for_device(run_device, precision, compile_mode, channels_last)
    distributed.start(ranks, run_device)
    try:
        records = _run(task, resolved, distributed.shard(paths, ranks), ranks, output_dir, reference_dir, mask,
                       resize, run_device, options, overwrite, json_lines, quiet, started, faces, paste_back,
                       extras or RunExtras())
        outcomes = distributed.gather([(r.status, r.failure.stage if r.failure else None) for r in records], ranks)
    finally:
        distributed.stop(ranks)
    status = exit_status(outcomes)
    if status == EXIT_UNUSABLE:
        fail(f"nothing could run: every input failed before restoring ({len(outcomes)}; reasons above)")
    sys.exit(status)


def exit_status(outcomes: list[tuple[str, Stage | None]]) -> int:
    """0 if every image is ok or skipped; 2 if every image failed before restoring (nothing could run);
    1 otherwise (some failed)."""
    failed = [stage for status, stage in outcomes if status == "failed"]
    if not failed:
        return 0
    if len(failed) == len(outcomes) and all(stage in BEFORE_RESTORING for stage in failed):
        return EXIT_UNUSABLE
    return EXIT_SOME_FAILED


def used_weights(preset: Preset) -> dict[str, str | None]:
    """The sha256 of every weight file the run uses: the generator, and VGG16 only when λ > 0."""
    weights = {preset.generator: generator_identity(preset.generator)[2]}
    if preset.loss.perceptual_weight > 0:
        weights["vgg16-imagenet"] = default_store().entry("vgg16-imagenet").sha256
    return weights


def _face_session(task: Task, preset: Preset, output_dir: Path, face_alignment: str | None) -> FaceSession:
    """The faces of this run: the generator's crop convention and the sizes the task observes and outputs."""
    from mgan_cli.core.degradations import build_degradation

    convention, alignment_options = generator_alignment(preset.generator, face_alignment)
    resolution = generator_facts(preset.generator).resolution
    observed = build_degradation(preset.degradation).observed_size(resolution)
    return FaceSession(output_dir, convention, alignment_options, observed, resolution, task.compare_to_input)


def _run(task: Task, preset: Preset, paths: list[Path], ranks: distributed.Ranks, output_dir: Path,
         reference_dir: Path | None, mask: Path | None, resize: str, device: torch.device, options: EngineOptions,
         overwrite: bool, json_lines: bool, quiet: bool, started: float, faces: FaceSession | None = None,
         paste_back: bool = False, extras: RunExtras | None = None) -> list[ImageRecord]:
    """Run this rank's share into the store of ``output_dir``, keep the report views current; this run's records."""
    job = Job(task=task, preset=preset, inputs=paths, output_dir=output_dir, reference_dir=reference_dir,
              mask=mask, resize=resize, device=device, overwrite=overwrite, engine=options,
              weights_sha256=used_weights(preset), extras=extras or RunExtras())

    def header() -> dict[str, Any]:
        return {
            "mgan_version": __version__,
            "task": task.name,
            "command": " ".join(["mgan", *sys.argv[1:]]),
            "preset": preset.to_dict(),
            "seed": preset.seed,
            "device": str(device),
            "engine": dataclasses.asdict(options),
            "processes": ranks.world_size,
            "rank": ranks.rank,
            "weights_sha256": job.weights_sha256,
            **extras_header(job.extras),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "started": datetime.datetime.fromtimestamp(started, datetime.UTC).isoformat(timespec="seconds"),
            "elapsed_seconds": round(time.time() - started, 3),
        }

    store = open_output_folder(job)
    try:
        return _run_into(store, job, ranks, header, json_lines, quiet, faces, paste_back)
    finally:
        store.close()


def _run_into(store: RunStore, job: Job, ranks: distributed.Ranks, header: Callable[[], dict[str, Any]],
              json_lines: bool, quiet: bool, faces: FaceSession | None, paste_back: bool) -> list[ImageRecord]:
    output_dir = job.output_dir
    run_id = store.begin_run(header())

    def save(_: list[ImageRecord]) -> None:  # after every batch (records are stored as they finish)
        store.update_run(run_id, header())
        if ranks.is_main:
            write_views(store, header())

    display = _Display(json_lines, quiet or not ranks.is_main, len(job.inputs))
    events = display.events()
    events.on_batch_done = save
    if faces is not None:  # each face crop's record becomes its photo's, with the face and its identity
        events.annotate = faces.annotate
    elif is_face_generator(job.preset.generator):  # identity of the output's face in every row
        events.annotate = IdentityRows(job.reference_dir, job.task.compare_to_input).annotate
    runner = Runner(job, events, store=store, run_id=run_id)
    try:
        with display:
            if faces is not None and ranks.is_main:  # photos without a usable face
                runner.sink.settle([(record, None, None) for record in faces.failed])
            records = runner.run()
    except (KeyboardInterrupt, MganError) as exc:
        with contextlib.suppress(MganError):
            store.update_run(run_id, header())
            write_views(store, header())
        if isinstance(exc, KeyboardInterrupt):
            stderr_console.print(f"mgan: interrupted; {len(runner.sink.records)} finished images are recorded in "
                                 f"{output_dir}: run the same command again to resume", soft_wrap=True)
            sys.exit(EXIT_INTERRUPTED)
        raise
    if faces is not None and paste_back:
        for photo, error in faces.paste_back(records, job.overwrite).items():
            display.on_warning(error)
            for record in records:
                if record.input == photo and record.status == "ok":
                    record.notes.append(error)
        runner.sink.update(records)  # paste-back adds the composite to each face's row
    store.update_run(run_id, header())
    distributed.barrier(ranks)
    if ranks.is_main:
        report = write_views(store, header())
        if not (json_lines or quiet):
            rows = [r.to_json() for r in records]
            stdout_console.print(_summary_table(job.task.name, rows, summarize(rows)))
            stderr_console.print(f"wrote {output_dir / 'report.json'} and report.csv "
                                 f"({report.summary['images']} images recorded in {output_dir})")
    return records


def make_task_command(task: Task) -> click.Command:
    """Build the click command of ``task`` (task-specific options added here)."""

    @reports_errors
    def command(tune_generator: int, tune_layers: str, save_latents: bool, **kwargs: Any) -> None:
        extras = RunExtras(TuningSettings(steps=tune_generator, layers=tune_layers), save_latents)
        run_task(task, extras=extras, **kwargs)

    command.__doc__ = (
        f"{task.summary}\n\n"
        f"INPUT is any mix of image files and folders; - reads paths from stdin. Each output is "
        f"OUT/<input stem>.png; OUT/report.json and OUT/report.csv hold PSNR, SSIM, LPIPS and NIQE per image. "
        f"Without --preset: with --generator NAME its built-in preset NAME-{task.name} or else the per-family "
        f"defaults; with neither, the task's default ({task.default_preset}). Flags override it.\n\n"
        f"\b\nExamples:\n  {EXAMPLES.get(task.name, '')}"
    )
    decorated: Callable[..., Any] = extras_options(_common_options(command))
    if task.needs_scale:
        decorated = override_option("scale")(decorated)
    if task.needs_mask:
        decorated = click.option("--mask", required=True, type=click.Path(exists=True, path_type=Path),
                                 help="Mask file for all images, or a folder of masks named like the inputs "
                                      "(white = missing).")(decorated)
        decorated = override_option("paste_known")(decorated)
    return click.command(task.name, help=command.__doc__)(decorated)


def extras_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--tune-generator``, ``--tune-layers`` and ``--save-latents`` (every task and ``mgan edit``)."""
    options = [
        click.option("--tune-generator", type=click.IntRange(min=0), default=0, show_default=True, metavar="STEPS",
                     help="After the inversion, tune a private copy of the generator for STEPS Adam steps on the "
                          "task's loss with the codes fixed (PTI, with its locality term); the shared weights are "
                          "never changed. Off for every task by default (measured, BENCHMARKS.md): it adds pixel "
                          "fidelity to invert and edit (~1 dB at equal time), does not help colorize/inpaint, and "
                          "beyond ~200 steps it fits the noise of denoise inputs."),
        click.option("--tune-layers", type=click.Choice(TUNE_LAYERS), default="all", show_default=True,
                     help="Which weights --tune-generator changes: all, or only those above the layer ℓ."),
        click.option("--save-latents", is_flag=True,
                     help="Write OUT/latents/<stem>.safetensors (codes, importances, upper latent, layer, space, "
                          "generator name and sha256; tuned weights too) for `mgan edit --from-latents OUT/latents`."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


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


def task_commands() -> list[click.Command]:
    return [make_task_command(TASKS.get(name)) for name in ("invert", "colorize", "superres", "inpaint", "denoise")]
