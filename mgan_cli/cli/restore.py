"""The restoration commands (invert, colorize, superres, inpaint, denoise), one per registered task."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from mgan_cli.api import Restorer
from mgan_cli.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_SOME_FAILED,
    OutputFolder,
    fail,
    reports_errors,
    stderr_console,
    stdout_console,
)
from mgan_cli.cli.options import COMMON_OVERRIDES, override_option, override_options
from mgan_cli.config.presets import Preset
from mgan_cli.config.tasks import TASKS, Task
from mgan_cli.core.engine import COMPILE_MODES, PRECISIONS
from mgan_cli.core.tuning import TUNE_LAYERS, TuningSettings
from mgan_cli.faces.alignment import ALIGNMENTS
from mgan_cli.report.tables import METRIC_COLUMNS, summarize
from mgan_cli.run import ImageRecord, RunEvents, sharding
from mgan_cli.run.extras import RunExtras
from mgan_cli.run.files import ALL_DONE, NOTHING_RAN, SOME_FAILED, RunInterrupted
from mgan_cli.utils.imageio import RESIZE_POLICIES

EXAMPLES = {
    "invert": "mgan invert faces/ -o restored/\n  mgan invert a.png b.png -o out/ --codes 30 --layer 3 --json",
    "colorize": "mgan colorize grey/ -o coloured/ --reference originals/",
    "superres": "mgan superres lowres/ -o sr/ --scale 4\n  find lr/ -name '*.png' | mgan superres - -o sr/ --scale 8",
    "inpaint": "mgan inpaint photos/ -o filled/ --mask mask.png\n  mgan inpaint photos/ -o filled/ --mask masks/",
    "denoise": "mgan denoise noisy/ -o clean/ --reference clean_originals/",
}


class _BatchSize(click.ParamType):
    """``auto`` or a positive integer."""

    name = "auto|N"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value == "auto" or isinstance(value, int):
            return value
        try:
            number = int(str(value))
        except ValueError:
            self.fail(f"{value!r} is not auto or a whole number", param, ctx)
        if number < 1:
            self.fail(f"{number} is not allowed: must be at least 1", param, ctx)
        return number


def _common_options(command: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.argument("inputs", nargs=-1, required=True, metavar="INPUT..."),
        click.option("-o", "--output", "output_dir", required=True, type=OutputFolder(),
                     help="Folder for the restored images (<input stem>.png) and report.json/report.csv."),
        click.option("--preset", help="Preset name (`mgan presets list`) or a YAML file. [default: the generator's "
                                      "built-in preset or per-family defaults, else the task's]"),
        click.option("--generator", help="Registry or imported generator (`mgan weights list`); without --preset "
                                         "its settings come from the per-family defaults "
                                         "(`mgan presets show --generator NAME --task TASK`)."),
        override_options(tuple(name for name in COMMON_OVERRIDES if name != "batch_size")),
        click.option("--batch-size", "batch_size", type=_BatchSize(), metavar="auto|N",
                     help="Images optimised together: auto = as many as the GPU's free memory holds (measured with "
                          "a one-image probe; the default on CUDA), N = at most N. [default: auto on CUDA, the "
                          "preset's batch_size elsewhere]"),
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
        click.option("--shard", metavar="I/N",
                     help="Restore only shard I of N (from 0) of the inputs; every shard records into its own store "
                          "in OUT and `mgan report OUT` merges them. [default: from a SLURM job array "
                          "(SLURM_ARRAY_TASK_ID) or torchrun (RANK/WORLD_SIZE), else everything]"),
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
        self.started = False
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

    def _start(self) -> None:
        """Show the bar at the first progress of the run (not before: a run that cannot start prints only its
        one error line)."""
        if self.progress is not None and not self.started:
            self.started = True
            self.progress.start()

    def on_step(self, step: int, total: int, loss: float) -> None:
        self._start()
        if self.progress is not None:
            self.progress.update(self.steps_task, completed=step, total=total, loss=f"loss {loss:.4f}")
            self.progress.update(self.images_task, loss=f"loss {loss:.4f}")

    def on_record(self, record: ImageRecord) -> None:
        self._start()
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
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None and self.started:
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
             face_alignment: str | None = None, shard: str | None = None, tune_generator: int | None = None,
             tune_layers: str | None = None, save_latents: bool = False,
             make_extras: Callable[[Preset, TuningSettings], RunExtras] | None = None, **overrides: Any) -> None:
    """Parse what the flags say into a :class:`~mgan_cli.api.Restorer` and run its file pipeline, with a
    progress bar (or JSON lines) and a summary. Exit status: 0 every image ok or skipped, 1 some failed,
    2 nothing could run, 130 interrupted (what finished is recorded). The tuning flags (None: the preset's
    encoder recipe) and ``save_latents`` make the run's extras, or ``make_extras(preset, tuning)`` does, once
    the preset and tuning are resolved (edits)."""
    if paste_back and align != "faces":
        raise click.UsageError("--paste-back needs --align faces")
    batch_size = overrides.pop("batch_size", None)
    if isinstance(batch_size, int):
        overrides["batch_size"] = batch_size  # the preset's value too: the report shows what ran
    restorer = Restorer(generator, task.name, preset=preset, device=device, precision=precision,
                        compile=compile_mode, channels_last=channels_last, tune_steps=tune_generator,
                        tune_layers=tune_layers, **overrides)
    extras = (RunExtras(restorer.tuning, save_latents) if make_extras is None
              else make_extras(restorer.preset, restorer.tuning))
    stdin_lines = sys.stdin.read().splitlines() if "-" in inputs else []
    display = _Display(json_lines, quiet or not sharding.from_environment(shard).is_main, len(inputs))
    try:
        with display:
            outcome = restorer.restore_files(
                list(inputs), output_dir, events=display.events(), reference_dir=reference_dir, mask=mask,
                resize=resize, recursive=recursive, overwrite=overwrite, align=align, paste_back=paste_back,
                face_alignment=face_alignment, extras=extras, stdin_lines=stdin_lines,
                batch_size=batch_size, shard=shard)
    except RunInterrupted as exc:
        stderr_console.print(f"mgan: {exc}", soft_wrap=True)
        sys.exit(EXIT_INTERRUPTED)
    if outcome.report is not None and not (json_lines or quiet):
        rows = [r.to_json() for r in outcome.records]
        stdout_console.print(_summary_table(task.name, rows, summarize(rows)))
        where = "" if outcome.shard.count == 1 else f", this process shard {outcome.shard.index}/{outcome.shard.count}"
        stderr_console.print(f"wrote {output_dir / 'report.json'} and report.csv "
                             f"({outcome.report.summary['images']} images recorded in {output_dir}{where})")
    if restorer.start_note and not (quiet or json_lines):  # after the run: its own errors come first
        stderr_console.print(f"mgan: note: {restorer.start_note}", soft_wrap=True)
    if outcome.status == NOTHING_RAN:
        fail(f"nothing could run: every input failed before restoring ({len(outcome.records)}; reasons above)")
    sys.exit({ALL_DONE: 0, SOME_FAILED: EXIT_SOME_FAILED}[outcome.status])


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
    decorated: Callable[..., Any] = _common_options(extras_options(command))
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
        click.option("--tune-generator", type=click.IntRange(min=0), default=None, metavar="STEPS",
                     help="After the inversion, tune a private copy of the generator for STEPS steps with the codes "
                          "fixed (pivotal tuning). Default: the encoder recipe's steps, else 0. See BENCHMARKS.md."),
        click.option("--tune-layers", type=click.Choice(TUNE_LAYERS), default=None,
                     help="Which weights tuning changes: all, or only those above the layer ℓ. Default: all for "
                          "--tune-generator, upper for the encoder recipe's tuning."),
        click.option("--save-latents", is_flag=True,
                     help="Write OUT/latents/<stem>.safetensors (codes, importances, upper latent, layer, space, "
                          "generator name and sha256; tuned weights too) for `mgan edit --from-latents OUT/latents`."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def task_commands() -> list[click.Command]:
    return [make_task_command(TASKS.get(name)) for name in ("invert", "colorize", "superres", "inpaint", "denoise")]
