"""Build hook: ship the checkout's ``presets/`` and ``weights/registry.yaml`` inside the package.

They stay top-level folders that users and developers edit; a built wheel (``pip install .``) carries a copy
under ``mgan_cli/_data/``, which :mod:`mgan_cli.utils.resources` reads with ``importlib.resources``. Editable
installs read the checkout's folders directly, so nothing is copied for them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
#: (source in the checkout, destination under the package's _data folder)
PACKAGE_DATA = (("presets", "presets"), ("weights/registry.yaml", "weights/registry.yaml"))


class BuildWithProjectData(build_py):
    """``build_py`` that also copies :data:`PACKAGE_DATA` into ``mgan_cli/_data/`` of the build."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        data = Path(self.build_lib) / "mgan_cli" / "_data"
        for source, destination in PACKAGE_DATA:
            src, dst = ROOT / source, data / destination
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copyfile(src, dst)


setup(cmdclass={"build_py": BuildWithProjectData})
