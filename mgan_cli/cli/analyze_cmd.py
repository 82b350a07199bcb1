"""``mgan analyze``: the paper's analysis of the composing layer ℓ and the number of codes N on your images."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mgan_cli.analysis.sweep import parse_codes
from mgan_cli.api import Restorer
from mgan_cli.cli.common import (
    OutputFolder,
    exit_for_failures,
    reports_errors,
    skipped_line,
    stderr_console,
    stdout_console,
)
from mgan_cli.cli.options import override_options
from mgan_cli.config.tasks import TASKS
from mgan_cli.core.engine import PRECISIONS
from mgan_cli.errors import ConfigurationError
from mgan_cli.run import RunEvents
from mgan_cli.utils.imageio import RESIZE_POLICIES


def _pair(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        layer, codes = (int(v) for v in text.split(":"))
    except ValueError:
        raise click.BadParameter("give LAYER:CODES, e.g. 2:20", param_hint="--contributions") from None
    if layer < 1 or codes < 1:
        raise click.BadParameter("layer and codes must be at least 1", param_hint="--contributions")
    try:
        parse_codes(str(codes))  # the bounds of every --codes
    except ConfigurationError as exc:
        raise click.BadParameter(str(exc).removeprefix("--codes: "), param_hint="--contributions") from None
    return layer, codes


def _means_table(means: list[dict[str, Any]]) -> Table:
    table = Table(title="mean quality per (layer, codes)", title_justify="left")
    for heading in ("layer ℓ", "codes N", "images", "PSNR ↑", "SSIM ↑", "LPIPS ↓", "s/image"):
        table.add_column(heading, justify="right")
    for m in means:
        cells = [f"{m[k]:.{d}f}" if m[k] is not None else "–"
                 for k, d in (("psnr", 2), ("ssim", 4), ("lpips", 4), ("seconds", 2))]
        table.add_row(str(m["layer"]), str(m["codes"]), str(m["images"]), *cells)
    return table


@click.command("analyze")
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("-o", "--output", "output_dir", required=True, type=OutputFolder(),
              help="Folder for analysis.json/.csv, the plots, runs/layer<L>-codes<N>/ and contributions/.")
@click.option("--layers", help="Composing layers: a range and/or list, e.g. 1-8 or 2,4,6. [default: every layer]")
@click.option("--codes", "codes_text", help="Numbers of codes N, comma-separated. [default: 1,5,10,20,30]")
@click.option("--task", "task_name", type=click.Choice(sorted(TASKS.names())), default="invert", show_default=True,
              help="The task whose quality is analysed.")
@click.option("--preset", help="Preset name or YAML file. [default: the task's, or the generator's]")
@click.option("--generator", help="Registry or imported generator (`mgan weights list`).")
@override_options(("iterations", "lr", "optimizer", "perceptual_weight", "seed", "batch_size", "scale",
                   "paste_known"))
@click.option("--mask", type=click.Path(exists=True, path_type=Path), help="inpaint: mask file or folder of masks.")
@click.option("--reference", "reference_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Ground-truth images with the same file stems (needed by every task but invert).")
@click.option("--resize", type=click.Choice(RESIZE_POLICIES), default="error", show_default=True,
              help="Inputs of the wrong size: error, crop or fit.")
@click.option("--recursive", is_flag=True, help="Also take images from sub-folders of INPUT folders.")
@click.option("--contributions", "contributions_text", metavar="LAYER:CODES",
              help="Also draw, for this pair, which code explains which region of each image.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--precision", type=click.Choice(["auto", *PRECISIONS]), default="auto", show_default=True,
              help="Autocast of the networks (see `mgan invert --help`).")
@click.option("--overwrite", is_flag=True, help="Redo pairs and images whose outputs exist.")
@click.option("--quiet", is_flag=True, help="No progress bars or table.")
@click.option("--shard", metavar="I/N", help="Run every pair on shard I of N (from 0) of the images (see "
                                              "`mgan invert --help`); `mgan report OUT` merges the shards.")
@reports_errors
def analyze_command(inputs: tuple[str, ...], output_dir: Path, layers: str | None, codes_text: str | None,
                    task_name: str, preset: str | None, generator: str | None, reference_dir: Path | None,
                    resize: str, recursive: bool, contributions_text: str | None, device: str, precision: str,
                    overwrite: bool, quiet: bool, mask: Path | None, shard: str | None, **overrides: Any) -> None:
    """Restore INPUT images for every pair (composing layer ℓ, number of codes N) and measure each.

    The paper's analysis: quality grows with N and saturates (around N = 20 in the paper); a higher ℓ
    reconstructs more but uses less of the prior. Each pair is a normal run into OUT/runs/layer<ℓ>-codes<N>/
    (images, report.json, index.html); OUT/analysis.json has one row per image × layer × codes (input,
    layer, codes, psnr, ssim, lpips, seconds) and the means per pair, OUT/analysis.csv the rows, and
    OUT/quality_vs_codes.png / quality_vs_layer.png plot them, OUT/analysis.html shows it all (a task run into
    the same OUT keeps its own index.html; each page links the other). A rerun continues where the last one
    stopped.

    \b
    Examples:
      mgan analyze faces/ -o analysis/ --layers 1-4 --codes 1,5,10,20,30
      mgan analyze faces/ -o analysis/ --codes 1,20 --contributions 2:20
      mgan analyze holed/ -o an/ --task inpaint --mask m.png --reference originals/ --layers 2,3
    """
    restorer = Restorer(generator, task_name, preset=preset, device=device, precision=precision, **overrides)
    stdin_lines = sys.stdin.read().splitlines() if "-" in inputs else []
    contributions = _pair(contributions_text)
    warned: set[str] = set()

    def warn(message: str) -> None:
        if message not in warned:
            warned.add(message)
            stderr_console.print(f"[yellow]mgan: warning:[/] {escape(message)}", soft_wrap=True)

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=stderr_console, disable=quiet)
    pairs_bar = progress.add_task("pairs", total=None)
    steps_bar = progress.add_task("  steps", total=None)

    pairs_total = {"count": 0}

    def on_pair(index: int, total: int, layer: int, codes: int) -> None:
        pairs_total["count"] = total
        progress.update(pairs_bar, completed=index, total=total, description=f"layer {layer}, {codes} codes")

    def on_record(record: Any) -> None:
        if record.status == "failed":
            warn(skipped_line(record.input, record.error))

    events = RunEvents(on_step=lambda step, total, loss: progress.update(steps_bar, completed=step, total=total),
                       on_record=on_record, on_warning=warn)
    with progress:
        outcome = restorer.analyze_files(
            inputs, output_dir, layers=layers, codes=codes_text, contributions=contributions, events=events,
            on_pair=on_pair, reference_dir=reference_dir, mask=mask, resize=resize, recursive=recursive,
            overwrite=overwrite, stdin_lines=stdin_lines, shard=shard)
        progress.update(pairs_bar, completed=pairs_total["count"], description="pairs")
    document, page, written = outcome.document, outcome.page, outcome.contribution_maps
    if not quiet:
        stdout_console.print(_means_table(document["means"]))
        stderr_console.print(f"wrote {page}, analysis.json, analysis.csv, quality_vs_codes.png and "
                             f"quality_vs_layer.png" + (f"; {len(written)} new contribution maps" if written else ""))
    exit_for_failures(sum(row["status"] == "failed" for row in document["rows"]), len(document["rows"]))
