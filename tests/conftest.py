"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only ``shared/`` folder next to the repository (weights, data, golden fixtures)."""
    path = Path(__file__).resolve().parents[1].parent / "shared"
    if not path.is_dir():
        pytest.skip(f"shared data folder not found at {path}")
    return path


@pytest.fixture(scope="session", autouse=True)
def mgan_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """For the whole session: weights come from ``shared/weights`` (``MGAN_WEIGHTS_MIRROR``) and the cache
    (``MGAN_HOME``) is a fresh temporary folder, so tests never touch ``~/.cache/mgan`` or the network."""
    from mgan_cli import weight_store

    mirror = Path(__file__).resolve().parents[1].parent / "shared" / "weights"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MGAN_WEIGHTS_MIRROR", str(mirror))
        patch.setenv("MGAN_HOME", str(tmp_path_factory.mktemp("mgan-home")))
        patch.setattr(weight_store, "_default_store", None)  # rebuilt from the variables above
        yield

# Scripts under tests/fixtures/ regenerate fixture files by hand from published sources; they are not tests and
# must not be imported by `pytest --doctest-modules`.
collect_ignore_glob = ["fixtures/*.py"]
