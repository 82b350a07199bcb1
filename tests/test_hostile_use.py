"""Hostile use, round 3 (issue 22): nothing written outside OUT by any command, sizes from a file or a flag
checked before anything is allocated, CSV cells that cannot run as formulas, no silent wrong results."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mgan_cli.cli import main
from mgan_cli.errors import OutputError
from mgan_cli.utils.atomic import make_folder
from tests.helpers import celeba_face

FAST = ["--iterations", "2", "--codes", "2", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def face(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real 64×64 face as a PNG file, in a folder of its own."""
    folder = tmp_path_factory.mktemp("good")
    photo = sorted((shared_dir / "data" / "celeba64").glob("*.jpg"))[0]
    celeba_face(photo).save(folder / "a.png")
    return folder / "a.png"


@pytest.fixture(scope="module")
def saved_latents(face: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``inv/latents`` of one inverted face (``--save-latents``)."""
    out = tmp_path_factory.mktemp("inv")
    result = CliRunner().invoke(main, ["invert", str(face), "-o", str(out), "--save-latents", *FAST])
    assert result.exit_code == 0, result.output
    return out / "latents"


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def one_line_error(result, *words: str) -> None:
    """The command failed with status 2 and one ``mgan: error:`` line naming ``words`` (no traceback)."""
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("mgan: error:")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    for word in words:
        assert word in errors[0], errors[0]


# -- 1. every folder any command creates under OUT goes through one checked helper ------------------
def test_make_folder_creates_real_folders_and_refuses_links(tmp_path: Path) -> None:
    root = tmp_path / "out"
    made = make_folder(root, root / "a" / "b")
    assert made.is_dir() and not made.is_symlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / "link").symlink_to(elsewhere)
    with pytest.raises(OutputError, match="symbolic link"):
        make_folder(root, root / "link" / "deeper")
    (root / "file").write_text("x")
    with pytest.raises(OutputError, match="not a folder"):
        make_folder(root, root / "file")
    (root / "a" / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(OutputError, match="symbolic link"):
        make_folder(root, root / "a" / "dangling")
    assert list(elsewhere.iterdir()) == [] and not (tmp_path / "nowhere").exists()
    with pytest.raises(ValueError):
        make_folder(root, tmp_path / "outside")


@pytest.mark.parametrize("planted", ["frames", "strips"])
def test_edit_from_latents_never_writes_through_a_link(saved_latents: Path, tmp_path: Path, planted: str) -> None:
    elsewhere = tmp_path / "x"
    elsewhere.mkdir()
    out = tmp_path / "E"
    out.mkdir()
    (out / planted).symlink_to(elsewhere)
    result = run("edit", "--from-latents", str(saved_latents), "-o", str(out), "--direction", "sefa:1", "--quiet")
    one_line_error(result, str(out / planted), "symbolic link")
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("planted", ["runs", "runs/layer1-codes2", "contributions"])
def test_analyze_never_writes_through_a_link(face: Path, tmp_path: Path, planted: str) -> None:
    elsewhere = tmp_path / "x"
    elsewhere.mkdir()
    out = tmp_path / "A"
    (out / planted).parent.mkdir(parents=True, exist_ok=True)
    (out / planted).symlink_to(elsewhere)
    result = run("analyze", str(face), "-o", str(out), "--layers", "1", "--codes", "2", "--iterations", "2",
                 "--device", "cpu", "--quiet", "--contributions", "1:2")
    one_line_error(result, str(out / planted), "symbolic link")
    assert list(elsewhere.iterdir()) == []
    assert not (out / "analysis.json").exists()  # refused before any work


def test_metrics_never_writes_thumbnails_through_a_link(face: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "x"
    elsewhere.mkdir()
    out = tmp_path / "R"
    out.mkdir()
    (out / ".mgan").symlink_to(elsewhere)
    result = run("metrics", str(face), "--metrics", "niqe", "-o", str(out / "m.json"))
    one_line_error(result, str(out / ".mgan"), "symbolic link")
    assert list(elsewhere.iterdir()) == []


def test_directions_replaces_planted_file_links(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    out = tmp_path / "dirs"
    out.mkdir()
    for name in ("sefa.npy", "sefa.json"):
        (out / name).symlink_to(victim)
    result = run("directions", "dcgan32-celeba", "--method", "sefa", "-n", "2", "--samples", "1", "-o", str(out),
                 "--overwrite")
    assert result.exit_code == 0, result.output
    assert victim.read_text() == "keep me"
    assert not (out / "sefa.npy").is_symlink() and json.loads((out / "sefa.json").read_text())["count"] == 2


# -- 2. every field of every architecture is bounded before anything is built ----------------------
def test_every_argument_of_every_architecture_has_a_bound() -> None:
    import inspect

    from mgan_cli.generators import ARCHITECTURES
    from mgan_cli.weights.formats.config_checks import CONFIG_CHECKS

    for name in ARCHITECTURES.names():
        arguments = set(inspect.signature(ARCHITECTURES.get(name)).parameters)
        assert set(CONFIG_CHECKS.get(name, {})) == arguments, name


HOSTILE_STYLEGAN3 = [{"filter_size": 10**9}, {"num_layers": 10**8}, {"resolution": 2**30}, {"z_dim": -5},
                     {"first_stopband": 1e-300}, {"margin_size": "10"}, {"use_radial_filters": 1},
                     {"lrelu_upsampling": 10**6}, {"channel_base": 10**12}]


def test_hostile_stylegan3_configs_are_refused_before_they_are_built() -> None:
    """Run in a child whose memory is bounded: without the bounds these configs take all the memory."""
    from tests.helpers import run_bounded

    code = ("from mgan_cli.errors import UnknownFormatError\n"
            "from mgan_cli.weights.formats.config_checks import build_architecture\n"
            f"for config in {HOSTILE_STYLEGAN3!r}:\n"
            "    try:\n        build_architecture('stylegan3', config, 'test')\n        print('BUILT', config)\n"
            "    except UnknownFormatError as exc:\n        print('REFUSED', exc)\n")
    status, output, _, _ = run_bounded(code, timeout=120, max_rss_mb=1500)
    refused = [line for line in output.splitlines() if line.startswith("REFUSED")]
    assert status == 0 and len(refused) == len(HOSTILE_STYLEGAN3), output
    for line, config in zip(refused, HOSTILE_STYLEGAN3, strict=True):
        assert f"config {next(iter(config))}" in line, line


def test_a_config_within_the_bounds_that_cannot_be_built_is_one_error() -> None:
    from mgan_cli.errors import UnknownFormatError
    from mgan_cli.weights.formats.config_checks import build_architecture

    with pytest.raises(UnknownFormatError, match="cannot be built"):
        build_architecture("stylegan3", {"num_layers": 2, "num_critical": 2}, "test")
    with pytest.raises(UnknownFormatError, match="cannot be built"):
        build_architecture("pggan", {"fmaps_base": 1}, "test")


def test_a_172_byte_safetensors_import_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    from safetensors.torch import save

    from tests.helpers import run_bounded

    bomb = tmp_path / "bomb.safetensors"
    bomb.write_bytes(save({}, metadata={"mgan": json.dumps({"architecture": "stylegan3",
                                                            "config": {"filter_size": 1000000000}})}))
    code = ("import sys\nfrom mgan_cli.cli import main\n"
            f"sys.argv = ['mgan', 'weights', 'import', {str(bomb)!r}, '--name', 'bomb']\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    print('EXIT', exc.code)\n")
    status, output, _, peak = run_bounded(code, timeout=120, max_rss_mb=1500)
    assert status == 0 and "EXIT 2" in output and "mgan: error:" in output and "filter_size" in output, output
    assert "Traceback" not in output and peak < 1500


# -- 3. a zip bomb costs what the file holds, not what it claims ---------------------------------------
def _deflated_torch_archive(path: Path, megabytes: int) -> Path:
    """A zip that looks like a torch archive whose ``data.pkl`` inflates to ``megabytes`` MB of zeros."""
    import zipfile

    chunk = bytes(1 << 20)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open("archive/data.pkl", "w", force_zip64=True) as member:
            for _ in range(megabytes):
                member.write(chunk)
        archive.writestr("archive/version", "3\n")
    return path


def test_a_zip_bomb_is_refused_by_weights_import_in_bounded_memory(tmp_path: Path) -> None:
    from tests.helpers import run_bounded

    bomb = _deflated_torch_archive(tmp_path / "bomb.pt", 1024)
    assert bomb.stat().st_size < 8 << 20
    code = ("import sys\nfrom mgan_cli.cli import main\n"
            f"sys.argv = ['mgan', 'weights', 'import', {str(bomb)!r}, '--name', 'bomb']\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    print('EXIT', exc.code)\n")
    status, output, _, peak = run_bounded(code, timeout=120, max_rss_mb=1500)
    assert status == 0 and "EXIT 2" in output and "compressed" in output and "Traceback" not in output, output
    assert peak < 1500


def test_a_deflated_member_is_refused_before_torch_reads_it(tmp_path: Path) -> None:
    import zipfile

    import torch

    from mgan_cli.errors import UnknownFormatError
    from mgan_cli.weights.formats.torch_files import load_torch_file

    plain = tmp_path / "plain.pt"
    torch.save({"w": torch.zeros(4)}, plain)
    assert load_torch_file(plain)["w"].shape == (4,)
    deflated = tmp_path / "deflated.pt"
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info.filename, source.read(info))
    with pytest.raises(UnknownFormatError, match="compressed"):
        load_torch_file(deflated)


# -- 4. sizes from a file or a flag are checked before anything is allocated ------------------------
def test_a_binbytes8_length_beyond_the_file_is_refused(tmp_path: Path) -> None:
    import struct

    from mgan_cli.errors import UnsafePickleError
    from mgan_cli.weights.safe_pickle import safe_load

    path = tmp_path / "b8.pkl"
    path.write_bytes(b"\x80\x04\x95" + struct.pack("<Q", 40) + b"\x8e" + struct.pack("<Q", 2**40) + bytes(20) + b".")
    with pytest.raises(UnsafePickleError, match="claims 1099511627776 bytes"):
        safe_load(path)
    result = run("weights", "import", str(path), "--name", "b8")
    one_line_error(result, str(path), "claims 1099511627776 bytes")


def test_an_npy_header_claiming_more_than_the_file_holds_is_refused(face: Path, tmp_path: Path) -> None:
    import numpy as np

    from mgan_cli.errors import ConfigurationError
    from mgan_cli.utils.npyfile import read_npy

    bomb = tmp_path / "bomb.npy"
    with open(bomb, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
        handle.write(bytes(800))
    assert bomb.stat().st_size == 928
    with pytest.raises(ConfigurationError, match="header claims"):
        read_npy(bomb)
    good = tmp_path / "good.npy"
    np.save(good, np.asfortranarray(np.arange(6.0).reshape(2, 3)))
    assert np.array_equal(read_npy(good), np.arange(6.0).reshape(2, 3))
    result = run("edit", str(face), "-o", str(tmp_path / "E"), "--direction", str(bomb), *FAST)
    one_line_error(result, str(bomb), "header claims")


def test_flags_and_preset_values_that_size_memory_are_bounded(face: Path, tmp_path: Path) -> None:
    """Each refused in one line before anything runs (in a bounded child: unbounded, they take the memory)."""
    from tests.helpers import run_bounded

    preset = tmp_path / "p.yaml"
    preset.write_text((Path(__file__).resolve().parents[1] / "presets" / "dcgan64-invert.yaml").read_text())
    import yaml

    document = yaml.safe_load(preset.read_text())
    document.setdefault("loss", {})["perceptual_resolution"] = 100000
    preset.write_text(yaml.safe_dump(document))
    out = str(tmp_path / "out")
    cases = [["invert", str(face), "-o", out, "--codes", "10000000"],
             ["invert", str(face), "-o", out, "--iterations", "1000000000000"],
             ["invert", str(face), "-o", out, "--lr", "1e308"],
             ["invert", str(face), "-o", out, "--preset", str(preset)],
             ["analyze", str(face), "-o", out, "--codes", "100000000"],
             ["analyze", str(face), "-o", out, "--codes", "2", "--contributions", "1:100000000"]]
    code = ("from click.testing import CliRunner\nfrom mgan_cli.cli import main\n"
            f"for args in {cases!r}:\n"
            "    result = CliRunner().invoke(main, args + ['--quiet'])\n"
            "    print('CASE', result.exit_code, repr(result.output.strip().splitlines()[-1:]), "
            "result.exception is None or isinstance(result.exception, SystemExit))\n")
    status, output, _, _ = run_bounded(code, timeout=300, max_rss_mb=2500)
    lines = [line for line in output.splitlines() if line.startswith("CASE")]
    assert status == 0 and len(lines) == len(cases), output
    for line, words in zip(lines, ["10000000", "1000000000000", "1e308", "perceptual_resolution", "100000000",
                                   "100000000"], strict=True):
        assert line.startswith("CASE 2 ") and line.endswith(" True") and words in line and "allowed" in line, line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["invert", "metrics", "weights-import"])
def test_a_fifo_named_as_an_input_is_refused_not_waited_on(tmp_path: Path, command: str) -> None:
    import os
    import subprocess
    import sys

    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    args = {"invert": ["invert", str(fifo), "-o", str(tmp_path / "out"), *FAST],
            "metrics": ["metrics", str(fifo)],
            "weights-import": ["weights", "import", str(fifo), "--name", "pipe"]}[command]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    try:
        done = subprocess.run([sys.executable, "-m", "mgan_cli", *args], capture_output=True, text=True, timeout=90,
                              env=env)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"mgan {command} waited on a FIFO") from None
    assert done.returncode != 0 and "FIFO" in done.stderr and "Traceback" not in done.stderr, done.stderr


# -- 5. no CSV cell is a live formula ---------------------------------------------------------------
FORMULA_NAMES = ['=HYPERLINK("http:evil.example","x").png', "+cmd.png", "-2+3.png", "@SUM(A1).png", "\tx.png"]


def _cells(path: Path) -> list[str]:
    import csv

    with open(path, newline="") as handle:
        return [cell for row in csv.reader(handle) for cell in row]


def test_report_csv_and_metrics_csv_hold_no_live_formula(face: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # relative names: the CSV cells start with the hostile characters
    for name in FORMULA_NAMES:
        Path(name).write_bytes(face.read_bytes())
    result = run("invert", "-o", "out", *FAST, "--", *FORMULA_NAMES)
    assert result.exit_code == 0, result.output
    measured = run("metrics", "--metrics", "niqe", "-o", "m.csv", "--", *FORMULA_NAMES)
    assert measured.exit_code == 0, measured.output
    for path in (Path("out") / "report.csv", Path("m.csv")):
        cells = _cells(path)
        for name in FORMULA_NAMES:  # each hostile name is there, neutralised with a leading '
            assert any(cell.startswith("'" + name.removesuffix(".png")) for cell in cells), (path, name, cells)
        live = [cell for cell in cells if cell.startswith(("=", "+", "@", "\t", "\r"))
                or (cell.startswith("-") and cell != "-inf" and not cell[1:].replace(".", "", 1).isdigit())]
        assert live == [], (path, live)


# -- 9, 10. no silent black frames, no two strengths in one file -------------------------------------
@pytest.mark.parametrize("text", ["nan", "inf,0", "-inf", "1e400", "0.1,0.1000001", "1,1"])
def test_strengths_that_cannot_be_rendered_or_named_apart_are_refused(text: str) -> None:
    from mgan_cli.edit.frames import parse_strengths
    from mgan_cli.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="--strengths"):
        parse_strengths(text)
    assert parse_strengths("0.1,0.11,-0.1") == (0.1, 0.11, -0.1)


def test_a_non_finite_frame_fails_its_image(face: Path, tmp_path: Path) -> None:
    out = tmp_path / "E"
    refused = run("edit", str(face), "-o", str(out), "--direction", "sefa:0", "--strengths", "nan,0", *FAST)
    one_line_error(refused, "--strengths")
    result = run("edit", str(face), "-o", str(out), "--direction", "sefa:0", "--strengths", "0,1e308", *FAST)
    assert result.exit_code != 0, result.output
    (row,) = json.loads((out / "report.json").read_text())["images"]
    assert row["status"] == "failed" and "NaN or infinite" in row["error"], row
    assert not (out / "frames").exists() or list((out / "frames").iterdir()) == []


# -- 13. a tampered latents file fails alone ----------------------------------------------------------
def test_tampered_latents_fail_alone_and_the_rest_is_rendered(saved_latents: Path, tmp_path: Path) -> None:
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    (good,) = saved_latents.glob("*.safetensors")
    tensors = load_file(good)
    with safe_open(str(good), framework="pt") as handle:
        metadata = handle.metadata()
    folder = tmp_path / "latents"
    folder.mkdir()
    (folder / "good.safetensors").write_bytes(good.read_bytes())
    n, channels = tensors["alphas"].shape
    variants = {
        "layer": ({}, {"layer": "abc"}),
        "float64": ({"codes": tensors["codes"].double()}, {}),
        "alphas": ({"alphas": torch.ones(2, 512)}, {}),
        "empty": ({"codes": torch.zeros(0, *tensors["codes"].shape[1:]), "alphas": torch.zeros(0, channels)}, {}),
        "nan": ({"codes": torch.full_like(tensors["codes"], float("nan"))}, {}),
        "upper": ({"upper_latent": torch.zeros(3, 7)}, {}),
        "tuned": ({"tuned/not.a.parameter": torch.zeros(2)}, {}),
        "space": ({}, {"space": "q"}),
    }
    for stem, (changed, meta) in variants.items():
        save_file({**tensors, **changed}, folder / f"{stem}.safetensors", metadata={**metadata, **meta})
    out = tmp_path / "E"
    result = run("edit", "--from-latents", str(folder), "-o", str(out), "--direction", "sefa:1", "--strengths", "0,1",
                 "--quiet")
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    rows = {Path(row["input"]).name.removesuffix(".safetensors"): row
            for row in json.loads((out / "report.json").read_text())["images"]}
    assert rows["good"]["status"] == "ok" and (out / "strips" / "good.png").is_file()
    assert n >= 1
    for stem in variants:
        assert rows[stem]["status"] == "failed" and str(folder / f"{stem}.safetensors") in rows[stem]["error"], \
            rows[stem]


# -- 4. NIQE in bounded memory, with the whole image's value -------------------------------------------
def _niqe_whole_image(image, window):
    """NIQE's 36 block features computed on the whole image at once (the unbounded reference)."""
    import torch
    import torch.nn.functional as F

    from mgan_cli.metrics._common import rgb_to_y, to_float64
    from mgan_cli.metrics.imresize import imresize
    from mgan_cli.metrics.naturalness import _block_features

    def normalise(luma):
        pad = window.shape[-1] // 2
        stack = torch.stack([luma, luma * luma], dim=1).reshape(-1, 1, *luma.shape[-2:])
        filtered = F.conv2d(F.pad(stack, (pad,) * 4, mode="replicate"), window.flip(0, 1)[None, None])
        filtered = filtered.reshape(luma.shape[0], 2, *luma.shape[-2:]).float()
        mu, sigma = filtered[:, 0], torch.sqrt((filtered[:, 1] - filtered[:, 0] ** 2).abs())
        return ((luma.float() - mu) / (sigma + 1)).double()

    luma = rgb_to_y(to_float64(image)).round()[:, 0]
    full = _block_features(normalise(luma), 96)
    half = _block_features(normalise(imresize(luma, 0.5)), 48)
    return torch.cat([full, half], dim=2)[0]


def test_niqe_band_by_band_has_the_whole_images_features(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from mgan_cli.metrics import naturalness

    rng = torch.Generator().manual_seed(3)
    image = torch.randint(0, 256, (1, 3, 5 * 96, 3 * 96), generator=rng, dtype=torch.uint8)
    image = (image.double() * 0.3 + torch.linspace(0, 170, 3 * 96).double()).round().to(torch.uint8)
    window = naturalness.load_pristine().window
    monkeypatch.setattr(naturalness, "BAND_BLOCKS", 1)
    banded = naturalness._image_features(image, window)
    whole = _niqe_whole_image(image, window)
    assert banded.shape == whole.shape == (15, 36)
    assert torch.allclose(banded, whole, rtol=1e-9, atol=1e-12, equal_nan=True)


def test_niqe_of_a_large_image_stays_in_bounded_memory(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    from tests.helpers import run_bounded

    rng = np.random.default_rng(0)
    tile = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    path = tmp_path / "big.png"
    Image.fromarray(np.tile(tile, (21, 21, 1))[:2000, :2000]).save(path)
    code = ("import sys\nfrom mgan_cli.cli import main\n"
            f"sys.argv = ['mgan', 'metrics', {str(path)!r}, '--metrics', 'niqe', '--json']\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    print('EXIT', exc.code)\n")
    status, output, _, peak = run_bounded(code, timeout=300, max_rss_mb=1700)
    assert status == 0 and '"niqe":' in output and "Traceback" not in output, output
    assert peak < 1700


# -- 4. paste-back works within the face's footprint --------------------------------------------------
def _paste_back_whole_photo(photo, crop, transform):
    """The photo-sized blend (the unbounded reference)."""
    import numpy as np

    from mgan_cli.faces.alignment import warp_to_photo
    from mgan_cli.faces.paste import feather_mask

    height, width = photo.shape[:2]
    mask = np.clip(warp_to_photo(feather_mask(transform.size), transform, (width, height))[:, :, 0], 0.0, 1.0)
    restored = warp_to_photo(crop.astype(np.float32), transform, (width, height))
    blended = photo.astype(np.float32) * (1.0 - mask[:, :, None]) + restored * mask[:, :, None]
    return np.where(mask[:, :, None] > 0, np.clip(np.round(blended), 0, 255).astype(np.uint8), photo)


@pytest.mark.parametrize(("scale", "angle", "x", "y"), [(0.8, 20.0, -100.0, -60.0), (2.5, -35.0, 40.0, 90.0),
                                                         (0.5, 0.0, 10.0, 5.0)])
def test_paste_back_in_the_footprint_equals_the_whole_photo_blend(scale, angle, x, y) -> None:
    import math

    import numpy as np

    from mgan_cli.faces.alignment import FaceTransform
    from mgan_cli.faces.paste import paste_back

    rng = np.random.default_rng(5)
    photo = rng.integers(0, 256, (300, 400, 3)).astype(np.uint8)
    crop = rng.integers(0, 256, (128, 128, 3)).astype(np.uint8)
    c, s = scale * math.cos(math.radians(angle)), scale * math.sin(math.radians(angle))
    transform = FaceTransform(np.array([[c, -s, x], [s, c, y]]), 128)
    composite, _ = paste_back(photo, crop, transform)
    difference = np.abs(composite.astype(int) - _paste_back_whole_photo(photo, crop, transform).astype(int))
    assert difference.max() <= 1 and (difference > 0).mean() < 1e-3


def test_paste_back_into_a_large_photo_stays_in_bounded_memory() -> None:
    from tests.helpers import run_bounded

    code = ("import numpy as np\nfrom mgan_cli.faces.alignment import FaceTransform\n"
            "from mgan_cli.faces.paste import paste_into\n"
            "canvas = np.zeros((9000, 9000, 3), np.uint8)\ncrop = np.full((256, 256, 3), 200, np.uint8)\n"
            "paste_into(canvas, crop, FaceTransform(np.array([[0.25, 0, -1000.0], [0, 0.25, -1000.0]]), 256))\n"
            "print('CENTRE', canvas[4512, 4512].tolist())\n")
    status, output, _, peak = run_bounded(code, timeout=120, max_rss_mb=1500)
    assert status == 0 and "CENTRE [200, 200, 200]" in output, output
    assert peak < 1500


# -- 14. a run store that cannot be written is one clear error ---------------------------------------
def test_a_read_only_run_store_is_an_output_error_not_a_traceback(tmp_path: Path) -> None:
    import sqlite3

    from mgan_cli.run.store import RunStore

    store = RunStore(tmp_path / "out")
    store._db.close()  # reopened read-only, as an immutable (chattr +i) store behaves
    store._db = sqlite3.connect(f"file:{store.path}?mode=ro", uri=True, isolation_level=None,
                                check_same_thread=False)
    with pytest.raises(OutputError, match="cannot write the run store"):
        store.begin_run({"task": "invert"})
    assert store.runs() == {}
    store.close()


def test_an_output_whose_latents_were_deleted_is_redone(face: Path, tmp_path: Path) -> None:
    out = tmp_path / "inv"
    args = ["invert", str(face), "-o", str(out), "--save-latents", "--json", *FAST]
    assert run(*args).exit_code == 0
    latents_file = out / "latents" / f"{face.stem}.safetensors"
    assert latents_file.is_file()
    assert json.loads(run(*args).stdout.splitlines()[0])["status"] == "skipped"
    latents_file.unlink()
    again = run(*args)
    assert again.exit_code == 0 and json.loads(again.stdout.splitlines()[0])["status"] == "ok", again.output
    assert latents_file.is_file()


def _edit_rows(out: Path) -> dict[str, dict]:
    """report.json's rows of OUT by the file name of their input."""
    return {Path(row["input"]).name: row for row in json.loads((out / "report.json").read_text())["images"]}


def test_edit_from_latents_records_skips_and_clashes_like_every_task(saved_latents: Path, tmp_path: Path) -> None:
    import shutil

    inv = tmp_path / "inv"  # an invert run's OUT, with its run store and report
    shutil.copytree(saved_latents.parent, inv)
    (latents_file,) = (inv / "latents").glob("*.safetensors")
    invert_row = _edit_rows(inv)["a.png"]
    args = ["edit", "--from-latents", str(inv / "latents"), "-o", str(inv), "--direction", "sefa:1", "--quiet"]
    first = run(*args, "--strengths", "0,1")
    assert first.exit_code == 0, first.output
    rows = _edit_rows(inv)
    assert rows["a.png"]["status"] == "ok" and rows["a.png"]["output"] == invert_row["output"]
    assert (inv / "a.png").is_file() and latents_file.is_file()
    edited = rows[latents_file.name]
    assert edited["status"] == "ok" and Path(edited["strip"]).is_file()
    assert [frame["strength"] for frame in edited["frames"]] == [0.0, 1.0]
    assert len(json.loads((inv / "report.json").read_text())["runs"]) == 2
    strip_bytes = Path(edited["strip"]).read_bytes()

    again = run(*args, "--strengths", "0,1")  # the same command: every file skipped
    assert again.exit_code == 0 and "warning" not in again.output, again.output
    rows = _edit_rows(inv)
    assert rows[latents_file.name]["status"] == "skipped" and rows["a.png"]["status"] == "ok"
    assert Path(edited["strip"]).read_bytes() == strip_bytes

    other = run(*args, "--strengths", "0,2")  # other settings: a clash, one line per file, nothing replaced
    assert other.exit_code == 2, other.output
    (line,) = [line for line in other.stderr.splitlines() if line.startswith("mgan: warning:")]
    assert str(latents_file) in line and "other settings" in line and "--overwrite" in line, line
    assert not (inv / "frames" / "a_2.png").exists() and Path(edited["strip"]).read_bytes() == strip_bytes
    assert _edit_rows(inv)[latents_file.name]["status"] in ("ok", "skipped")

    replaced = run(*args, "--strengths", "0,2", "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    rows = _edit_rows(inv)
    assert [frame["strength"] for frame in rows[latents_file.name]["frames"]] == [0.0, 2.0]
    assert sorted(p.name for p in (inv / "frames").iterdir()) == ["a_0.png", "a_2.png"]  # a_1: the old record's
    assert rows["a.png"]["status"] == "ok" and (inv / "a.png").is_file()


def test_an_edit_overwritten_with_other_strengths_keeps_no_stale_frames(face: Path, tmp_path: Path) -> None:
    out = tmp_path / "E"
    args = ["edit", str(face), "-o", str(out), "--direction", "sefa:0", *FAST]
    assert run(*args, "--strengths", "0,1").exit_code == 0
    assert sorted(p.name for p in (out / "frames").iterdir()) == ["a_0.png", "a_1.png"]
    result = run(*args, "--strengths", "0,2", "--overwrite")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (out / "frames").iterdir()) == ["a_0.png", "a_2.png"]
    (row,) = json.loads((out / "report.json").read_text())["images"]
    assert [Path(frame["path"]).name for frame in row["frames"]] == ["a_0.png", "a_2.png"]


# -- 8. each latents file is edited with its own generator's direction ---------------------------------
def test_edit_from_latents_of_two_generators_uses_each_ones_direction(saved_latents: Path, face: Path,
                                                                       tmp_path: Path) -> None:
    import numpy as np
    import torch
    from PIL import Image

    from mgan_cli.edit import boundaries, latents
    from mgan_cli.edit.frames import render_frames
    from mgan_cli.utils.imageio import to_uint8
    from mgan_cli.weights.loading import load_generator

    small = tmp_path / "small"
    small.mkdir()
    Image.open(face).resize((32, 32), Image.Resampling.BICUBIC).save(small / "b.png")
    inverted = run("invert", str(small / "b.png"), "-o", str(tmp_path / "inv32"), "--generator", "dcgan32-celeba",
                   "--save-latents", *FAST)
    assert inverted.exit_code == 0, inverted.output
    folder = tmp_path / "both"
    folder.mkdir()
    for source in [*saved_latents.glob("*.safetensors"), *(tmp_path / "inv32" / "latents").glob("*.safetensors")]:
        (folder / source.name).write_bytes(source.read_bytes())
    out = tmp_path / "E"
    result = run("edit", "--from-latents", str(folder), "-o", str(out), "--direction", "sefa:1", "--strengths", "0,3",
                 "--quiet", "--device", "cpu")
    assert result.exit_code == 0, result.output
    rows = json.loads((out / "report.json").read_text())["images"]
    assert {row["generator"] for row in rows} == {"dcgan64-digiface", "dcgan32-celeba"}
    for row in rows:
        saved = latents.load(Path(row["input"]))
        model = load_generator(saved.generator)
        direction = boundaries.resolve("sefa:1", saved.generator, "z", lambda model=model: model)
        with torch.no_grad():
            frames = to_uint8(render_frames(model, saved.inversion, direction, (0.0, 3.0))).numpy()
        written = np.asarray(Image.open(row["frames"][1]["path"])).transpose(2, 0, 1)
        assert np.abs(written.astype(int) - frames[1].astype(int)).max() <= 1, saved.generator


# -- 11. face outputs are planned with every other output name of the run -----------------------------
@pytest.fixture(scope="module")
def face_models() -> None:
    from tests.helpers import link_face_models

    link_face_models()


def _face_photo(shared_dir: Path, name: str, path: Path) -> Path:
    from PIL import Image

    source = shared_dir / "data" / "mganprior_examples" / "face" / name
    Image.open(source).convert("RGB").resize((256, 256), Image.Resampling.LANCZOS).save(path)
    return path


def test_face_outputs_never_overwrite_another_inputs_output(face_models: None, shared_dir: Path,
                                                             tmp_path: Path) -> None:
    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir()
    x = _face_photo(shared_dir, "10_01.png", photos / "x.png")  # one face: OUT/x_face0.png, composite OUT/x.png
    other = _face_photo(shared_dir, "15.png", photos / "x_face0.png")  # its composite would be OUT/x_face0.png
    out = tmp_path / "out"
    result = run("invert", str(x), str(other), "-o", str(out), "--align", "faces", "--paste-back", "--json", *FAST)
    assert result.exit_code == 1, result.output  # one photo refused, the other restored
    rows = {row["input"]: row for row in json.loads((out / "report.json").read_text())["images"]}
    assert set(rows) == {str(x), str(other)}
    assert rows[str(x)]["status"] == "ok" and rows[str(x)]["output"] == str(out / "x_face0.png")
    assert rows[str(x)]["face"]["composite"] == str(out / "x.png")
    refused = rows[str(other)]
    assert refused["status"] == "failed" and str(other) in refused["error"] and str(x) in refused["error"]
    assert Image.open(out / "x_face0.png").size == (64, 64)  # still x's restored face, not a 256² composite
    assert Image.open(out / "x.png").size == (256, 256) and not (out / "x_face0_face0.png").exists()
    said = [result.stdout, result.stderr, *(json.dumps(row) for row in rows.values())]
    assert not any(".mgan/faces" in text or ".mgan\\faces" in text for text in said), said


# -- 14. a task run and an analysis share OUT; a report mgan did not write is never replaced -----------------
ANALYZE_FAST = ["--layers", "1", "--codes", "2", "--iterations", "2", "--device", "cpu", "--quiet"]


def test_a_task_run_and_an_analysis_keep_both_pages_in_one_out(face: Path, tmp_path: Path) -> None:
    out = tmp_path / "both"
    assert run("invert", str(face), "-o", str(out), *FAST).exit_code == 0
    report_page = (out / "index.html").read_text()
    assert run("analyze", str(face), "-o", str(out), *ANALYZE_FAST).exit_code == 0
    analysis_page = (out / "analysis.html").read_text()
    assert "mgan analyze" in analysis_page and 'href="index.html"' in analysis_page
    index = (out / "index.html").read_text()  # still the run's report, now linking the analysis
    assert "mgan analyze" not in index and f"mgan invert: {out.name}" in index and 'href="analysis.html"' in index
    assert report_page.count("<tr class=") == index.count("<tr class=") == 1
    again = run("invert", str(face), "-o", str(out), "--overwrite", *FAST)  # a task run after the analysis
    assert again.exit_code == 0, again.output
    assert (out / "analysis.html").read_text() == analysis_page
    assert 'href="analysis.html"' in (out / "index.html").read_text()


@pytest.mark.parametrize("name", ["report.json", "report.csv", "index.html"])
def test_a_foreign_report_in_out_is_never_replaced(face: Path, tmp_path: Path, name: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / name).write_text("my own notes\n")
    result = run("invert", str(face), "-o", str(out), *FAST)
    one_line_error(result, str(out / name), "no run store")
    assert (out / name).read_text() == "my own notes\n" and sorted(p.name for p in out.iterdir()) == [name]

    mine = tmp_path / "mine"  # an OUT of mgan's, whose view the user replaced by a file of their own
    assert run("invert", str(face), "-o", str(mine), *FAST).exit_code == 0
    (mine / name).write_text("my own notes\n")
    result = run("invert", str(face), "-o", str(mine), "--overwrite", *FAST)
    one_line_error(result, str(mine / name), "not a run report mgan wrote")
    assert (mine / name).read_text() == "my own notes\n"


def test_analyze_and_metrics_never_replace_a_report_they_did_not_write(face: Path, tmp_path: Path) -> None:
    out = tmp_path / "A"
    out.mkdir()
    (out / "analysis.html").write_text("<p>mine</p>")
    result = run("analyze", str(face), "-o", str(out), *ANALYZE_FAST)
    one_line_error(result, str(out / "analysis.html"))
    assert (out / "analysis.html").read_text() == "<p>mine</p>" and not (out / "runs").exists()

    inv = tmp_path / "inv"  # a run's OUT: metrics -o must not take over its report or its page
    assert run("invert", str(face), "-o", str(inv), *FAST).exit_code == 0
    views = {name: (inv / name).read_text() for name in ("report.json", "index.html")}
    for target in ("report.json", "index.json"):
        result = run("metrics", str(face), "--metrics", "niqe", "-o", str(inv / target))
        one_line_error(result, "not a metrics report mgan wrote")
    assert {name: (inv / name).read_text() for name in views} == views
    scores = tmp_path / "scores.json"  # its own report is rewritten as before
    for _ in range(2):
        assert run("metrics", str(face), "--metrics", "niqe", "-o", str(scores)).exit_code == 0
    assert json.loads(scores.read_text())["metrics"] == ["niqe"]

# -- 6. two runs with other settings into one OUT: the second to commit an image gets the clash -------------
def test_a_commit_over_an_output_recorded_since_planning_with_other_settings_is_a_clash(tmp_path: Path) -> None:
    from mgan_cli.run.records import ImageRecord
    from mgan_cli.run.store import Claim, Identity, OutputClashError, RunStore
    from mgan_cli.utils.atomic import stage

    out = tmp_path / "out"
    first, second = RunStore(out), RunStore(out)  # two processes of one host and shard share the store file
    runs = first.begin_run({"codes": 2}), second.begin_run({"codes": 3})
    target = out / "a.png"
    record = ImageRecord(input=str(tmp_path / "a.png"), output=str(target), status="ok")
    planned = Claim(None)  # both planned when no run had recorded a.png
    first.put(record, "a.png", "/in/a.png", Identity("in", "codes2"), runs[0], stage(target, b"first"), planned)
    staged = stage(target, b"second")
    with pytest.raises(OutputClashError) as clash:
        second.put(record, "a.png", "/in/a.png", Identity("in", "codes3"), runs[1], staged, planned)
    assert clash.value.owner.run == first.run_name(runs[0])
    assert target.read_bytes() == b"first" and not staged.temporary.exists()
    owner = second.owner("a.png")
    assert owner is not None and owner.identity == Identity("in", "codes2")
    # the same settings, or a claim made against the owner that is there now (--overwrite, a redo): it commits
    second.put(record, "a.png", "/in/a.png", Identity("in", "codes2"), runs[1], stage(target, b"same"), planned)
    assert target.read_bytes() == b"same"
    now = Claim.of(second.owner("a.png"))
    second.put(record, "a.png", "/in/a.png", Identity("in", "codes3"), runs[1], stage(target, b"over"), now)
    assert target.read_bytes() == b"over" and first.owner("a.png").identity == Identity("in", "codes3")
    first.close()
    second.close()


def test_two_concurrent_runs_with_other_settings_never_both_report_an_image_ok(shared_dir: Path,
                                                                                 tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    from tests.helpers import celeba_photos, psnr_uint8
    from tests.test_run_trust import mgan_process

    folder = tmp_path / "eight"
    folder.mkdir()
    photos = celeba_photos(shared_dir, folder, 8)
    out = tmp_path / "C"
    common = ["invert", str(folder), "-o", str(out), "--json", "--batch-size", "1", "--iterations", "20",
              "--perceptual-weight", "0", "--device", "cpu", "--quiet"]
    processes = [mgan_process(*common, "--codes", codes) for codes in ("2", "3")]
    results = [process.communicate(timeout=600) for process in processes]
    sides: list[dict[str, dict]] = []
    for process, (stdout, stderr) in zip(processes, results, strict=True):
        assert process.returncode in (0, 1, 2) and "Traceback" not in stderr, stderr[-2000:]
        sides.append({Path(line["input"]).name: line for line in map(json.loads, stdout.splitlines())})
    report = json.loads((out / "report.json").read_text())
    runs = {run_["id"]: run_ for run_ in report["runs"]}
    rows = {Path(row["input"]).name: row for row in report["images"] if row["status"] == "ok"}
    for photo in photos:
        lines = [side[photo.name] for side in sides]
        assert sorted(line["status"] for line in lines) == ["failed", "ok"], lines
        ((winner, line),) = [(codes, line) for codes, line in zip((2, 3), lines, strict=True) if line["status"] == "ok"]
        (loser,) = [line for line in lines if line["status"] == "failed"]
        assert "already exists and it was made with other settings" in loser["error"], loser
        row = rows[photo.name]  # the store's row, the file and the side that reported ok agree
        assert runs[row["run"]]["preset"]["inversion"]["codes"] == winner
        written = np.asarray(Image.open(out / photo.name))
        assert line["psnr"] == row["psnr"] == pytest.approx(psnr_uint8(written, np.asarray(Image.open(photo))),
                                                            abs=1e-6)


# -- 12. an image and its record: one never survives without the other ------------------------------------
class _CommitFails:
    """A run store connection whose ``COMMIT`` fails as on a full disk (everything else is the real one)."""

    def __init__(self, db) -> None:
        self.db = db

    def execute(self, sql: str, *parameters):
        import sqlite3

        if sql == "COMMIT":
            raise sqlite3.OperationalError("database or disk is full")
        return self.db.execute(sql, *parameters)

    def close(self) -> None:
        self.db.close()


def test_a_record_that_cannot_be_committed_leaves_the_file_that_was_there(tmp_path: Path) -> None:
    from mgan_cli.run.records import ImageRecord
    from mgan_cli.run.store import Identity, RunStore
    from mgan_cli.utils.atomic import stage

    out = tmp_path / "out"
    store = RunStore(out)
    run_id = store.begin_run({})
    record = ImageRecord(input="/in/a.png", output=str(out / "a.png"), status="ok")
    store.put(record, "a.png", "/in/a.png", Identity("in", "old"), run_id, stage(out / "a.png", b"old"))
    store._db = _CommitFails(store._db)
    for name, before in (("a.png", b"old"), ("b.png", None)):  # replacing a recorded file, and a new one
        with pytest.raises(OutputError, match="disk is full"):
            store.put(record, name, "/in/a.png", Identity("in", "new"), run_id, stage(out / name, b"new"))
        assert (out / name).read_bytes() == before if before else not (out / name).exists()
    assert sorted(p.name for p in out.iterdir()) == [".mgan", "a.png"]  # nothing staged or set aside is left
    store._db = store._db.db
    owner = store.owner("a.png")
    assert owner is not None and owner.identity == Identity("in", "old") and store.owner("b.png") is None
    store.close()


@pytest.fixture()
def roomy_tmpfs(tmp_path: Path):
    import subprocess

    from tests.test_run_trust import _mount_tmpfs

    target = tmp_path / "mnt"
    _mount_tmpfs(target, "size=4m")
    yield target
    subprocess.run(["umount", "--lazy", str(target)], check=False)


def test_a_disk_that_fills_while_the_record_is_committed_leaves_no_png_and_the_rerun_resumes(
        face: Path, roomy_tmpfs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mgan_cli.utils import atomic

    # a long input path: the image's row needs new pages of the store, which the full disk refuses at COMMIT
    deep = tmp_path.joinpath(*["d" * 200] * 12)
    deep.mkdir(parents=True)
    photo = deep / ("f" * 200 + ".png")
    photo.write_bytes(face.read_bytes())
    out = roomy_tmpfs / "out"
    filler = roomy_tmpfs / "filler"
    rename = atomic.StagedFile.commit

    def rename_then_fill_the_disk(self: atomic.StagedFile) -> None:
        rename(self)
        if self.path.suffix == ".png" and self.path.parent == out and not filler.exists():
            with contextlib.suppress(OSError), filler.open("wb", buffering=0) as handle:
                while True:
                    handle.write(b"\0" * 4096)

    monkeypatch.setattr(atomic.StagedFile, "commit", rename_then_fill_the_disk)
    args = ["invert", str(photo), "-o", str(out), "--json", *FAST]
    full = run(*args)
    assert filler.exists()
    one_line_error(full, str(out), "full")
    assert not (out / photo.name).exists()  # no PNG without its record
    assert [p.name for p in out.iterdir() if p.name.startswith(".mgan-")] == []
    monkeypatch.undo()
    filler.unlink()
    resumed = run(*args)
    assert resumed.exit_code == 0, resumed.output
    (line,) = [json.loads(text) for text in resumed.stdout.splitlines()]
    assert line["status"] == "ok" and (out / photo.name).is_file(), line
    assert "no run recorded" not in resumed.output
