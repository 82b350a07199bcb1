"""Reports: the one writer of JSON and CSV reports, and the views of a run store.

* :func:`write_json` / :func:`write_csv` write any report (``mgan metrics -o`` too), strict JSON
  (non-finite floats as :mod:`mgan_cli.utils.jsonsafe` says) and atomically (:mod:`mgan_cli.utils.atomic`).
* A *view* is a file of ``OUT`` written from the run store (:mod:`mgan_cli.run.store`) after every batch
  and at the end of a run: ``report.json`` (the header of the latest run, every run's header under
  ``runs``, a summary, and one row per image, each with the ``run`` that produced it) and
  ``report.csv`` (the rows), and ``index.html`` (:mod:`mgan_cli.report.html`). The store is the union of every
  run store of ``OUT`` (every host and shard, :class:`mgan_cli.run.store.StoreReader`); ``mgan report OUT``
  rebuilds the views alone. Adding a view: register a function
  ``(report: Report, output_dir: Path) -> None`` in :data:`VIEWS` and write the file with
  :func:`mgan_cli.utils.atomic.write_atomic`; :func:`write_views` calls it with the same :class:`Report` as the
  others, in the views lock, so concurrent runs of one host never interleave their views.
* A view replaces only a view: :func:`check_views` (before any work, :func:`mgan_cli.run.runner.open_output_folder`,
  and in :func:`write_views`) refuses a ``report.json``/``report.csv``/``index.html`` already in ``OUT`` that
  mgan's views did not write (:mod:`mgan_cli.report.owned`), and any of them in an ``OUT`` without a run store.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mgan_cli.errors import OutputError
from mgan_cli.metrics.baselines import BASELINE_METRICS, baseline_summary
from mgan_cli.report.html import write_html
from mgan_cli.report.owned import check_replaceable
from mgan_cli.report.thumbnails import THUMB_DIR
from mgan_cli.run.store import STORE_DIR, StoreReader, views_lock
from mgan_cli.utils.atomic import write_atomic
from mgan_cli.utils.jsonsafe import json_safe
from mgan_cli.utils.registry import Registry

METRIC_COLUMNS = ("psnr", "ssim", "lpips", "niqe")
BASELINE_COLUMNS = tuple(f"baseline_{name}" for name in BASELINE_METRICS)
CSV_COLUMNS = ("input", "output", "status", "error", *METRIC_COLUMNS, "niqe_reason", *BASELINE_COLUMNS, "seconds",
               "loss", "seed", "notes", "identity", "run")  # identity: mgan_cli/faces/identity.py


def write_json(path: Path, document: Any) -> None:
    """``document`` as indented strict JSON (non-finite floats made safe), written atomically."""
    write_atomic(path, json.dumps(json_safe(document), indent=2, allow_nan=False) + "\n")


#: a cell starting with one of these is a formula to a spreadsheet (OWASP, "CSV injection")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """``value`` as a CSV cell that no spreadsheet runs: text starting with ``= + - @``, a tab or a carriage
    return gets a leading ``'`` (as OWASP recommends), unless it is a plain number such as ``-1.5`` or ``-inf``.

    >>> print(csv_cell('=HYPERLINK("http:evil.example","x").png'), csv_cell("-inf"), csv_cell("a.png"), csv_cell(-2))
    '=HYPERLINK("http:evil.example","x").png -inf a.png -2
    """
    if isinstance(value, list):
        value = "; ".join(map(str, value))
    if not isinstance(value, str) or not value.startswith(FORMULA_STARTS):
        return value
    try:
        float(value)
    except ValueError:
        return "'" + value
    return value


def csv_text(rows: Sequence[dict[str, Any]], columns: Sequence[str], extra_columns: bool = True) -> str:
    """CSV of ``rows``: ``columns`` first, then (``extra_columns``) any other key the rows have, in order of
    appearance. None is an empty cell, lists are joined with ``"; "``, ±inf is ``inf``/``-inf``; every cell
    and column name goes through :func:`csv_cell`, so no cell is a live formula."""
    names = list(columns)
    if extra_columns:
        for row in rows:
            names.extend(key for key in row if key not in names)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([csv_cell(name) for name in names])
    for row in json_safe(list(rows)):
        writer.writerow([csv_cell(row.get(name)) for name in names])
    return buffer.getvalue()


def write_csv(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str], extra_columns: bool = True) -> None:
    """:func:`csv_text` of ``rows``, written atomically."""
    write_atomic(path, csv_text(rows, columns, extra_columns))


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts per status and the mean of each metric over the images that have it."""
    summary: dict[str, Any] = {"images": len(rows)}
    for status in ("ok", "skipped", "failed"):
        summary[status] = sum(1 for r in rows if r["status"] == status)
    for name in (*METRIC_COLUMNS, "seconds"):
        values = [r[name] for r in rows if isinstance(r.get(name), int | float)]
        summary[f"mean_{name}"] = sum(values) / len(values) if values else None
        summary[f"count_{name}"] = len(values)
    summary.update(baseline_summary(rows))
    return summary


@dataclass
class Report:
    """What every view shows: ``header`` (this run's), ``runs`` (every run's header by its name,
    ``<store label>:<id>``), the ``rows`` (JSON-safe, each with its ``run``) and their ``summary``."""

    header: dict[str, Any]
    runs: dict[str, dict[str, Any]]
    rows: list[dict[str, Any]]
    summary: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        runs = [{"id": run_id, **header} for run_id, header in self.runs.items()]
        return {**json_safe(self.header), "summary": self.summary, "runs": runs, "images": self.rows}


View = Callable[[Report, Path], None]
VIEWS: Registry[View] = Registry("report view")


@VIEWS.register("report.json")
def _json_view(report: Report, output_dir: Path) -> None:
    write_json(output_dir / "report.json", report.to_json())


@VIEWS.register("report.csv")
def _csv_view(report: Report, output_dir: Path) -> None:
    write_csv(output_dir / "report.csv", report.rows, CSV_COLUMNS)


@VIEWS.register("index.html")
def _html_view(report: Report, output_dir: Path) -> None:
    write_html(output_dir / "index.html", f"mgan {report.header.get('task', '')}: {output_dir.name}", report.header,
               report.summary, report.rows, output_dir / THUMB_DIR, kind="report")


def build_report(store: StoreReader, header: dict[str, Any] | None = None) -> Report:
    """The report of everything the stores of ``OUT`` hold, headed by ``header`` (this run's; default: the
    header of the run that started last)."""
    rows = [{**image.row, "run": image.run} for image in store.images()]
    runs = store.runs()
    if header is None:
        header = list(runs.values())[-1] if runs else {}
    return Report(header, runs, rows, summarize(rows))


def check_views(output_dir: Path) -> None:
    """Raise :class:`OutputError` naming a view file already in ``output_dir`` that mgan's views would not replace:
    one that is not a view mgan wrote, or any when ``output_dir`` has no run store yet (so a run store's views
    never replace the user's files). Called before any work and before every write of the views."""
    stored = bool(StoreReader(output_dir).paths())
    for name in VIEWS.names():
        check_replaceable(output_dir / name, "report",
                          "" if stored else f"{output_dir} has no run store ({STORE_DIR}/), so mgan did not write it")


def write_views(store: StoreReader, header: dict[str, Any] | None = None) -> Report:
    """Write every registered view of the stores of ``OUT`` into it (one writer at a time on this host, see
    :func:`~mgan_cli.run.store.views_lock`); returns the report. Raises :class:`OutputError` (:func:`check_views`)
    rather than replace a file of ``OUT`` that is not one of its views."""
    with views_lock(store.folder):
        check_views(store.output_dir)
        report = build_report(store, header)
        for name in VIEWS.names():
            try:
                VIEWS.get(name)(report, store.output_dir)
            except OSError as exc:
                raise OutputError(f"{store.output_dir / name}: cannot write ({exc.strerror or exc})") from None
    return report


def rebuild_views(output_dir: Path) -> Report:
    """``mgan report OUT``: write the views of every store in ``OUT`` again (headed by the run that started
    last). Safe while shards are still writing, and as often as wanted. Raises :class:`OutputError` when
    ``OUT`` has no run store."""
    reader = StoreReader(output_dir)
    if not reader.paths():
        raise OutputError(f"{output_dir}: no run store in {output_dir / '.mgan'} (nothing was restored into it)")
    return write_views(reader)
