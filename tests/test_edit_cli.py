"""The `mgan directions` command: files, their contents, and refusing to overwrite."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from click.testing import CliRunner, Result
from PIL import Image

from mgan_cli.cli import main
from mgan_cli.edit import directions
from mgan_cli.weights.loading import load_generator


def test_directions_writes_vectors_metadata_and_a_preview(tmp_path: Path) -> None:
    out = tmp_path / "dirs"
    args = ["directions", "dcgan32-celeba", "--method", "sefa", "-n", "3", "--strengths", "-2,0,2",
            "--samples", "2", "-o", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    vectors = np.load(out / "sefa.npy")
    assert vectors.shape == (3, 100) and vectors.dtype == np.float32
    expected = directions.sefa(load_generator("dcgan32-celeba"), 3).vectors.numpy()
    assert np.allclose(vectors, expected)
    info = json.loads((out / "sefa.json").read_text())
    assert info["generator"] == "dcgan32-celeba" and info["space"] == "z" and len(info["values"]) == 3
    with Image.open(out / "sefa_preview.png") as preview:
        # 3 rows of 32 px with 2 px gaps; 2 samples × 3 strengths of 32 px, 2 px gaps, 8 px between samples
        assert preview.size == (2 * (3 * 32 + 2 * 2) + 8, 3 * 32 + 2 * 2)
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 2 and "already exist" in again.output


def test_directions_reports_bad_requests_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["directions", "dcgan32-celeba", "--method", "pca", "-o", str(tmp_path)])
    assert result.exit_code == 2 and "--layer" in result.output and "Traceback" not in result.output


def _fast(extra: list[str]) -> list[str]:
    return ["--codes", "3", "--iterations", "4", "--perceptual-weight", "0", "--quiet", "--precision", "fp32", *extra]


def _faces(shared_dir: Path) -> list[str]:
    return [str(shared_dir / "data" / "celeba64" / name) for name in ("182660.jpg", "182661.jpg")]


def test_edit_from_saved_latents_reproduces_the_inversion_bit_for_bit(shared_dir: Path, tmp_path: Path) -> None:
    inverted = CliRunner().invoke(main, ["invert", *_faces(shared_dir), "-o", str(tmp_path / "inv"), "--resize",
                                         "crop", "--save-latents", *_fast([])])
    assert inverted.exit_code == 0, inverted.output
    report = json.loads((tmp_path / "inv" / "report.json").read_text())
    assert all(Path(row["latents"]).is_file() for row in report["images"])
    edited = CliRunner().invoke(main, ["edit", "--from-latents", str(tmp_path / "inv" / "latents"), "-o",
                                       str(tmp_path / "edit"), "--direction", "sefa:1", "--strengths", "-2,0,2"])
    assert edited.exit_code == 0, edited.output
    for row in json.loads((tmp_path / "edit" / "report.json").read_text())["images"]:
        stem = Path(row["input"]).name.removesuffix(".safetensors")
        frames = {frame["strength"]: np.array(Image.open(frame["path"])) for frame in row["frames"]}
        assert np.array_equal(frames[0.0], np.array(Image.open(tmp_path / "inv" / f"{stem}.png")))
        assert not np.array_equal(frames[2.0], frames[0.0])
        with Image.open(row["strip"]) as strip:
            assert strip.size == (3 * 64 + 2 * 2, 64)
    refused = CliRunner().invoke(main, ["edit", "--from-latents", str(tmp_path / "inv" / "latents"), "-o",
                                        str(tmp_path / "other"), "--direction", "sefa:0", "--generator",
                                        "dcgan32-celeba"])
    assert refused.exit_code == 2 and "inverted with dcgan64-digiface" in refused.output


def test_edit_inverts_then_renders_frames_and_refuses_foreign_boundaries(shared_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "edit"
    result = CliRunner().invoke(main, ["edit", *_faces(shared_dir)[:1], "-o", str(out), "--resize", "crop",
                                       "--direction", "sefa:0", "--strengths", "0,3", *_fast([])])
    assert result.exit_code == 0, result.output
    row = json.loads((out / "report.json").read_text())["images"][0]
    assert [f["strength"] for f in row["frames"]] == [0.0, 3.0] and row["psnr"] is not None
    assert np.array_equal(np.array(Image.open(row["frames"][0]["path"])), np.array(Image.open(row["output"])))
    foreign = CliRunner().invoke(main, ["edit", *_faces(shared_dir)[:1], "-o", str(tmp_path / "x"), "--resize",
                                        "crop", "--direction", "pggan-celebahq1024-smile", *_fast([])])
    assert foreign.exit_code == 2 and "made for pggan-celebahq1024" in foreign.output
    layered = CliRunner().invoke(main, ["edit", *_faces(shared_dir)[:1], "-o", str(tmp_path / "y"), "--resize",
                                        "crop", "--direction", "sefa:0", "--edit-layers", "0-1", *_fast([])])
    assert layered.exit_code == 2 and "w or w+" in layered.output
    upper = CliRunner().invoke(main, ["edit", *_faces(shared_dir)[:1], "-o", str(tmp_path / "z"), "--resize",
                                      "crop", "--direction", "sefa:0", "--edit-upper", *_fast([])])
    assert upper.exit_code == 2 and "--edit-upper needs codes in w" in upper.output


def test_another_edit_into_the_same_out_is_a_clash_not_a_silent_skip(shared_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "edit"

    def edit(direction: str, *extra: str) -> list[dict]:
        result = CliRunner().invoke(main, ["edit", *_faces(shared_dir)[:1], "-o", str(out), "--resize", "crop",
                                           "--direction", direction, "--strengths", "0,3", "--json",
                                           *_fast(list(extra))])
        return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]

    def frame_at_3() -> bytes:
        return next((out / "frames").glob("*_3.png")).read_bytes()

    assert edit("sefa:0")[0]["status"] == "ok"
    first = frame_at_3()
    assert edit("sefa:0")[0]["status"] == "skipped"  # the same request: already done
    (clash,) = edit("sefa:1")  # frames of another direction: not the ones on disk
    assert clash["status"] == "failed" and "other settings" in clash["error"] and frame_at_3() == first
    (redone,) = edit("sefa:1", "--overwrite")
    assert redone["status"] == "ok" and frame_at_3() != first


def test_tuning_in_a_run_never_changes_the_shared_generator(shared_dir: Path, tmp_path: Path) -> None:
    from mgan_cli.config.presets import apply_overrides, load_preset
    from mgan_cli.config.tasks import TASKS
    from mgan_cli.core.tuning import TuningSettings
    from mgan_cli.run import Job, Runner
    from mgan_cli.run.extras import RunExtras
    from mgan_cli.weights.store import default_store, sha256_of

    generator = load_generator("dcgan64-digiface")
    before = {k: v.clone() for k, v in generator.state_dict().items()}
    file_sha = sha256_of(default_store().path("dcgan64-digiface"))
    preset = apply_overrides(load_preset("dcgan64-invert"), codes=3, iterations=3, perceptual_weight=0.0)
    job = Job(task=TASKS.get("invert"), preset=preset, inputs=[Path(p) for p in _faces(shared_dir)],
              output_dir=tmp_path, resize="crop", extras=RunExtras(TuningSettings(steps=3, lr=1e-3), True))
    records = Runner(job, generator=generator).run()
    assert [r.status for r in records] == ["ok", "ok"] and all(r.fields["tuned_steps"] == 3 for r in records)
    assert all(torch.equal(before[k], v) for k, v in generator.state_dict().items())
    assert sha256_of(default_store().path("dcgan64-digiface")) == file_sha
    from mgan_cli.edit import latents

    saved = latents.load(Path(records[0].fields["latents"]), "dcgan64-digiface")
    assert saved.tuned and all(not torch.equal(before[k], v) for k, v in saved.tuned.items())


def _one_line_error(result: Result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and "Aborted!" not in result.output and "Traceback" not in result.output, lines
    return lines[-1]


def test_errors_name_the_option_that_was_given(shared_dir: Path, tmp_path: Path) -> None:
    rows = CliRunner().invoke(main, ["directions", "dcgan32-celeba", "--style-rows", "abc", "-o", str(tmp_path / "d")])
    assert "--style-rows must look like 4-7" in _one_line_error(rows) and "--edit-layers" not in rows.output
    many = CliRunner().invoke(main, ["directions", "dcgan32-celeba", "-n", "100000", "-o", str(tmp_path / "d")])
    assert "-n must be between 1 and 100 (the latent size), got 100000" in _one_line_error(many)
    far = CliRunner().invoke(main, ["edit", *_faces(shared_dir)[:1], "-o", str(tmp_path / "e"), "--resize", "crop",
                                    "--direction", "sefa:100000", *_fast([])])
    message = _one_line_error(far)
    assert "--direction sefa:100000: K must be between 0 and 99" in message and "-n " not in far.output


def test_direction_files_that_are_empty_or_pickles_are_refused_in_mgans_words(shared_dir: Path,
                                                                           tmp_path: Path) -> None:
    empty, objects = tmp_path / "empty.npy", tmp_path / "objects.npy"
    empty.write_bytes(b"")
    np.save(objects, np.array([{"run": "code"}], dtype=object), allow_pickle=True)

    def edit(direction: Path) -> str:
        return _one_line_error(CliRunner().invoke(main, ["edit", *_faces(shared_dir)[:1], "-o", str(tmp_path / "e"),
                                                         "--resize", "crop", "--direction", str(direction),
                                                         *_fast([])]))

    assert f"{empty}: empty or cut short, not a .npy array" in edit(empty)
    refusal = edit(objects)
    assert f"{objects}: refused: it holds Python objects" in refusal and "can run code" in refusal
    assert "allow_pickle" not in refusal


def test_an_empty_output_folder_name_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"")
    for args in (["directions", "dcgan32-celeba", "-o", ""], ["analyze", str(tmp_path / "a.png"), "-o", " "]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2 and "must name a folder (it is empty)" in result.output, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_edit_from_latents_exits_2_when_every_file_fails_and_1_when_some_do(shared_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.safetensors").write_bytes(b"not safetensors")
    (broken / "b.safetensors").write_bytes(b"")
    result = CliRunner().invoke(main, ["edit", "--from-latents", str(broken), "-o", str(tmp_path / "out"),
                                       "--direction", "sefa:0"])
    assert result.exit_code == 2, result.output
    warnings = [line for line in result.stderr.splitlines() if "skipped" in line]
    assert len(warnings) == 2
    for line in warnings:
        path = line.split("skipped ", 1)[1].split(": ", 1)[0]
        assert line.count(path) == 1, line  # the path is not repeated

    inverted = CliRunner().invoke(main, ["invert", *_faces(shared_dir)[:1], "-o", str(tmp_path / "inv"), "--resize",
                                         "crop", "--save-latents", *_fast([])])
    assert inverted.exit_code == 0, inverted.output
    (tmp_path / "inv" / "latents" / "broken.safetensors").write_bytes(b"")
    some = CliRunner().invoke(main, ["edit", "--from-latents", str(tmp_path / "inv" / "latents"), "-o",
                                     str(tmp_path / "out2"), "--direction", "sefa:0", "--strengths", "0"])
    assert some.exit_code == 1, some.output
