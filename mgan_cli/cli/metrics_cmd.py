"""``mgan metrics``: image-quality metrics of restored images, optionally against references.

Images are read with Pillow as RGB uint8 (grayscale is repeated to RGB, alpha and palettes are flattened,
see :func:`mgan_cli.utils.imageio.read_image`). A restored image is paired with the reference file of the same
stem (``face.png`` with ``REFDIR/face.jpg``). Unreadable files, missing or ambiguous references and size
mismatches are reported one per line on stderr and skipped; the exit status is then 1, or 2 when no image could
be measured.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import click
import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from mgan_cli.cli.common import exit_for_failures, reports_errors, skipped_line
from mgan_cli.errors import ImageInputError, MganError
from mgan_cli.metrics import DEFAULT_METRICS, compute_metrics, json_row, metric_spec
from mgan_cli.report.html import write_html
from mgan_cli.report.owned import check_replaceable
from mgan_cli.report.tables import write_csv, write_json
from mgan_cli.report.thumbnails import THUMB_DIR, thumbnail_from_file, thumbnail_name
from mgan_cli.utils.atomic import make_folder
from mgan_cli.utils.devices import DEVICE_CHOICES, resolve_device
from mgan_cli.utils.imageio import collect_inputs, read_image
from mgan_cli.utils.pairing import StemIndex

_FORMATS = {"psnr": "{:.2f}", "ssim": "{:.4f}", "lpips": "{:.4f}", "niqe": "{:.3f}"}
Row = dict[str, float | str | None]


def load_rgb(path: Path) -> torch.Tensor:
    """The image at ``path`` as uint8 ``[1, 3, H, W]`` RGB (raises :class:`ImageInputError` if unreadable)."""
    array = np.array(read_image(path), dtype=np.uint8)
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


def _parse_metrics(value: str | None, has_reference: bool) -> tuple[str, ...]:
    if value is None:
        return DEFAULT_METRICS if has_reference else ("niqe",)
    names = tuple(dict.fromkeys(name.strip().lower() for name in value.split(",") if name.strip()))
    if not names:
        raise click.BadParameter("name at least one metric", param_hint="--metrics")
    for name in names:
        try:
            spec = metric_spec(name)
        except MganError as exc:
            raise click.BadParameter(str(exc), param_hint="--metrics") from None
        if spec.full_reference and not has_reference:
            raise click.BadParameter(f"{name} compares with a reference: pass --reference DIR",
                                     param_hint="--metrics")
    return names


def _format(name: str, row: Row) -> str:
    value = row.get(name)
    if value is None:
        return "—"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return _FORMATS.get(name, "{:.4f}").format(value)


def _table(rows: list[Row], names: tuple[str, ...]) -> Table:
    table = Table(title="image quality")
    table.add_column("name")
    for name in names:
        better = "↑" if metric_spec(name).higher_is_better else "↓"
        table.add_column(f"{name} {better}", justify="right")
    notes = any(f"{name}_reason" in row for row in rows for name in names)
    if notes:
        table.add_column("notes", overflow="fold")
    for row in rows:
        cells = [str(row["name"]), *(_format(name, row) for name in names)]
        if notes:
            cells.append("; ".join(f"{n}: {row[f'{n}_reason']}" for n in names if f"{n}_reason" in row))
        table.add_row(*cells)
    return table


def _write_report(path: Path, rows: list[Row], names: tuple[str, ...], settings: dict[str, object],
                  skipped: list[dict[str, str]]) -> None:
    if path.suffix.lower() == ".csv":
        write_csv(path, rows, ["name", *names, *(f"{name}_reason" for name in names)], extra_columns=False)
    else:
        write_json(path, {"metrics": list(names), "settings": settings, "images": rows, "skipped": skipped})


def _check_outputs(output: Path) -> None:
    """Refuse (:class:`OutputError`) to replace a file at ``output`` or at its page that is not a metrics report or
    page mgan wrote: e.g. a run's ``report.json`` or ``index.html``, or the user's own file."""
    for path in (output, output.with_suffix(".html")):
        check_replaceable(path, "metrics")


def _write_page(output: Path, rows: list[Row], sources: dict[str, tuple[Path, Path | None]],
                skipped: list[dict[str, str]], settings: dict[str, object]) -> Path:
    """``<output stem>.html`` beside ``output``: the measured images (and references) as thumbnails with
    their values, skipped files as failed rows (see :mod:`mgan_cli.report.html`)."""
    thumb_dir = make_folder(output.parent, output.parent / THUMB_DIR / output.stem)
    page_rows: list[dict[str, object]] = []
    for row in rows:
        image, reference = sources[str(row["name"])]
        thumbnail_from_file(image, thumb_dir / thumbnail_name(image.stem, "output"))
        if reference is not None:
            thumbnail_from_file(reference, thumb_dir / thumbnail_name(image.stem, "reference"))
        page_rows.append({**json_row(row), "input": str(image), "output": str(image), "status": "ok"})
    page_rows += [{"input": entry["path"], "output": None, "status": "failed", "error": entry["reason"]}
                  for entry in skipped]
    values = [r for r in page_rows if r["status"] == "ok"]
    summary: dict[str, object] = {"images": len(page_rows), "ok": len(values), "skipped": 0,
                                  "failed": len(skipped)}
    for name in DEFAULT_METRICS:
        numbers = [r[name] for r in values if isinstance(r.get(name), int | float)]
        summary[f"mean_{name}"] = sum(numbers) / len(numbers) if numbers else None  # type: ignore[arg-type]
        summary[f"count_{name}"] = len(numbers)
    return write_html(output.with_suffix(".html"), f"mgan metrics: {output.stem}", {"task": "metrics", **settings},
                      summary, page_rows, thumb_dir, kind="metrics")


@click.command("metrics")
@click.argument("restored", nargs=-1, required=True)
@click.option("--reference", "-r", "reference_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of ground-truth images, paired with RESTORED files by file stem.")
@click.option("--metrics", "metric_list", metavar="LIST",
              help="Comma-separated metrics (psnr,ssim,lpips,niqe). Default: all four with --reference, "
                   "else niqe.")
@click.option("--y", "y_channel", is_flag=True, help="PSNR and SSIM on the BT.601 luma (Y) channel.")
@click.option("--crop-border", type=click.IntRange(min=0), default=0, show_default=True,
              help="Pixels ignored at each image edge.")
@click.option("--lpips-net", type=click.Choice(["alex", "vgg"]), default="alex", show_default=True,
              help="LPIPS backbone.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object per image on stdout (nothing else goes to stdout).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write all rows to a .json or .csv file (format by suffix), and an HTML page of them "
                   "with thumbnails beside it (same name, .html).")
@click.option("--device", default="auto", show_default=True, help=f"{DEVICE_CHOICES} (auto: CUDA when available).")
@reports_errors
def metrics_command(restored: tuple[str, ...], reference_dir: Path | None, metric_list: str | None,
                    y_channel: bool, crop_border: int, lpips_net: str, as_json: bool, output: Path | None,
                    device: str) -> None:
    """Measure PSNR, SSIM, LPIPS (vs --reference) and NIQE of RESTORED images (files and/or folders).

    Folders are read non-recursively (image suffixes only); "-" reads paths from stdin. Images are paired
    with --reference files by file stem. Values undefined for an image (NIQE below two 96x96 blocks, ...)
    are null with a reason; an infinite PSNR (identical images) is "inf" in JSON and CSV. Unreadable
    files, missing references and size mismatches are reported on stderr and skipped (exit status 1; 2 when
    every image is skipped).
    """
    names = _parse_metrics(metric_list, reference_dir is not None)
    if output is not None and output.suffix.lower() not in (".json", ".csv"):
        raise click.BadParameter("must end in .json or .csv", param_hint="-o/--output")
    try:
        target = resolve_device(device)
    except MganError as exc:
        raise click.BadParameter(str(exc), param_hint="--device") from None

    if output is not None:
        _check_outputs(output)  # before any work
    stdin_lines = click.get_text_stream("stdin") if "-" in restored else ()
    paths = collect_inputs(restored, recursive=False, stdin_lines=stdin_lines)
    references = StemIndex(reference_dir) if reference_dir is not None else None
    skipped: list[dict[str, str]] = []
    rows: list[Row] = []
    seen: dict[str, Path] = {}
    sources: dict[str, tuple[Path, Path | None]] = {}

    def skip(path: Path, reason: str) -> None:
        skipped.append({"path": str(path), "reason": reason})
        click.echo(skipped_line(path, reason), err=True)

    def warn(message: str) -> None:
        click.echo(f"warning: {message}", err=True)

    for path in paths:
        stem = path.stem
        if stem in seen:
            skip(path, f"same name as {seen[stem]} (images are named by file stem)")
            continue
        try:
            image = load_rgb(path)
            reference, reference_path = None, None
            if references is not None:
                reference_path = references.require(stem)
                reference = load_rgb(reference_path)
                if reference.shape != image.shape:
                    raise ImageInputError(
                        f"size {image.shape[3]}x{image.shape[2]} differs from the reference "
                        f"{reference_path} ({reference.shape[3]}x{reference.shape[2]})"
                    )
            values = compute_metrics(image, reference, names, device=target, y_channel=y_channel,
                                     crop_border=crop_border, lpips_net=lpips_net, on_warning=warn)[0]
        except MganError as exc:
            message = str(exc)
            skip(path, message.removeprefix(f"{path}: "))
            continue
        seen[stem] = path
        sources[stem] = (path, reference_path)
        row: Row = {"name": stem, **values}
        rows.append(row)
        if as_json:
            click.echo(json.dumps(json_row(row), allow_nan=False))

    if not as_json and rows:
        Console(soft_wrap=False).print(_table(rows, names))
    if output is not None:
        settings = {"y_channel": y_channel, "crop_border": crop_border, "lpips_net": lpips_net,
                    "device": str(target), "reference": str(reference_dir) if reference_dir else None}
        make_folder(output.parent)
        _check_outputs(output)
        _write_report(output, rows, names, settings, skipped)
        _write_page(output, rows, sources, skipped, settings)
    if not paths:
        click.echo("no images found", err=True)
    exit_for_failures(len(skipped), len(skipped) + len(rows))


__all__ = ["load_rgb", "metrics_command"]
