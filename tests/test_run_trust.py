"""Trustworthy runs (issue 8): nothing outside OUT is written, a result belongs to its input, nothing
recorded is lost (also across processes), a diverged optimisation is a failure, exit statuses and
one-line errors, and --recursive never takes OUT's own files."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from mgan_cli.cli import main
from tests.helpers import celeba_photos, psnr_uint8

FAST = ["--iterations", "2", "--codes", "2", "--device", "cpu"]
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def photos(shared_dir, tmp_path_factory) -> list[Path]:
    """Four real 64x64 faces as PNG files (in a folder of their own)."""
    return celeba_photos(shared_dir, tmp_path_factory.mktemp("photos"), 4)


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def lines(result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def report_rows(out: Path) -> list[dict]:
    return json.loads((out / "report.json").read_text())["images"]


def mgan_process(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "mgan_cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **kwargs)


# -- 1. nothing outside OUT is ever written ----------------------------------------------------------
def test_planted_links_are_replaced_never_followed(photos, tmp_path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    name = photos[0].stem
    for planted in (f".{name}.png.tmp", ".report.json.tmp", ".report.csv.tmp", "report.json", "report.csv",
                    f"{name}.png"):
        (out / planted).symlink_to(victim)
    refused = run("invert", str(photos[0]), "-o", str(out), "--json", *FAST)  # report files mgan did not write
    assert refused.exit_code == 2 and "mgan did not write it" in refused.output and not (out / ".mgan").exists()
    (out / "report.json").unlink()
    (out / "report.csv").unlink()
    first = run("invert", str(photos[0]), "-o", str(out), "--json", *FAST)
    assert first.exit_code == 2 and "already exists" in lines(first)[0]["error"]  # a link no run recorded
    result = run("invert", str(photos[0]), "-o", str(out), "--json", "--overwrite", *FAST)
    assert result.exit_code == 0, result.output
    assert victim.read_text() == "keep me"
    for final in (f"{name}.png", "report.json", "report.csv"):
        assert not (out / final).is_symlink() and (out / final).is_file()
    assert Image.open(out / f"{name}.png").size == (64, 64)
    assert not [p for p in out.iterdir() if p.name.startswith(".mgan-")]  # no temporary file left


def test_a_planted_store_link_is_refused(photos, tmp_path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / ".mgan").symlink_to(elsewhere)
    result = CliRunner().invoke(main, ["invert", str(photos[0]), "-o", str(out), *FAST])
    assert result.exit_code == 2
    assert result.stderr.startswith("mgan: error:") and "symbolic link" in result.stderr
    assert list(elsewhere.iterdir()) == []


def test_a_planted_folder_link_is_refused(photos, tmp_path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    (out / ".mgan").mkdir(parents=True)
    (out / ".mgan" / "thumbs").symlink_to(elsewhere)
    result = CliRunner().invoke(main, ["invert", str(photos[0]), "-o", str(out), *FAST])
    assert result.exit_code == 2 and "link to a folder" in result.stderr
    assert list(elsewhere.iterdir()) == []


def test_names_of_250_bytes_work(photos, tmp_path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    long = folder / ("f" * 251 + ".png")
    long.write_bytes(photos[0].read_bytes())
    result = run("invert", str(long), "-o", str(tmp_path / "out"), "--json", *FAST)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / long.name).is_file()


# -- 2. a result belongs to its input ----------------------------------------------------------------
def test_same_name_other_content_is_a_clash_then_redone_with_its_own_results(photos, tmp_path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "face.png").write_bytes(photos[0].read_bytes())
    (b / "face.png").write_bytes(photos[1].read_bytes())
    out = tmp_path / "out"
    assert run("invert", str(a / "face.png"), "-o", str(out), *FAST).exit_code == 0
    made_from_a = (out / "face.png").read_bytes()
    clash = run("invert", str(b / "face.png"), "-o", str(out), "--json", *FAST)
    (line,) = lines(clash)
    assert clash.exit_code == 2 and line["status"] == "failed" and line["psnr"] is None
    assert "made from another input" in line["error"] and "--overwrite" in line["error"]
    assert (out / "face.png").read_bytes() == made_from_a
    redone = run("invert", str(b / "face.png"), "-o", str(out), "--json", "--overwrite", *FAST)
    (line,) = lines(redone)
    assert line["status"] == "ok"
    restored = np.asarray(Image.open(out / "face.png"))
    assert line["psnr"] == pytest.approx(psnr_uint8(restored, np.asarray(Image.open(b / "face.png"))), abs=1e-6)
    again = run("invert", str(b / "face.png"), "-o", str(out), "--json", *FAST)
    (skipped,) = lines(again)
    assert skipped["status"] == "skipped" and skipped["psnr"] == line["psnr"]  # its own earlier result
    rows = report_rows(out)
    assert [Path(r["input"]).parent.name for r in rows if r["status"] in ("ok", "skipped")] == ["b"]


def test_other_settings_are_a_clash_and_each_row_names_what_made_it(photos, tmp_path) -> None:
    out = tmp_path / "out"
    assert run("invert", str(photos[0]), "-o", str(out), *FAST).exit_code == 0
    clash = run("invert", str(photos[0]), "-o", str(out), "--json", "--seed", "5", *FAST)
    assert clash.exit_code == 2 and "other settings" in lines(clash)[0]["error"]
    assert run("invert", str(photos[1]), "-o", str(out), "--seed", "5", *FAST).exit_code == 0
    report = json.loads((out / "report.json").read_text())
    runs = {run_["id"]: run_ for run_ in report["runs"]}
    by_name = {Path(r["input"]).name: r for r in report["images"] if r["status"] != "failed"}
    assert runs[by_name[photos[0].name]["run"]]["seed"] == 0  # made by the first run, with seed 0
    assert runs[by_name[photos[1].name]["run"]]["seed"] == 5
    assert "vgg16-imagenet" in runs[by_name[photos[0].name]["run"]]["weights_sha256"]
    assert run("invert", str(photos[2]), "-o", str(out), "--perceptual-weight", "0", *FAST).exit_code == 0
    last = json.loads((out / "report.json").read_text())
    assert set(last["weights_sha256"]) == {"dcgan64-digiface"}  # VGG16 is not used when λ = 0


# -- 3. nothing already recorded is lost ---------------------------------------------------------------
def test_fewer_inputs_and_another_spelling_of_out_keep_every_row(photos, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert run("invert", str(photos[0]), str(photos[1]), "-o", "out", *FAST).exit_code == 0
    assert run("invert", str(photos[2]), "-o", str(tmp_path / "out"), *FAST).exit_code == 0
    rows = report_rows(tmp_path / "out")
    assert sorted(Path(r["input"]).name for r in rows) == sorted(p.name for p in photos[:3])
    assert all(r["status"] == "ok" for r in rows)
    again = run("invert", str(photos[0]), "-o", "./out/../out", "--json", *FAST)
    assert [line["status"] for line in lines(again)] == ["skipped"]
    assert len(report_rows(tmp_path / "out")) == 3


def test_two_processes_into_one_out_both_finish_and_record_every_image_once(photos, tmp_path) -> None:
    out = tmp_path / "out"
    common = ["-o", str(out), "--json", "--batch-size", "1", "--perceptual-weight", "0", *FAST]
    first = mgan_process("invert", *map(str, photos[:3]), *common)  # overlapping shares: 1 and 2 in both
    second = mgan_process("invert", *map(str, photos[1:]), *common)
    results = [process.communicate(timeout=300) for process in (first, second)]
    for process, (_, stderr) in zip((first, second), results, strict=True):
        assert process.returncode == 0, stderr[-2000:]
        assert "Traceback" not in stderr
    rows = report_rows(out)
    assert sorted(Path(r["input"]).name for r in rows) == sorted(p.name for p in photos)  # each once
    assert {r["status"] for r in rows} <= {"ok", "skipped"}
    assert len(json.loads((out / "report.json").read_text())["runs"]) == 2
    for row in rows:
        assert Image.open(out / f"{Path(row['input']).stem}.png").size == (64, 64)


def test_sigint_flushes_what_finished_exits_130_and_a_rerun_resumes(photos, tmp_path) -> None:
    out = tmp_path / "out"
    # 300 steps an image: after the first one finishes, the other three take seconds, so the interrupt lands
    # mid-run even on a loaded machine.
    args = ["invert", *map(str, photos), "-o", str(out), "--json", "--batch-size", "1", "--iterations", "300",
            "--codes", "2", "--perceptual-weight", "0", "--device", "cpu"]
    process = mgan_process(*args)
    assert process.stdout is not None
    first_line = json.loads(process.stdout.readline())
    process.send_signal(signal.SIGINT)
    rest, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr and "interrupted" in stderr
    finished = [first_line, *map(json.loads, rest.splitlines())]
    assert len(finished) < len(photos)  # it stopped before the end
    recorded = {Path(r["input"]).name: r for r in report_rows(out)}
    for line in finished:
        assert recorded[Path(line["input"]).name]["status"] == "ok"
        assert Path(line["output"]).is_file()
    rerun = run(*args)
    assert rerun.exit_code == 0, rerun.output
    statuses = {Path(j["input"]).name: j["status"] for j in lines(rerun)}
    assert {name for name, status in statuses.items() if status == "skipped"} == {
        Path(line["input"]).name for line in finished}
    assert len(report_rows(out)) == len(photos)


# -- 4. a failed optimisation is a failure ---------------------------------------------------------------
def test_divergence_fails_the_image_without_a_png(photos, tmp_path) -> None:
    out = tmp_path / "out"
    result = run("invert", str(photos[0]), str(photos[1]), "-o", str(out), "--json", "--lr", "1e30", *FAST)
    assert result.exit_code == 1
    for line in lines(result):
        assert line["status"] == "failed" and line["output"] is None
        assert "the optimisation diverged at step" in line["error"] and "lower --lr" in line["error"]
    assert not list(out.glob("*.png"))
    nan = CliRunner().invoke(main, ["invert", str(photos[0]), "-o", str(out), "--lr", "nan", *FAST])
    assert nan.exit_code == 2 and "'nan' is not allowed" in nan.stderr  # a usage error, nothing ran


def test_a_diverged_image_does_not_poison_its_batch() -> None:
    from mgan_cli.core.degradations import Identity
    from mgan_cli.core.engine import InversionSettings, invert
    from mgan_cli.core.losses import ReconstructionLoss
    from mgan_cli.weights.loading import load_generator

    generator = load_generator("dcgan32-celeba")
    with torch.no_grad():
        targets = generator(torch.randn(3, 100, generator=torch.Generator().manual_seed(3))).clamp(-1, 1)
    poisoned = targets.clone()
    poisoned[1, :, :4, :4] = float("nan")  # its loss is NaN from the first step
    loss = ReconstructionLoss(perceptual_weight=0.0)
    settings = InversionSettings(codes=2, layer=2, iterations=12, lr=0.05)
    together = invert(generator, poisoned, Identity(), loss, settings, seeds=[1, 2, 3], progress_every=5)
    assert together.diverged_at is not None and together.diverged_at.tolist() == [-1, 1, -1]
    healthy = invert(generator, targets[[0, 2]], Identity(), loss, settings, seeds=[1, 3], progress_every=5)
    assert torch.isfinite(together.losses[[0, 2]]).all()
    assert torch.allclose(together.images[[0, 2]], healthy.images, atol=1e-5)
    assert torch.allclose(together.losses[[0, 2]], healthy.losses, atol=1e-6)


# -- 5. exit statuses and one-line messages ---------------------------------------------------------------
def test_exit_statuses(photos, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.png").write_bytes(b"not an image")
    (broken / "b.png").write_bytes(b"nor this")
    nothing = CliRunner().invoke(main, ["invert", str(broken), "-o", str(tmp_path / "o1"), *FAST])
    assert nothing.exit_code == 2 and "nothing could run" in nothing.stderr
    some = CliRunner().invoke(main, ["invert", str(broken / "a.png"), str(photos[0]), "-o", str(tmp_path / "o2"),
                                     *FAST])
    assert some.exit_code == 1
    ok = CliRunner().invoke(main, ["invert", str(photos[0]), "-o", str(tmp_path / "o2"), *FAST])
    assert ok.exit_code == 0  # skipped counts as fine
    empty = CliRunner().invoke(main, ["invert", str(photos[0]), "-o", "", *FAST])
    assert empty.exit_code == 2 and "-o" in empty.stderr and "empty" in empty.stderr
    assert not (tmp_path / "report.json").exists() and not (tmp_path / ".mgan").exists()


def test_environmental_problems_are_one_line(photos, tmp_path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    result = CliRunner().invoke(main, ["invert", str(photos[0]), "-o", str(blocker / "out"), *FAST])
    assert result.exit_code == 2
    message = result.stderr.strip()
    assert message.startswith("mgan: error:") and len(message.splitlines()) == 1
    assert str(blocker / "out") in message and "Not a directory" in message
    listing = f"{photos[0]}\n{tmp_path}/bad\0name.png\n"
    nul = CliRunner().invoke(main, ["invert", "-", "-o", str(tmp_path / "o"), "--json", *FAST], input=listing)
    assert nul.exit_code == 1
    statuses = {j["status"]: j for j in lines(nul)}
    assert statuses["ok"]["input"] == str(photos[0])
    assert "NUL byte" in statuses["failed"]["error"]
    assert "Traceback" not in nul.stderr


def _mount_tmpfs(target: Path, options: str) -> None:
    target.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True,
                              text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a tmpfs here ({exc})")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root and mount rights): {done.stderr.strip()}")


@pytest.fixture()
def small_tmpfs(tmp_path):
    target = tmp_path / "mnt"
    _mount_tmpfs(target, "size=64k")
    yield target
    subprocess.run(["umount", "--lazy", str(target)], check=False)


def test_read_only_and_full_output_folders_are_one_line(photos, small_tmpfs) -> None:
    (small_tmpfs / "filler").write_bytes(b"\0" * (64 * 1024 - 4096))
    with contextlib.suppress(OSError):
        (small_tmpfs / "more").write_bytes(b"\0" * 8192)
    full = CliRunner().invoke(main, ["invert", str(photos[0]), "-o", str(small_tmpfs / "out"), *FAST])
    assert full.exit_code == 2, full.output
    message = full.stderr.strip()
    assert message.startswith("mgan: error:") and len(message.splitlines()) == 1
    assert str(small_tmpfs / "out") in message and ("full" in message or "No space" in message)
    (small_tmpfs / "filler").unlink()
    (small_tmpfs / "more").unlink(missing_ok=True)
    subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)], check=True)
    read_only = CliRunner().invoke(main, ["invert", str(photos[0]), "-o", str(small_tmpfs / "o2"), *FAST])
    assert read_only.exit_code == 2
    message = read_only.stderr.strip()
    assert len(message.splitlines()) == 1 and str(small_tmpfs / "o2") in message and "Read-only" in message


@pytest.fixture()
def few_inodes(tmp_path):
    """A tmpfs with room for OUT, its store and one more file (the first PNG), then none."""
    target = tmp_path / "mnt"
    _mount_tmpfs(target, "size=4m,nr_inodes=7")
    yield target
    subprocess.run(["umount", "--lazy", str(target)], check=False)


def test_a_disk_that_fills_mid_run_keeps_what_finished(photos, few_inodes) -> None:
    out = few_inodes / "out"
    args = ["invert", str(photos[0]), str(photos[1]), "-o", str(out), "--json", "--batch-size", "1", *FAST]
    full = CliRunner().invoke(main, args)
    assert full.exit_code == 2
    message = full.stderr.strip().splitlines()[-1]
    assert message.startswith("mgan: error:") and str(out) in message and "No space left" in message
    assert "Traceback" not in full.stderr
    (finished,) = lines(full)  # the first image was written and recorded before the disk filled
    assert finished["status"] == "ok" and Path(finished["output"]).is_file()
    subprocess.run(["mount", "-o", "remount,nr_inodes=200", str(few_inodes)], check=True)
    resumed = run(*args)
    assert resumed.exit_code == 0, resumed.output
    assert [line["status"] for line in lines(resumed)] == ["skipped", "ok"]
    assert lines(resumed)[0]["psnr"] == finished["psnr"]


def test_only_the_projects_errors_become_one_line() -> None:
    from mgan_cli.cli.common import reports_errors
    from mgan_cli.errors import UnknownNameError

    @reports_errors
    def buggy() -> None:
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        buggy()

    @reports_errors
    def unknown() -> None:
        raise UnknownNameError("unknown task 'x'; known: invert")

    with pytest.raises(SystemExit) as exit_info:
        unknown()
    assert exit_info.value.code == 2


# -- 6. --recursive never takes OUT's own files ---------------------------------------------------------
def test_recursive_leaves_out_the_output_folder(photos, tmp_path) -> None:
    nest = tmp_path / "nest"
    (nest / "sub").mkdir(parents=True)
    (nest / "a.png").write_bytes(photos[0].read_bytes())
    (nest / "sub" / "b.png").write_bytes(photos[1].read_bytes())
    out = nest / "out"
    first = run("invert", str(nest), "--recursive", "-o", str(out), "--json", *FAST)
    assert first.exit_code == 0 and len(lines(first)) == 2
    second = run("invert", str(nest), "--recursive", "-o", str(out), "--json", *FAST)
    assert second.exit_code == 0, second.output
    assert sorted(j["status"] for j in lines(second)) == ["skipped", "skipped"]


def test_a_reference_of_the_wrong_size_is_like_a_missing_one(photos, tmp_path) -> None:
    references = tmp_path / "refs"
    references.mkdir()
    Image.open(photos[0]).resize((32, 32)).save(references / photos[0].name)
    result = run("denoise", str(photos[0]), "-o", str(tmp_path / "out"), "--reference", str(references), "--json",
                 *FAST)
    assert result.exit_code == 0, result.output
    (line,) = lines(result)
    assert line["status"] == "ok" and line["psnr"] is None
    assert "32x32" in line["psnr_reason"] and any("32x32" in note for note in line["notes"])
