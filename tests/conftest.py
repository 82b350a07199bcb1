"""Shared pytest fixtures."""

from __future__ import annotations

import os
import types
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
    """For the whole session: unless the caller set them, weights come from ``shared/weights``
    (``MGAN_WEIGHTS_MIRROR``) and the cache (``MGAN_HOME``) is a fresh temporary folder, so tests never touch
    ``~/.cache/mgan`` or the network. A caller's own ``MGAN_WEIGHTS_MIRROR`` / ``MGAN_HOME`` are kept."""
    from mgan_cli.weights import store as weight_store
    from tests.helpers import session_environment

    repo = Path(__file__).resolve().parents[1]
    variables = session_environment(dict(os.environ), tmp_path_factory.mktemp("mgan-home"), repo)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in variables.items():
            patch.setenv(name, value)
        patch.setattr(weight_store, "_default_store", None)  # rebuilt from the variables above
        yield

@pytest.fixture
def official_modules() -> Iterator[types.SimpleNamespace]:
    """NVlabs' ``torch_utils.persistence`` / ``dnnlib.util`` stand-ins registered while a test runs, so the
    writers of :mod:`bench.official_formats` pickle the official global names (see ``official_nvlabs_modules``)."""
    from bench.official_formats import official_nvlabs_modules

    with official_nvlabs_modules() as env:
        yield env


# Scripts under tests/fixtures/ regenerate fixture files by hand from published sources; they are not tests and
# must not be imported by `pytest --doctest-modules` (restored: ddaa963 dropped it).
collect_ignore_glob = ["fixtures/*.py"]
