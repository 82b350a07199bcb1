"""The test session's weight mirror and cache (tests/conftest.py): defaults for a bare run, the caller's when set."""

from __future__ import annotations

import os
from pathlib import Path

from tests.helpers import session_environment

REPO = Path(__file__).resolve().parents[1]


def test_a_bare_run_uses_the_shared_mirror_and_a_fresh_home(tmp_path: Path) -> None:
    env = session_environment({"PATH": "/bin"}, tmp_path / "home", REPO)
    assert env == {"MGAN_WEIGHTS_MIRROR": str(REPO.parent / "shared" / "weights"), "MGAN_HOME": str(tmp_path / "home")}


def test_the_callers_mirror_and_home_are_kept(tmp_path: Path) -> None:
    caller = {"MGAN_WEIGHTS_MIRROR": "/data/mirror", "MGAN_HOME": "/data/home"}
    assert session_environment(caller, tmp_path / "home", REPO) == caller


def test_this_session_runs_with_them() -> None:
    """The fixture applied them: the cache is never the user's own."""
    assert Path(os.environ["MGAN_HOME"]) != Path.home() / ".cache" / "mgan"
    assert os.environ["MGAN_WEIGHTS_MIRROR"]
