"""``OUT/analysis.html`` of ``mgan analyze``: the plots, the table of means (one cell per pair, linking to that
pair's own index.html) and the contribution maps. Offline like every mgan page: relative links only. Rendered
from a Jinja2 template with autoescaping (:mod:`mgan_cli.report.templating`), so every value is escaped.

It is not ``index.html``: that name is the page of the run store's report (:mod:`mgan_cli.report.tables`), so a
task run and an analysis into one ``OUT`` keep both pages, each linking the other (:mod:`mgan_cli.report.owned`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mgan_cli.report.owned import check_replaceable, page_mark, written_by_mgan
from mgan_cli.report.templating import Markup, render
from mgan_cli.utils.atomic import write_atomic

_STYLE = """body{font:14px/1.4 system-ui,sans-serif;margin:1em;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:.2em .6em;border-bottom:1px solid #ddd;text-align:right}
img.plot{max-width:100%}img.map{max-width:100%;display:block;margin:.3em 0}h2{font-size:1.1em;margin-top:1.2em}"""

_PAGE = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">{{ mark }}<title>mgan analyze</title>\
<style>{{ style }}</style></head><body>
<h1>mgan analyze: <bdi>{{ document.generator | visible }}</bdi>, task <bdi>{{ document.task | visible }}</bdi></h1>
{% if report %}<p><a href="index.html">the report of the runs in this folder</a></p>{% endif %}
<p>{{ document.inputs }} images, layers {{ document.layers }}, codes {{ document.codes }}, \
{{ document.elapsed_seconds }} s</p>
{% for name, src in plots %}
<img class="plot" src="{{ src }}" alt="{{ name }}">
{% endfor %}
<h2>means per pair (each links to its run)</h2><table><tr><th>layer ℓ</th><th>codes N</th><th>images</th>\
<th>PSNR ↑</th><th>SSIM ↑</th><th>LPIPS ↓</th><th>s/image</th></tr>
{% for mean in means %}
<tr><td>{% if mean.href %}<a href="{{ mean.href }}">{{ mean.layer }}</a>{% else %}{{ mean.layer }}{% endif %}</td>\
<td>{{ mean.codes }}</td><td>{{ mean.images }}</td><td>{{ mean.psnr }}</td><td>{{ mean.ssim }}</td>\
<td>{{ mean.lpips }}</td><td>{{ mean.seconds }}</td></tr>
{% endfor %}
</table>
{% if figures %}
<h2>which code explains which region</h2>
{% for name, src in figures %}
<img class="map" loading="lazy" src="{{ src }}" alt="{{ name | visible }}">
{% endfor %}
{% endif %}
</body></html>
"""


#: the analysis page's name in ``OUT``
PAGE_NAME = "analysis.html"


def _link(target: Path, page_dir: Path) -> str:
    return quote(os.path.relpath(target, page_dir).replace(os.sep, "/"))


def _cell(value: Any, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def write_analysis_page(output_dir: Path, document: dict[str, Any], pair_dirs: dict[tuple[int, int], Path],
                        figures: Sequence[Path] = ()) -> Path:
    """Write ``output_dir/analysis.html`` for an analysis ``document`` (:func:`mgan_cli.analysis.sweep.write_analysis`).
    Raises :class:`OutputError` rather than replace a file there that is not an analysis page mgan wrote."""
    means = []
    for mean in document.get("means", []):
        run = pair_dirs.get((mean["layer"], mean["codes"]))
        linked = run is not None and (run / "index.html").is_file()
        means.append({"layer": mean["layer"], "codes": mean["codes"], "images": mean["images"],
                      "href": _link(run / "index.html", output_dir) if linked and run is not None else None,
                      "psnr": _cell(mean["psnr"], 2), "ssim": _cell(mean["ssim"], 4),
                      "lpips": _cell(mean["lpips"], 4), "seconds": _cell(mean["seconds"], 2)})
    shown = {key: document.get(key) for key in ("generator", "task", "inputs", "layers", "codes", "elapsed_seconds")}
    path = output_dir / PAGE_NAME
    check_replaceable(path, "analysis")
    text = render(_PAGE, style=Markup(_STYLE), mark=Markup(page_mark("analysis")),
                  report=written_by_mgan(output_dir / "index.html", "report"), document=shown, means=means,
                  plots=[(plot, _link(output_dir / plot, output_dir))
                         for plot in ("quality_vs_codes.png", "quality_vs_layer.png") if (output_dir / plot).is_file()],
                  figures=[(f.name, _link(f, output_dir)) for f in figures])
    write_atomic(path, text)
    return path
