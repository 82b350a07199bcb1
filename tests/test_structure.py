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


def _imports_of(folder_or_file: Path) -> set[str]:
    """Every mgan module a file (or the files of a folder) imports, at any depth (function-level too)."""
    import ast

    files = sorted(folder_or_file.rglob("*.py")) if folder_or_file.is_dir() else [folder_or_file]
    found: set[str] = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names if alias.name.startswith("mgan_cli"))
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mgan_cli"):
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.parametrize("room", ["core", "generators"])
def test_the_method_knows_nothing_of_files_reports_or_weights(room: str) -> None:
    """``core/`` (tensors in, tensors out) and ``generators/`` import nothing from the rooms above them."""
    above = ("mgan_cli.run", "mgan_cli.report", "mgan_cli.cli", "mgan_cli.weights", "mgan_cli.api")
    offending = sorted(name for name in _imports_of(PACKAGE / room) if name.startswith(above))
    assert not offending, f"{room}/ imports {offending}"


def test_weight_readers_and_the_store_know_nothing_of_the_layers_above() -> None:
    """Readers and the store import no loader; the store imports no generator and no reader."""
    assert not any(n.startswith("mgan_cli.weights.loading") for n in _imports_of(PACKAGE / "weights" / "formats"))
    store = _imports_of(PACKAGE / "weights" / "store.py")
    assert not any(n.startswith(("mgan_cli.generators", "mgan_cli.weights.formats")) for n in store)


def test_the_package_keeps_a_handful_of_modules_at_the_top() -> None:
    top = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert top == ["__init__.py", "__main__.py", "api.py", "errors.py", "version.py"]


def test_the_generator_check_is_registered_whatever_is_imported_first() -> None:
    """Verifying a generator entry without a sha256 needs the generator structure check; it is registered as
    soon as any module of ``mgan_cli.weights`` is imported (``weights/__init__.py``; the package's own
    ``__init__`` loading the public API also does), not only after the loader happened to be."""
    script = ("from mgan_cli.weights.store import STRUCTURE_CHECKS\n"
              "import sys\n"
              "assert 'generator' in STRUCTURE_CHECKS.names(), STRUCTURE_CHECKS.names()\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=PACKAGE.parent,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
