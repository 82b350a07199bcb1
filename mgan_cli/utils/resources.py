"""Where the project's own data lives: the presets and the weight registry.

In a checkout (and an editable install) they are the top-level ``presets/`` and ``weights/registry.yaml``,
which users edit. An installed wheel carries a copy of both as package data (``mgan_cli/_data/``, put there
by ``setup.py`` at build time), read through :mod:`importlib.resources`.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _checkout() -> Path | None:
    """The source checkout this package runs from, if it does (``pyproject.toml`` and ``presets/`` beside it)."""
    if (PROJECT_ROOT / "pyproject.toml").is_file() and (PROJECT_ROOT / "presets").is_dir():
        return PROJECT_ROOT
    return None


def _package_data(relative: str) -> Path:
    """A file or folder of the installed package's data (an installed wheel is a plain folder on disk)."""
    found = resources.files("mgan_cli").joinpath("_data", *relative.split("/"))
    path = Path(str(found))
    if not path.exists():
        raise FileNotFoundError(f"mgan's {relative} is neither in a checkout beside the package nor in the "
                                f"installed package ({path}); reinstall mgan (`pip install .` from the checkout)")
    return path


def presets_dir() -> Path:
    """The folder of built-in presets."""
    checkout = _checkout()
    return checkout / "presets" if checkout else _package_data("presets")


def registry_file() -> Path:
    """The weight registry (``weights/registry.yaml``)."""
    checkout = _checkout()
    return checkout / "weights" / "registry.yaml" if checkout else _package_data("weights/registry.yaml")
