"""The test session's weight mirror and cache: defaults for a bare run, the caller's when set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_a_bare_run_uses_the_shared_mirror_and_a_temporary_home() -> None:
    if os.environ.get("MGAN_PROBE_EXPECT"):
        expected = json.loads(os.environ["MGAN_PROBE_EXPECT"])
        assert {k: os.environ[k] for k in expected} == expected
        return
    assert Path(os.environ["MGAN_HOME"]) != Path.home() / ".cache" / "mgan"
    assert os.environ["MGAN_WEIGHTS_MIRROR"]


@pytest.mark.skipif(bool(os.environ.get("MGAN_PROBE_EXPECT")), reason="inside the probe run")
def test_the_callers_mirror_and_home_are_kept(tmp_path: Path) -> None:
    """A pytest run started with its own MGAN_WEIGHTS_MIRROR and MGAN_HOME sees exactly those."""
    wanted = {"MGAN_WEIGHTS_MIRROR": str(tmp_path / "mirror"), "MGAN_HOME": str(tmp_path / "home")}
    env = {**os.environ, **wanted, "MGAN_PROBE_EXPECT": json.dumps(wanted)}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             f"{Path(__file__).name}::test_a_bare_run_uses_the_shared_mirror_and_a_temporary_home"],
                            cwd=REPO / "tests", env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "1 passed" in result.stdout, result.stdout + result.stderr
