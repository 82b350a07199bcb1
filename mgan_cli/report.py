"""The run report: ``OUT/report.json`` (settings, weights, per-image records, summary) and ``OUT/report.csv``.

A rerun into the same folder keeps the earlier results: the runner fills records of skipped images
(their outputs already exist) from the previous report (:func:`previous_records`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any

from mgan_cli.baselines import BASELINE_METRICS, baseline_summary
from mgan_cli.html_report import write_html
from mgan_cli.run.records import ImageRecord
from mgan_cli.thumbnails import THUMB_DIR

METRIC_COLUMNS = ("psnr", "ssim", "lpips", "niqe")
BASELINE_COLUMNS = tuple(f"baseline_{name}" for name in BASELINE_METRICS)
CSV_COLUMNS = ("input", "output", "status", "error", *METRIC_COLUMNS, "niqe_reason", *BASELINE_COLUMNS, "seconds",
               "loss", "seed", "notes", "identity")  # identity: --align faces (mgan_cli/faces/identity.py)


def _clean(value: Any) -> Any:
    """JSON has no inf/nan: an infinite PSNR (identical images) becomes the string "inf", nan becomes null."""
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def record_json(record: ImageRecord) -> dict[str, Any]:
    """One record as JSON-safe data (the ``--json`` line and the report row)."""
    return _clean(record.to_dict())


PARTIAL_PATTERN = ".report-rank*.json"


def previous_records(output_dir: Path) -> dict[str, dict[str, Any]]:
    """Records of earlier runs in ``output_dir`` keyed by output path: ``report.json``, and the partial
    reports of an interrupted ``torchrun`` job (empty if none or unreadable)."""
    found: dict[str, dict[str, Any]] = {}
    for path in [output_dir / "report.json", *sorted(output_dir.glob(PARTIAL_PATTERN))]:
        try:
            images = json.loads(path.read_text())["images"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        found.update({row["output"]: row for row in images if isinstance(row, dict) and row.get("output")})
    return found


def write_partial(output_dir: Path, rank: int, rows: list[dict[str, Any]]) -> None:
    """One rank's rows so far (``.report-rank<R>.json``), merged by rank 0 at the end of the job."""
    _atomic_write(output_dir / f".report-rank{rank}.json", json.dumps({"images": rows}) + "\n")


def remove_partials(output_dir: Path) -> None:
    for path in output_dir.glob(PARTIAL_PATTERN):
        path.unlink(missing_ok=True)


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


def _atomic_write(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def write_report(output_dir: Path, header: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Write ``report.json`` and ``report.csv`` (rows from :func:`record_json`); returns the report as data."""
    report = {**_clean(header), "summary": summarize(rows), "images": rows}
    _atomic_write(output_dir / "report.json", json.dumps(report, indent=2) + "\n")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "notes": "; ".join(row.get("notes") or [])})
    _atomic_write(output_dir / "report.csv", buffer.getvalue())
    write_html(output_dir / "index.html", f"mgan {header.get('task', '')}: {output_dir.name}", header,
               report["summary"], rows, output_dir / THUMB_DIR)
    return report
