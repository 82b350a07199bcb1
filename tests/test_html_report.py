"""The HTML view of a run: escaping, relative links only, lazy thumbnails, sortable columns."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import torch
from PIL import Image

from mgan_cli.report.html import render_html, write_html
from mgan_cli.report.thumbnails import THUMB_DIR, thumbnail_name, write_thumbnails

HOSTILE = "<img src=x onerror=alert(1)>&\"q' %20#?.png"


class _Page(HTMLParser):
    """Collects the tags, attributes and text of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    return page


def _rows(tmp_path: Path) -> tuple[Path, list[dict]]:
    out = tmp_path / "out"
    thumbs = out / THUMB_DIR
    thumbs.mkdir(parents=True)
    rows = []
    for index, name in enumerate([HOSTILE, "plain.png", "broken.png"]):
        stem = Path(name).stem
        status = "failed" if name == "broken.png" else "ok"
        if status == "ok":
            pixels = torch.full((3, 64, 64), 40 * index, dtype=torch.uint8)
            write_thumbnails(thumbs, stem, {"input": pixels, "output": pixels, "reference": None, "baseline": pixels})
        output = str(out / f"{stem}.png") if status == "ok" else None
        error = "broken.png: not a readable image <b>" if status == "failed" else None
        rows.append({"input": str(tmp_path / "in" / name), "output": output, "status": status, "error": error,
                     "psnr": [31.5, "inf", None][index], "ssim": [0.9, 1.0, None][index],
                     "baseline_psnr": [25.0, 20.0, None][index], "seconds": 1.0, "notes": ["note <i>x</i>"]})
    return out, rows


def test_user_text_is_escaped_and_the_page_has_one_script(tmp_path) -> None:
    out, rows = _rows(tmp_path)
    text = render_html(out, "mgan <invert>", {"task": "invert", "command": "mgan invert '<x>'"}, {"images": 3}, rows,
                       out / THUMB_DIR)
    assert HOSTILE not in text and "<img src=x" not in text and "image <b>" not in text and "<i>x" not in text
    page = _parse(text)
    assert [tag for tag, _ in page.tags].count("script") == 1
    names = [attrs["data-name"] for tag, attrs in page.tags if tag == "tr" and "data-name" in attrs]
    assert names == [HOSTILE, "plain.png", "broken.png"]  # the parser un-escapes exactly what was escaped
    assert any("not a readable image <b>" in chunk for chunk in page.text)
    assert "mgan <invert>" in page.text


def test_links_are_relative_and_images_lazy(tmp_path) -> None:
    out, rows = _rows(tmp_path)
    text = render_html(out, "t", {}, {}, rows, out / THUMB_DIR)
    page = _parse(text)
    images = [attrs for tag, attrs in page.tags if tag == "img"]
    assert len(images) == 2 * 3  # two ok rows × input, output, baseline (no reference thumbnails: no column)
    assert all(attrs["loading"] == "lazy" for attrs in images)
    links = [attrs["src"] for attrs in images] + [attrs["href"] for tag, attrs in page.tags if tag == "a"]
    for link in links:
        assert link and "://" not in link and not link.startswith(("/", "//", "javascript")), link
    for attrs in images:
        assert (out / unquote(attrs["src"])).is_file()
    hostile_stem = Path(HOSTILE).stem
    assert unquote(images[0]["src"]) == f"{THUMB_DIR.as_posix()}/{thumbnail_name(hostile_stem, 'input')}"
    assert all(tag not in ("link", "iframe") for tag, _ in page.tags)
    assert "@import" not in text and "url(" not in text


def test_metric_cells_carry_sort_values(tmp_path) -> None:
    out, rows = _rows(tmp_path)
    page = _parse(render_html(out, "t", {}, {}, rows, out / THUMB_DIR))
    headings = [attrs.get("data-key") for tag, attrs in page.tags if tag == "th"]
    assert {"psnr", "ssim", "baseline_psnr", "seconds", "name", "status"} <= set(headings)
    assert "lpips" not in headings  # no row has it
    values = [attrs.get("data-v") for tag, attrs in page.tags if tag == "td" and "data-v" in attrs]
    assert "31.5" in values and "Infinity" in values and "" in values
    assert "∞" in "".join(page.text)


def test_write_html_is_atomic_and_complete(tmp_path) -> None:
    out, rows = _rows(tmp_path)
    path = write_html(out / "index.html", "t", {}, {}, rows * 1000, out / THUMB_DIR)
    text = path.read_text(encoding="utf-8")
    assert text.rstrip().endswith("</html>") and text.count("<tr ") == 3000
    assert not list(out.glob(".index.html*"))
    assert HOSTILE not in text
    names = [attrs["data-name"] for tag, attrs in _parse(text).tags if tag == "tr" and "data-name" in attrs]
    assert names.count(HOSTILE) == 1000


def test_mgan_metrics_writes_a_page_beside_its_report(shared_dir, tmp_path) -> None:
    from click.testing import CliRunner

    from mgan_cli.cli.metrics_cmd import metrics_command

    face = Image.open(shared_dir / "data" / "ffhq256" / "000001.png").convert("RGB")
    (tmp_path / "restored").mkdir()
    (tmp_path / "reference").mkdir()
    face.resize((128, 128)).resize((256, 256)).save(tmp_path / "restored" / "face.png")
    face.save(tmp_path / "reference" / "face.png")
    (tmp_path / "restored" / "broken.png").write_bytes(b"not an image")
    hostile = _marker("metrics-name").replace("/", "_") + ".png"
    (tmp_path / "restored" / hostile).write_bytes(b"not an image either")
    result = CliRunner().invoke(metrics_command, [str(tmp_path / "restored"), "-r", str(tmp_path / "reference"),
                                                  "--metrics", "psnr", "-o", str(tmp_path / "scores.json")],
                                catch_exceptions=False)
    assert result.exit_code == 1  # broken.png is skipped
    page = _parse((tmp_path / "scores.html").read_text(encoding="utf-8"))
    rows = {attrs["data-name"]: attrs["data-status"] for tag, attrs in page.tags
            if tag == "tr" and "data-name" in attrs}
    assert rows == {"face.png": "ok", "broken.png": "failed", hostile: "failed"}
    _assert_every_field_is_text((tmp_path / "scores.html").read_text(encoding="utf-8"), ["metrics-name"])
    sources = [unquote(attrs["src"]) for tag, attrs in page.tags if tag == "img"]
    assert len(sources) == 2 and all((tmp_path / src).is_file() for src in sources)
    assert Image.open(tmp_path / sources[0]).size == (128, 128)  # a thumbnail, not the 256² image


def _marker(field: str) -> str:
    """Text that becomes a ``<x-evil>`` element, or an ``onclick`` attribute, wherever it is not escaped (in text,
    in a double- or single-quoted attribute)."""
    return f"{field}\"'><x-evil onclick=1>&amp;<!--"


def _tags_and_strings(text: str) -> tuple[list[tuple[str, dict[str, str | None]]], str]:
    page = _parse(text)
    values = [value or "" for _, attrs in page.tags for value in attrs.values()]
    return page.tags, "\n".join(page.text + values)


def _assert_every_field_is_text(text: str, fields: list[str]) -> None:
    tags, strings = _tags_and_strings(text)
    assert not [tag for tag, _ in tags if tag == "x-evil"]
    assert not [name for _, attrs in tags for name in attrs if name.startswith("on")]
    for field in fields:
        assert _marker(field) in strings, f"{field} is not shown as text"


def test_markup_in_every_user_string_stays_text(tmp_path) -> None:
    """File names, folder names, reasons, notes, errors, the command and the header's values: all shown as text,
    none becomes markup, in text or in an attribute."""
    folder = tmp_path / _marker("folder").replace("/", "_")
    out = folder / "out"
    thumbs = out / THUMB_DIR
    thumbs.mkdir(parents=True)
    name = _marker("name").replace("/", "_")
    pixels = torch.full((3, 8, 8), 90, dtype=torch.uint8)
    write_thumbnails(thumbs, name, {"input": pixels, "output": pixels})
    rows = [{"input": str(folder / "in" / f"{name}.png"), "output": str(out / f"{name}.png"), "status": "ok",
             "psnr": None, "psnr_reason": _marker("reason"), "ssim": 0.5, "notes": [_marker("note")]},
            {"input": str(folder / "in" / "bad.png"), "output": None, "status": "failed", "error": _marker("error"),
             "psnr": 20.0, "notes": []}]
    header = {"task": _marker("task"), "command": _marker("command"), "device": _marker("device"),
              "preset": {"name": _marker("preset"), "generator": _marker("generator")},
              "reference": str(folder / "references")}
    text = render_html(out, _marker("title"), header, {"images": 2}, rows, thumbs)
    _assert_every_field_is_text(text, ["title", "task", "command", "device", "preset", "generator", "reason", "note",
                                       "error", "name"])
    tags, _ = _tags_and_strings(text)
    assert [attrs["title"] for tag, attrs in tags if tag == "td" and attrs.get("title")] == [_marker("reason")]
    assert len([tag for tag, _ in tags if tag == "img"]) == 2 and [tag for tag, _ in tags].count("script") == 1
    links = [attrs["href"] for tag, attrs in tags if tag == "a"] + [attrs["src"] for tag, attrs in tags if tag == "img"]
    assert all((out / unquote(link)).is_file() for link in links[1:]) and unquote(links[0]) == f"{name}.png"
    # the settings block holds the whole header, folder names and the command among them, as exact JSON
    settings = re.search(r"<pre[^>]*>(.*?)</pre>", text, re.S)
    assert settings is not None
    page = _parse(f"<pre>{settings.group(1)}</pre>")
    assert json.loads("".join(page.text)) == header


def test_names_are_isolated_wrapped_and_show_their_direction_controls(tmp_path) -> None:
    """A name with a right-to-left override is isolated in a ``<bdi>`` and shows the control as a visible mark; the
    name cell wraps anywhere, so a long name cannot widen the table past its thumbnails."""
    out = tmp_path / "out"
    name = "invoice\u202egnp.exe"
    rows = [{"input": str(tmp_path / f"{name}.png"), "output": str(out / f"{name}.png"), "status": "ok"}]
    text = render_html(out, "t", {}, {}, rows, out / THUMB_DIR)
    cell = re.search(r'<td class="name">(.*?)</td>', text, re.S)
    assert cell is not None and "\u202e" not in cell.group(1)
    assert re.fullmatch(r'<a href="[^"]+"><bdi>invoice⟨U\+202E⟩gnp\.exe\.png</bdi></a>', cell.group(1))
    style = re.search(r"<style>(.*?)</style>", text, re.S)
    assert style is not None
    rule = re.search(r"#rows td\.name\{([^}]*)\}", style.group(1))
    assert rule is not None and "overflow-wrap:anywhere" in rule.group(1) and "max-width:" in rule.group(1)


def test_a_251_byte_name_keeps_its_thumbnails(tmp_path) -> None:
    out = tmp_path / "out"
    thumbs = out / THUMB_DIR
    thumbs.mkdir(parents=True)
    stems = ["é" * 123 + "a", "é" * 123 + "b"]  # 247 bytes each: 251-byte file names, one 246-byte prefix
    rows = []
    for index, stem in enumerate(stems):
        assert len(f"{stem}.png".encode()) == 251
        pixels = torch.full((3, 8, 8), 100 * index, dtype=torch.uint8)
        write_thumbnails(thumbs, stem, {"input": pixels, "reference": pixels})
        rows.append({"input": str(tmp_path / f"{stem}.png"), "output": str(out / f"{stem}.png"), "status": "ok"})
    page = _parse(render_html(out, "t", {}, {}, rows, thumbs))
    sources = [unquote(attrs["src"]) for tag, attrs in page.tags if tag == "img"]
    assert len(sources) == 4 and len(set(sources)) == 4
    assert all(len(Path(src).name.encode()) <= 255 and (out / src).is_file() for src in sources)
    levels = [Image.open(out / src).convert("L").getpixel((4, 4)) // 50 for src in sources]
    assert levels == [0, 0, 2, 2]  # each row shows its own image


def test_the_analysis_page_escapes_its_values_and_file_names(tmp_path) -> None:
    from mgan_cli.analysis.page import write_analysis_page

    figure = tmp_path / "maps" / (_marker("figure").replace("/", "_") + ".png")
    figure.parent.mkdir()
    figure.write_bytes(b"")
    document = {"generator": _marker("generator"), "task": _marker("task"), "inputs": 1, "layers": [2],
                "codes": [1], "elapsed_seconds": 1.0,
                "means": [{"layer": 2, "codes": 1, "images": 1, "psnr": 30.0, "ssim": None, "lpips": None,
                           "seconds": 1.0}]}
    text = write_analysis_page(tmp_path, document, {}, [figure]).read_text(encoding="utf-8")
    _assert_every_field_is_text(text, ["generator", "task", "figure"])
    sources = [attrs["src"] for tag, attrs in _parse(text).tags if tag == "img"]
    assert [(tmp_path / unquote(src)).is_file() for src in sources] == [True]
