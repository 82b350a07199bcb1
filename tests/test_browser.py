"""OUT/index.html in a real headless browser (Debian's chromium): every image loads, sorting and filtering work,
nothing is fetched from outside the folder, and a screenshot can be taken. `.ci/run` installs chromium when
it is missing; without it these tests are skipped with that reason."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from mgan_cli.cli import main
from tests.browser import Browser, find_chromium
from tests.helpers import celeba_face

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None,
                                reason="chromium is not installed (apt-get install chromium; .ci/run does)")

ODD_NAME = "odd #1 100%&<b>"  # characters that break unescaped HTML or unencoded links

WAIT_FOR_IMAGES = """Promise.all(Array.from(document.images).map(i => i.complete ? 0 :
  new Promise(r => { i.onload = i.onerror = r; }))).then(() => Array.from(document.images).map(i => i.naturalWidth))"""
ORDER = "Array.from(document.querySelectorAll('#rows tbody tr')).map(r => r.getAttribute('data-name'))"
VISIBLE = "Array.from(document.querySelectorAll('#rows tbody tr')).filter(r => !r.hidden).length"


@pytest.fixture(scope="module")
def run_folder(shared_dir, tmp_path_factory) -> Path:
    """A real (very short) `mgan superres` run of 3 faces, one with an odd name, plus one unreadable file."""
    root = tmp_path_factory.mktemp("browser")
    inputs, references = root / "lowres", root / "originals"
    inputs.mkdir()
    references.mkdir()
    photos = sorted((shared_dir / "data" / "celeba64").glob("*.jpg"))[:3]
    for index, photo in enumerate(photos):
        name = ODD_NAME if index == 0 else photo.stem
        face = celeba_face(photo)
        face.save(references / f"{name}.png")
        face.resize((16, 16), Image.Resampling.BICUBIC).save(inputs / f"{name}.png")
    (inputs / "broken.png").write_bytes(b"not an image")
    out = root / "out"
    result = CliRunner().invoke(main, ["superres", str(inputs), "-o", str(out), "--scale", "4", "--reference",
                                       str(references), "--iterations", "2", "--codes", "2", "--device", "cpu",
                                       "--quiet"], catch_exceptions=False)
    assert result.exit_code == 1  # broken.png failed, the rest ran
    return out


@pytest.fixture(scope="module")
def page(run_folder, tmp_path_factory):
    with Browser(CHROMIUM, tmp_path_factory.mktemp("profile"), width=1400, height=1600) as browser:
        browser.send("Network.enable")
        browser.open((run_folder / "index.html").as_uri())
        yield browser


def test_every_image_loads_from_the_folder(page, run_folder) -> None:
    widths = page.evaluate(WAIT_FOR_IMAGES)
    assert len(widths) == 3 * 4  # 3 restored images × input, output, reference, baseline
    assert all(width > 0 for width in widths), widths
    sources = page.evaluate("Array.from(document.images).map(i => i.src)")
    assert all(src.startswith(run_folder.as_uri() + "/.mgan/thumbs/") for src in sources)
    assert any("%23" in src and "%25" in src for src in sources)  # the odd name is percent-encoded
    requested = [e["params"]["request"]["url"] for e in page.events if e.get("method") == "Network.requestWillBeSent"]
    assert requested and all(url.startswith(("file://", "data:")) for url in requested), requested
    assert page.evaluate("document.querySelectorAll('#rows b').length") == 0  # '<b>' in a name stays text
    assert ODD_NAME + ".png" in page.evaluate(ORDER)


def test_sorting_by_a_metric_and_filtering_by_status(page, run_folder) -> None:
    report = json.loads((run_folder / "report.json").read_text())
    names = {row["input"]: Path(row["input"]).name for row in report["images"]}
    ok = [row for row in report["images"] if row["status"] == "ok"]
    by_psnr = [names[row["input"]] for row in sorted(ok, key=lambda row: row["psnr"], reverse=True)]
    page.evaluate("document.querySelector('th[data-key=psnr]').click()")  # PSNR: higher is better, first desc
    assert page.evaluate(ORDER) == [*by_psnr, "broken.png"]  # missing values last
    page.evaluate("document.querySelector('th[data-key=psnr]').click()")
    assert page.evaluate(ORDER) == [*reversed(by_psnr), "broken.png"]
    assert page.evaluate("document.querySelector('th[data-key=psnr]').getAttribute('data-dir')") == "asc"
    by_baseline = [names[row["input"]] for row in sorted(ok, key=lambda row: row["baseline_lpips"])]
    page.evaluate("document.querySelector('th[data-key=baseline_lpips]').click()")  # lower is better: asc
    assert page.evaluate(ORDER)[:3] == by_baseline
    assert all(math.isfinite(row["baseline_psnr"]) for row in ok)

    page.evaluate("var s = document.getElementById('status-filter'); s.value = 'failed';"
                  "s.dispatchEvent(new Event('change'))")
    assert page.evaluate(VISIBLE) == 1
    assert page.evaluate("document.getElementById('shown').textContent") == "1"
    page.evaluate("var s = document.getElementById('status-filter'); s.value = '';"
                  "s.dispatchEvent(new Event('change'))")
    assert page.evaluate(VISIBLE) == 4


def test_sort_from_the_address_and_screenshot(page, run_folder, tmp_path) -> None:
    page.open("about:blank")  # a change of the fragment alone would not load the page again
    page.open((run_folder / "index.html").as_uri() + "#sort=psnr:asc")
    report = json.loads((run_folder / "report.json").read_text())
    lowest = min((row for row in report["images"] if row["status"] == "ok"), key=lambda row: row["psnr"])
    assert page.evaluate(ORDER)[0] == Path(lowest["input"]).name
    page.evaluate(WAIT_FOR_IMAGES)
    shot = page.screenshot(tmp_path / "report.png")
    with Image.open(shot) as image:
        assert image.format == "PNG" and image.size == (1400, 1600)
        colours = np.asarray(image.convert("RGB").resize((140, 160))).reshape(-1, 3)
        assert len(np.unique(colours, axis=0)) > 50  # thumbnails, not a blank page


def test_long_names_wrap_and_keep_every_thumbnail_on_screen(tmp_path) -> None:
    """A very long file name wraps inside its cell: the table is no wider than the window, and every row's
    thumbnails stay within it (a name cell that grew with its text pushed them off-screen)."""
    import torch

    from mgan_cli.report.html import write_html
    from mgan_cli.report.thumbnails import THUMB_DIR, write_thumbnails

    out = tmp_path / "out"
    thumbs = out / THUMB_DIR
    thumbs.mkdir(parents=True)
    rows = []
    for index, stem in enumerate(["x" * 240, "a-" * 60 + "b", "plain"]):
        pixels = torch.full((3, 16, 16), 80 * index, dtype=torch.uint8)
        write_thumbnails(thumbs, stem, {"input": pixels, "output": pixels})
        rows.append({"input": str(tmp_path / f"{stem}.png"), "output": str(out / f"{stem}.png"), "status": "ok"})
    page_file = write_html(out / "index.html", "long names", {}, {"images": 3}, rows, thumbs)
    with Browser(CHROMIUM, tmp_path / "profile", width=900, height=900) as browser:
        browser.open(page_file.as_uri())
        browser.evaluate(WAIT_FOR_IMAGES)
        width = browser.evaluate("document.documentElement.clientWidth")
        rights = browser.evaluate("Array.from(document.querySelectorAll('#rows img'))"
                                  ".map(i => i.getBoundingClientRect().right)")
        table = browser.evaluate("document.getElementById('rows').getBoundingClientRect().right")
    assert len(rights) == 6 and max(rights) <= width, (rights, width)
    assert table <= width + 1
