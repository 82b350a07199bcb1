"""A non-editable install (a built wheel in a fresh venv) ships the presets and the weight registry."""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: what a wheel is built from (copied, so the build never writes into the checkout)
SOURCES = ("mgan_cli", "presets", "weights", "pyproject.toml", "setup.py", "MANIFEST.in", "README.md")


@pytest.mark.slow
def test_a_built_wheel_lists_presets_and_weights(tmp_path: Path) -> None:
    source = tmp_path / "source"
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, source / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    # the fresh venv sees this one's packages (torch, click, ...) as a plain path: its .pth files, the editable
    # install of the checkout among them, are not processed, so only the wheel provides mgan_cli
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    Path(purelib, "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-index", str(source)], check=True, timeout=300)
    shutil.rmtree(source)  # nothing may be read from the source tree now

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["MGAN_HOME"] = str(tmp_path / "home")

    def mgan(*args: str) -> str:
        result = subprocess.run([str(venv / "bin" / "mgan"), *args], capture_output=True, text=True, env=env,
                                cwd=tmp_path, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    where = subprocess.run([str(python), "-c", "import mgan_cli; print(mgan_cli.__file__)"], capture_output=True,
                           text=True, env=env, cwd=tmp_path, check=True).stdout
    assert where.startswith(str(venv)), where
    presets = mgan("presets", "list")
    for name in (p.stem for p in (REPO / "presets").glob("*.yaml")):
        assert name in presets
    weights = {json.loads(line)["name"] for line in mgan("weights", "list", "--json").splitlines()}
    assert {"vgg16-imagenet", "dcgan64-digiface"} <= weights
