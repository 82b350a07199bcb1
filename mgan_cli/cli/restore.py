"""The restoration commands (invert, colorize, superres, inpaint, denoise), one per registered task."""

from __future__ import annotations

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

from mgan_cli import __version__, distributed
from mgan_cli.cli.common import EXIT_SOME_FAILED, reports_errors, resolve_device, stderr_console, stdout_console
from mgan_cli.cli.options import override_option, override_options
from mgan_cli.engine import COMPILE_MODES, PRECISIONS, EngineOptions
from mgan_cli.faces.alignment import ALIGNMENTS, generator_alignment, is_face_generator
from mgan_cli.faces.identity import IdentityRows
from mgan_cli.faces.session import FaceSession
from mgan_cli.family_defaults import choose_preset, generator_facts
from mgan_cli.imageio import RESIZE_POLICIES, collect_inputs
from mgan_cli.presets import Preset, apply_overrides
from mgan_cli.report import METRIC_COLUMNS, record_json, remove_partials, write_partial, write_report
from mgan_cli.run import ImageRecord, Job, RunEvents, Runner
from mgan_cli.tasks import TASKS, Task
from mgan_cli.weight_import import generator_identity
from mgan_cli.weight_store import default_store

EXAMPLES = {
    "invert": "mgan invert faces/ -o restored/\n  mgan invert a.png b.png -o out/ --codes 30 --layer 3 --json",
    "colorize": "mgan colorize grey/ -o coloured/ --reference originals/",
    "superres": "mgan superres lowres/ -o sr/ --scale 4\n  find lr/ -name '*.png' | mgan superres - -o sr/ --scale 8",
    "inpaint": "mgan inpaint photos/ -o filled/ --mask mask.png\n  mgan inpaint photos/ -o filled/ --mask masks/",
    "denoise": "mgan denoise noisy/ -o clean/ --reference clean_originals/",
}


def _common_options(command: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.argument("inputs", nargs=-1, required=True, metavar="INPUT..."),
        click.option("-o", "--output", "output_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
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
            row = record_json(record)
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


def _summary_table(report: dict[str, Any]) -> Table:
    rows = report["images"]
    table = Table(title=f"mgan {report['task']}: {report['summary']['ok']} ok, {report['summary']['skipped']} "
                        f"skipped, {report['summary']['failed']} failed", title_justify="left")
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
    summary = report["summary"]
    table.add_row("mean", "", *(fmt(summary.get(f"mean_{n}")) for n in (*METRIC_COLUMNS, "seconds")),
                  style="bold")
    return table


def run_task(task: Task, inputs: tuple[str, ...], output_dir: Path, preset: str | None, generator: str | None,
             device: str,
             reference_dir: Path | None, resize: str, recursive: bool, json_lines: bool, quiet: bool,
             overwrite: bool, precision: str, compile_mode: str, channels_last: bool | None,
             mask: Path | None = None, align: str = "none", paste_back: bool = False,
             face_alignment: str | None = None, **overrides: Any) -> None:
    """Resolve the preset and inputs, run, write the report, show the summary; exit 1 if an image failed."""
    started = time.time()
    resolved = apply_overrides(choose_preset(task.name, preset, generator), **overrides)
    if resolved.task != task.name:
        raise click.UsageError(f"preset {resolved.name!r} is for `mgan {resolved.task}`, not `mgan {task.name}`")
    stdin_lines = sys.stdin.read().splitlines() if "-" in inputs else []
    paths = collect_inputs(inputs, recursive=recursive, stdin_lines=stdin_lines)
    if not paths:
        raise click.UsageError("no input images found (give files, folders, or - to read paths from stdin)")
    if paste_back and align != "faces":
        raise click.UsageError("--paste-back needs --align faces")
    faces = None
    if align == "faces":
        faces = _face_session(task, resolved, output_dir, face_alignment)
        paths, reference_dir, mask = faces.stage(paths, reference_dir, mask)
    ranks = distributed.from_environment()
    run_device = distributed.device_for(ranks, resolve_device(device))
    options = EngineOptions.for_device(run_device, precision, compile_mode, channels_last)
    distributed.start(ranks, run_device)
    try:
        failed = _run(task, resolved, distributed.shard(paths, ranks), ranks, output_dir, reference_dir, mask, resize,
                      run_device, options, overwrite, json_lines, quiet, started, faces, paste_back)
    finally:
        distributed.stop(ranks)
    if failed:
        sys.exit(EXIT_SOME_FAILED)


def _face_session(task: Task, preset: Preset, output_dir: Path, face_alignment: str | None) -> FaceSession:
    """The faces of this run: the generator's crop convention and the sizes the task observes and outputs."""
    from mgan_cli.degradations import build_degradation

    convention, alignment_options = generator_alignment(preset.generator, face_alignment)
    resolution = generator_facts(preset.generator).resolution
    observed = build_degradation(preset.degradation).observed_size(resolution)
    return FaceSession(output_dir, convention, alignment_options, observed, resolution, task.compare_to_input)


def _run(task: Task, preset: Preset, paths: list[Path], ranks: distributed.Ranks, output_dir: Path,
         reference_dir: Path | None, mask: Path | None, resize: str, device: torch.device, options: EngineOptions,
         overwrite: bool, json_lines: bool, quiet: bool, started: float, faces: FaceSession | None = None,
         paste_back: bool = False) -> bool:
    """Run this rank's share, keep the report current, merge it on rank 0; True if any image failed."""
    job = Job(task=task, preset=preset, inputs=paths, output_dir=output_dir, reference_dir=reference_dir,
              mask=mask, resize=resize, device=device, overwrite=overwrite, engine=options)
    weights = {preset.generator: generator_identity(preset.generator)[2],
               "vgg16-imagenet": default_store().entry("vgg16-imagenet").sha256}

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
            "weights_sha256": weights,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "started": datetime.datetime.fromtimestamp(started, datetime.UTC).isoformat(timespec="seconds"),
            "elapsed_seconds": round(time.time() - started, 3),
        }

    def save(records: list[ImageRecord]) -> None:  # after every batch: an interrupted run loses nothing
        rows = [record_json(r) for r in records]
        if ranks.distributed:
            write_partial(output_dir, ranks.rank, rows)
        else:
            write_report(output_dir, header(), rows)

    display = _Display(json_lines, quiet or not ranks.is_main, len(paths))
    events = display.events()
    events.on_batch_done = save
    annotate: Callable[[ImageRecord], ImageRecord] | None = None
    if faces is not None:  # each face crop's record becomes its photo's, with the face and its identity
        annotate = faces.annotate
    elif is_face_generator(preset.generator):  # identity of the output's face in every row
        annotate = IdentityRows(reference_dir, task.compare_to_input).annotate
    if annotate is not None:
        show, add = events.on_record, annotate
        events.on_record = lambda record: show(add(record)) if show else add(record)
    runner = Runner(job, events)
    with display:
        for record in faces.failed if faces is not None and ranks.is_main else []:
            display.on_record(record)
        records = runner.run()
    if faces is not None:
        if ranks.is_main:
            records = [*faces.failed, *records]
        if paste_back:
            for photo, error in faces.paste_back(records, overwrite).items():
                display.on_warning(error)
                for record in records:
                    if record.input == photo and record.status == "ok":
                        record.notes.append(error)
    rows = sorted(distributed.gather([record_json(r) for r in records], ranks), key=lambda row: row["input"])
    if ranks.is_main:
        report = write_report(output_dir, header(), rows)
        remove_partials(output_dir)
        if not (json_lines or quiet):
            stdout_console.print(_summary_table(report))
            stderr_console.print(f"wrote {output_dir / 'report.json'} and report.csv")
    return any(row["status"] == "failed" for row in rows)


def make_task_command(task: Task) -> click.Command:
    """Build the click command of ``task`` (task-specific options added here)."""

    @reports_errors
    def command(**kwargs: Any) -> None:
        run_task(task, **kwargs)

    command.__doc__ = (
        f"{task.summary}\n\n"
        f"INPUT is any mix of image files and folders; - reads paths from stdin. Each output is "
        f"OUT/<input stem>.png; OUT/report.json and OUT/report.csv hold PSNR, SSIM, LPIPS and NIQE per image. "
        f"Without --preset: with --generator NAME its built-in preset NAME-{task.name} or else the per-family "
        f"defaults; with neither, the task's default ({task.default_preset}). Flags override it.\n\n"
        f"\b\nExamples:\n  {EXAMPLES.get(task.name, '')}"
    )
    decorated: Callable[..., Any] = _common_options(command)
    if task.needs_scale:
        decorated = override_option("scale")(decorated)
    if task.needs_mask:
        decorated = click.option("--mask", required=True, type=click.Path(exists=True, path_type=Path),
                                 help="Mask file for all images, or a folder of masks named like the inputs "
                                      "(white = missing).")(decorated)
        decorated = override_option("paste_known")(decorated)
    return click.command(task.name, help=command.__doc__)(decorated)


def task_commands() -> list[click.Command]:
    return [make_task_command(TASKS.get(name)) for name in ("invert", "colorize", "superres", "inpaint", "denoise")]
