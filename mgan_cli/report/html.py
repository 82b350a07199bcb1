"""The HTML view of a run: ``OUT/index.html``, one page that works offline from the folder.

One row per image with thumbnails (:mod:`mgan_cli.report.thumbnails`) of the input, the output, the reference
and the task's baseline, the metrics, the status and the notes; a header with the settings, the
generator, the device and the summary. Columns sort by a click (numbers numerically, missing values
last), rows filter by status and by name. The page links only relative paths, and carries its script
and style inline: nothing is fetched from anywhere. Thumbnails load lazily (``loading="lazy"``), so a
page of thousands of images opens at once. The page is a Jinja2 template rendered with autoescaping
(:mod:`mgan_cli.report.templating`): every piece of text from the run (file names, notes, errors, reasons,
settings, the command) is HTML-escaped wherever it lands; links are percent-encoded. Names are isolated
(``<bdi>``), bidirectional controls in them shown as visible marks, and wrapped, so a long or right-to-left
name neither reorders the row nor pushes the thumbnails off-screen.

``#sort=KEY:asc|desc`` in the page's address sorts on load (e.g. ``index.html#sort=psnr:desc``). The page says
which kind of mgan page it is in its ``<head>`` (:mod:`mgan_cli.report.owned`), and links ``analysis.html``, the
page of an ``mgan analyze`` into the same folder, when there is one.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mgan_cli.report.owned import page_mark, written_by_mgan
from mgan_cli.report.templating import Markup, render, visible_text
from mgan_cli.report.thumbnails import ROLES, thumbnail_name
from mgan_cli.utils.atomic import write_atomic

#: numeric columns in display order: (row key, heading, format, better: "up" | "down" | "")
NUMERIC_COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    ("psnr", "PSNR", "{:.2f}", "up"),
    ("ssim", "SSIM", "{:.4f}", "up"),
    ("lpips", "LPIPS", "{:.4f}", "down"),
    ("niqe", "NIQE", "{:.3f}", "down"),
    ("baseline_psnr", "baseline PSNR", "{:.2f}", "up"),
    ("baseline_ssim", "baseline SSIM", "{:.4f}", "up"),
    ("baseline_lpips", "baseline LPIPS", "{:.4f}", "down"),
    ("seconds", "seconds", "{:.2f}", ""),
    ("loss", "loss", "{:.4g}", ""),
)
STATUSES = ("ok", "skipped", "failed")

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1em;color:#222;background:#fff}
h1{font-size:1.3em;margin:.2em 0}
.facts{display:flex;flex-wrap:wrap;gap:.3em 1.5em;margin:.4em 0}
.facts b{color:#555;font-weight:600}
table{border-collapse:collapse}
#summary td,#summary th{padding:.15em .6em;text-align:right;border-bottom:1px solid #ddd}
#summary th:first-child,#summary td:first-child{text-align:left}
#rows{margin-top:.8em}
#rows th{position:sticky;top:0;background:#f3f3f3;padding:.3em .5em;border-bottom:2px solid #bbb;white-space:nowrap}
#rows th[data-key]{cursor:pointer;user-select:none}
#rows th[data-dir=asc]::after{content:" \\25B2"}
#rows th[data-dir=desc]::after{content:" \\25BC"}
#rows td{padding:.2em .5em;border-bottom:1px solid #e4e4e4;vertical-align:middle}
#rows td.num{text-align:right;font-variant-numeric:tabular-nums}
#rows td.thumb{padding:2px}
#rows td.name{min-width:6em;max-width:18em;overflow-wrap:anywhere}
#rows img{width:80px;height:80px;object-fit:contain;image-rendering:pixelated;display:block;background:#eee}
tr.failed{background:#fff0f0} tr.skipped{background:#f7f7ff}
.status{font-weight:600} .failed .status{color:#b00} .ok .status{color:#070}
.notes{max-width:28em;font-size:.9em;color:#444;overflow-wrap:anywhere}
.controls{margin:.6em 0;display:flex;gap:1em;align-items:center}
details pre{background:#f6f6f6;padding:.5em;max-height:30em;overflow:auto}
code{overflow-wrap:anywhere}
"""

_SCRIPT = """
(function () {
  var table = document.getElementById("rows"), body = table.tBodies[0];
  var statusFilter = document.getElementById("status-filter"), nameFilter = document.getElementById("name-filter");
  var shown = document.getElementById("shown");
  function value(row, index, numeric) {
    var text = row.cells[index].getAttribute("data-v");
    if (!numeric) return text === null ? row.cells[index].textContent : text;
    return text === null || text === "" ? NaN : parseFloat(text);
  }
  function sortBy(key, direction) {
    var th = table.querySelector('th[data-key="' + key + '"]');
    if (!th) return;
    var index = th.cellIndex, numeric = th.getAttribute("data-type") === "num", sign = direction === "desc" ? -1 : 1;
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = value(a, index, numeric), y = value(b, index, numeric);
      if (numeric) {
        var xm = isNaN(x), ym = isNaN(y);
        if (xm || ym) return xm === ym ? a.getAttribute("data-order") - b.getAttribute("data-order") : (xm ? 1 : -1);
        if (x !== y) return sign * (x < y ? -1 : 1);
        return a.getAttribute("data-order") - b.getAttribute("data-order");
      }
      return sign * String(x).localeCompare(String(y)) || a.getAttribute("data-order") - b.getAttribute("data-order");
    });
    var fragment = document.createDocumentFragment();
    rows.forEach(function (row) { fragment.appendChild(row); });
    body.appendChild(fragment);
    table.querySelectorAll("th[data-key]").forEach(function (other) { other.removeAttribute("data-dir"); });
    th.setAttribute("data-dir", direction);
  }
  function filter() {
    var status = statusFilter.value, needle = nameFilter.value.toLowerCase(), count = 0;
    Array.prototype.forEach.call(body.rows, function (row) {
      var visible = (!status || row.getAttribute("data-status") === status) &&
                    (!needle || row.getAttribute("data-name").toLowerCase().indexOf(needle) >= 0);
      row.hidden = !visible;
      if (visible) count++;
    });
    shown.textContent = count;
  }
  table.querySelectorAll("th[data-key]").forEach(function (th) {
    th.addEventListener("click", function () {
      var key = th.getAttribute("data-key"), current = th.getAttribute("data-dir");
      var first = th.getAttribute("data-first") || "asc";
      sortBy(key, current ? (current === "asc" ? "desc" : "asc") : first);
    });
  });
  statusFilter.addEventListener("change", filter);
  nameFilter.addEventListener("input", filter);
  var match = /sort=([A-Za-z0-9_]+):(asc|desc)/.exec(location.hash);
  if (match) sortBy(match[1], match[2]);
  filter();
})();
"""


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">{{ mark }}
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title><style>{{ style }}</style></head><body>
<h1><bdi>{{ title | visible }}</bdi></h1>
{% if analysis %}<p><a href="analysis.html">the layer analysis in this folder</a></p>{% endif %}
<div class="facts">
{% for name, value in facts %}
<span><b>{{ name }}</b> <bdi>{{ value | visible }}</bdi></span>
{% endfor %}
</div>
{% if command %}
<div><b>command</b> <code dir="auto">{{ command | visible }}</code></div>
{% endif %}
<table id="summary"><tr><th>metric</th><th>mean</th><th>images</th><th>baseline mean</th>\
<th>gain over baseline</th></tr>
{% for heading, mean, count, baseline, gain in summary_rows %}
<tr><td>{{ heading }}</td><td>{{ mean }}</td><td>{{ count }}</td><td>{{ baseline }}</td><td>{{ gain }}</td></tr>
{% endfor %}
</table>
<details><summary>all settings</summary><pre dir="auto">{{ settings | visible }}</pre></details>
<div class="controls"><label>status <select id="status-filter"><option value="">all</option>
{% for status, count in status_counts %}<option value="{{ status }}">{{ status }} ({{ count }})</option>{% endfor %}
</select></label><label>name <input id="name-filter" type="search"></label>
<span><span id="shown">{{ rows | length }}</span> of {{ rows | length }} shown; click a heading to sort</span></div>
<table id="rows"><thead><tr><th data-key="order" data-type="num">#</th><th data-key="name" data-type="text">image</th>
{% for role in roles %}<th>{{ role }}</th>{% endfor %}
<th data-key="status" data-type="text">status</th>
{% for key, heading, first, arrow in columns %}
<th data-key="{{ key }}" data-type="num" data-first="{{ first }}">{{ heading }}{{ arrow }}</th>
{% endfor %}
<th>notes</th></tr></thead><tbody>
{% for row in rows %}
<tr class="{{ row.status }}" data-status="{{ row.status }}" data-name="{{ row.name }}" data-order="{{ row.order }}">
<td class="num" data-v="{{ row.order }}">{{ row.order + 1 }}</td>
<td class="name">{% if row.href %}<a href="{{ row.href }}">{% endif %}<bdi>{{ row.name | visible }}</bdi>\
{% if row.href %}</a>{% endif %}</td>
{% for role, src in row.thumbs %}
{% if src %}
<td class="thumb"><img src="{{ src }}" alt="{{ role }}" title="{{ role }}" loading="lazy" decoding="async" \
width="80" height="80"></td>
{% else %}
<td class="thumb"></td>
{% endif %}
{% endfor %}
<td class="status">{{ row.status }}</td>
{% for value, text, reason in row.metrics %}
<td class="num" data-v="{{ value }}"{% if reason %} title="{{ reason }}"{% endif %}>{{ text }}</td>
{% endfor %}
<td class="notes">{% for note in row.notes %}{% if not loop.first %}<br>{% endif %}\
<bdi>{{ note | visible }}</bdi>{% endfor %}</td></tr>
{% endfor %}
</tbody></table><script>{{ script }}</script></body></html>
"""


def _number(value: Any) -> float | None:
    """A row value as a float (``"inf"`` strings as infinity), or ``None`` when it is not a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return None if isinstance(value, float) and math.isnan(value) else float(value)
    if value in ("inf", "-inf"):
        return math.inf if value == "inf" else -math.inf
    return None


def _format(value: float, pattern: str) -> str:
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    return pattern.format(value)


def _link(target: str | os.PathLike[str], page_dir: str | os.PathLike[str]) -> str:
    """A percent-encoded relative URL of ``target`` from ``page_dir``."""
    relative = os.path.relpath(os.path.abspath(target), os.path.abspath(page_dir))
    return quote(relative.replace(os.sep, "/"))


def _facts(header: dict[str, Any], summary: dict[str, Any]) -> list[tuple[str, str]]:
    preset = header.get("preset") if isinstance(header.get("preset"), dict) else {}
    inversion = preset.get("inversion") if isinstance(preset.get("inversion"), dict) else {}
    facts = [
        ("task", header.get("task")),
        ("generator", preset.get("generator") or header.get("generator")),
        ("preset", preset.get("name")),
        ("device", header.get("device")),
        ("codes N", inversion.get("codes")),
        ("layer ℓ", inversion.get("layer")),
        ("iterations", inversion.get("iterations")),
        ("seed", header.get("seed")),
        ("started", header.get("started")),
        ("elapsed s", header.get("elapsed_seconds")),
        ("images", summary.get("images")),
        ("ok", summary.get("ok")),
        ("skipped", summary.get("skipped")),
        ("failed", summary.get("failed")),
    ]
    return [(name, str(value)) for name, value in facts if value is not None]


def _summary_rows(summary: dict[str, Any], keys: Sequence[str]) -> list[tuple[str, str, str, str, str]]:
    """``(heading, mean, images, baseline mean, gain)`` per metric that has a mean or a baseline mean."""
    formats = {key: pattern for key, _, pattern, _ in NUMERIC_COLUMNS}
    headings = {key: heading for key, heading, _, _ in NUMERIC_COLUMNS}
    lines = []
    for key in keys:
        if key.startswith("baseline_"):
            continue
        mean = _number(summary.get(f"mean_{key}"))
        baseline = _number(summary.get(f"mean_baseline_{key}"))
        gain = _number(summary.get(f"gain_{key}"))
        if mean is None and baseline is None:
            continue
        cells = [_format(v, formats[key]) if v is not None else "–" for v in (mean, baseline, gain)]
        lines.append((headings[key], cells[0], str(summary.get(f"count_{key}", "")), cells[1], cells[2]))
    return lines


def render_html(page_dir: Path, title: str, header: dict[str, Any], summary: dict[str, Any],
                rows: Sequence[dict[str, Any]], thumb_dir: Path, kind: str = "report") -> str:
    """The page (see the module docstring) for report ``rows``, an mgan page of ``kind``
    (:mod:`mgan_cli.report.owned`); links are relative to ``page_dir``."""
    present = set(os.listdir(thumb_dir)) if thumb_dir.is_dir() else set()
    keys = [key for key, *_ in NUMERIC_COLUMNS if any(_number(row.get(key)) is not None for row in rows)]
    stems = [_stem(row) for row in rows]
    roles = [role for role in ROLES if any(stem and thumbnail_name(stem, role) in present for stem in stems)]
    columns = {key: (heading, pattern, better) for key, heading, pattern, better in NUMERIC_COLUMNS}
    thumb_prefix = _link(thumb_dir, page_dir) + "/"
    page = os.path.abspath(page_dir)
    return render(
        _PAGE,
        mark=Markup(page_mark(kind)),
        analysis=written_by_mgan(page_dir / "analysis.html", "analysis"),
        title=title,
        style=Markup(_STYLE),
        script=Markup(_SCRIPT),
        facts=_facts(header, summary),
        command=str(header.get("command") or ""),
        summary_rows=_summary_rows(summary, keys),
        settings=json.dumps(header, indent=2, default=str, ensure_ascii=False),
        status_counts=[(s, sum(1 for r in rows if r.get("status") == s)) for s in STATUSES],
        roles=roles,
        columns=[(key, columns[key][0], "desc" if columns[key][2] == "up" else "asc",
                  {"up": " ↑", "down": " ↓"}.get(columns[key][2], "")) for key in keys],
        rows=[_row(order, row, stem, roles, keys, columns, present, page, thumb_prefix)
              for order, (row, stem) in enumerate(zip(rows, stems, strict=True))],
    )


def _stem(row: dict[str, Any]) -> str:
    """The file stem thumbnails are named by: the output's (= the input's), or the input's when it failed."""
    name = os.path.basename(str(row.get("output") or row.get("input") or ""))
    stem, suffix = os.path.splitext(name)
    return stem if suffix else name


def _row(order: int, row: dict[str, Any], stem: str, roles: Sequence[str], keys: Sequence[str],
         columns: dict[str, tuple[str, str, str]], present: set[str], page_dir: str,
         thumb_prefix: str) -> dict[str, Any]:
    """What the template shows of one report row (plain strings; the template escapes them)."""
    status = str(row.get("status") or "")
    output = row.get("output")
    thumbs = []
    for role in roles:
        file = thumbnail_name(stem, role) if stem else ""
        thumbs.append((role, thumb_prefix + quote(file) if file in present else None))
    metrics = []
    for key in keys:
        value = _number(row.get(key))
        if value is None:
            reason = row.get(f"{key}_reason")
            metrics.append(("", "–", visible_text(reason) if reason else None))
        else:
            data = "Infinity" if value == math.inf else "-Infinity" if value == -math.inf else repr(value)
            metrics.append((data, _format(value, columns[key][1]), None))
    notes = [str(n) for n in (row.get("notes") or [])]
    if row.get("error"):
        notes.insert(0, str(row["error"]))
    return {"order": order, "status": status, "name": os.path.basename(str(row.get("input") or "")),
            "href": _link(output, page_dir) if output and status in ("ok", "skipped") else None,
            "thumbs": thumbs, "metrics": metrics, "notes": notes}


def write_html(path: Path, title: str, header: dict[str, Any], summary: dict[str, Any],
               rows: Sequence[dict[str, Any]], thumb_dir: Path, kind: str = "report") -> Path:
    """Write the page for ``rows`` to ``path`` atomically; returns ``path``. ``kind``: the kind of mgan page
    (:mod:`mgan_cli.report.owned`)."""
    text = render_html(path.parent, title, header, summary, rows, thumb_dir, kind)
    write_atomic(path, text)
    return path
