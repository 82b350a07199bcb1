"""Hostile use, round 3 (issue 22): nothing written outside OUT by any command, sizes from a file or a flag
checked before anything is allocated, CSV cells that cannot run as formulas, no silent wrong results."""

from __future__ import annotations

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
