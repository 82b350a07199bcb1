"""``OUT/index.html`` of ``mgan analyze``: the plots, the table of means (one cell per pair, linking to that
pair's own index.html) and the contribution maps. Offline like every mgan page: relative links only."""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mgan_cli.utils.atomic import write_atomic

_STYLE = """body{font:14px/1.4 system-ui,sans-serif;margin:1em;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:.2em .6em;border-bottom:1px solid #ddd;text-align:right}
img.plot{max-width:100%}img.map{max-width:100%;display:block;margin:.3em 0}h2{font-size:1.1em;margin-top:1.2em}"""


def _link(target: Path, page_dir: Path) -> str:
    return html.escape(quote(os.path.relpath(target, page_dir).replace(os.sep, "/")), quote=True)


def _cell(value: Any, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def write_analysis_page(output_dir: Path, document: dict[str, Any], pair_dirs: dict[tuple[int, int], Path],
                        figures: Sequence[Path] = ()) -> Path:
    """Write ``output_dir/index.html`` for an analysis ``document`` (:func:`mgan_cli.analysis.sweep.write_analysis`)."""
    escape = html.escape
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>mgan analyze</title>"
             f"<style>{_STYLE}</style></head><body><h1>mgan analyze: {escape(str(document.get('generator')))}, "
             f"task {escape(str(document.get('task')))}</h1>",
             f"<p>{escape(str(document.get('inputs')))} images, layers {escape(str(document.get('layers')))}, "
             f"codes {escape(str(document.get('codes')))}, {escape(str(document.get('elapsed_seconds')))} s</p>"]
    for plot in ("quality_vs_codes.png", "quality_vs_layer.png"):
        if (output_dir / plot).is_file():
            parts.append(f"<img class=\"plot\" src=\"{_link(output_dir / plot, output_dir)}\" alt=\"{plot}\">")
    parts.append("<h2>means per pair (each links to its run)</h2><table><tr><th>layer ℓ</th><th>codes N</th>"
                 "<th>images</th><th>PSNR ↑</th><th>SSIM ↑</th><th>LPIPS ↓</th><th>s/image</th></tr>")
    for mean in document.get("means", []):
        run = pair_dirs.get((mean["layer"], mean["codes"]))
        label = str(mean["layer"])
        if run is not None and (run / "index.html").is_file():
            label = f"<a href=\"{_link(run / 'index.html', output_dir)}\">{label}</a>"
        parts.append(f"<tr><td>{label}</td><td>{mean['codes']}</td><td>{mean['images']}</td>"
                     f"<td>{_cell(mean['psnr'], 2)}</td><td>{_cell(mean['ssim'], 4)}</td>"
                     f"<td>{_cell(mean['lpips'], 4)}</td><td>{_cell(mean['seconds'], 2)}</td></tr>")
    parts.append("</table>")
    if figures:
        parts.append("<h2>which code explains which region</h2>")
        parts.extend(f"<img class=\"map\" loading=\"lazy\" src=\"{_link(f, output_dir)}\" alt=\"{escape(f.name)}\">"
                     for f in figures)
    parts.append("</body></html>\n")
    path = output_dir / "index.html"
    write_atomic(path, "".join(parts))
    return path
