"""The HTML view of a run: escaping, relative links only, lazy thumbnails, sortable columns."""

from __future__ import annotations

import html
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import torch

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
    assert html.escape(HOSTILE) in text


def test_mgan_metrics_writes_a_page_beside_its_report(shared_dir, tmp_path) -> None:
    from click.testing import CliRunner
    from PIL import Image

    from mgan_cli.cli.metrics_cmd import metrics_command

    face = Image.open(shared_dir / "data" / "ffhq256" / "000001.png").convert("RGB")
    (tmp_path / "restored").mkdir()
    (tmp_path / "reference").mkdir()
    face.resize((128, 128)).resize((256, 256)).save(tmp_path / "restored" / "face.png")
    face.save(tmp_path / "reference" / "face.png")
    (tmp_path / "restored" / "broken.png").write_bytes(b"not an image")
    result = CliRunner().invoke(metrics_command, [str(tmp_path / "restored"), "-r", str(tmp_path / "reference"),
                                                  "--metrics", "psnr", "-o", str(tmp_path / "scores.json")],
                                catch_exceptions=False)
    assert result.exit_code == 1  # broken.png is skipped
    page = _parse((tmp_path / "scores.html").read_text(encoding="utf-8"))
    rows = {attrs["data-name"]: attrs["data-status"] for tag, attrs in page.tags
            if tag == "tr" and "data-name" in attrs}
    assert rows == {"face.png": "ok", "broken.png": "failed"}
    sources = [unquote(attrs["src"]) for tag, attrs in page.tags if tag == "img"]
    assert len(sources) == 2 and all((tmp_path / src).is_file() for src in sources)
    assert Image.open(tmp_path / sources[0]).size == (128, 128)  # a thumbnail, not the 256² image
