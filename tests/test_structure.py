"""The package's structure: no import cycle, and every module imports on its own (whatever was imported first)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mgan_cli"

_IMPORT_EACH_ALONE = """
import importlib, sys
failures = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "mgan_cli" or m.startswith("mgan_cli.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as exc:
        failures.append(f"{name}: {type(exc).__name__}: {exc}")
print("\\n".join(failures))
sys.exit(1 if failures else 0)
"""


def _module_names() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_every_module_imports_first() -> None:
    """Each module is imported into an interpreter holding no mgan module yet (third-party imports stay
    cached, so this takes seconds): a cycle that only works in one import order fails here."""
    names = _module_names()
    assert "mgan_cli.weights.loading" in names and len(names) > 40
    result = subprocess.run([sys.executable, "-c", _IMPORT_EACH_ALONE, *names], capture_output=True, text=True,
                            cwd=PACKAGE.parent, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_import_cycle(shared_dir: Path) -> None:
    """The shared hook finds no cycle, counting imports at any depth (function-level ones too)."""
    checker = shared_dir / "hooks" / "import_cycles.py"
    if not checker.is_file():
        pytest.skip(f"{checker} not found")
    result = subprocess.run([sys.executable, str(checker), str(PACKAGE)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_generators_and_store_know_nothing_of_the_layers_above() -> None:
    """The layering the cycle fix relies on, stated as imports: generators import no reader and no store;
    readers and the store import no loader; the store imports no generator."""
    def imports_of(folder_or_file: Path) -> str:
        files = sorted(folder_or_file.rglob("*.py")) if folder_or_file.is_dir() else [folder_or_file]
        return "\n".join(line for f in files for line in f.read_text().splitlines()
                         if line.lstrip().startswith(("import ", "from ")))

    generators = imports_of(PACKAGE / "generators")
    assert "mgan_cli.weights" not in generators
    assert "mgan_cli.weights.loading" not in imports_of(PACKAGE / "weights" / "formats")
    store = imports_of(PACKAGE / "weights" / "store.py")
    assert "mgan_cli.generators" not in store and "mgan_cli.weights.formats" not in store
