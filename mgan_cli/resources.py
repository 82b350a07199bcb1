"""Where the project's own data lives: presets and the weight registry (top-level folders of the checkout)."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def presets_dir() -> Path:
    return PROJECT_ROOT / "presets"


def registry_file() -> Path:
    return PROJECT_ROOT / "weights" / "registry.yaml"
