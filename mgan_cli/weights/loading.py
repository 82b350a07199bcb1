"""Generators by name or by file: the layer above the readers (:mod:`mgan_cli.weights.formats`), the architectures
(:mod:`mgan_cli.generators`) and the weight store (:mod:`mgan_cli.weights.store`), which know nothing of
each other's loading.

* :func:`read_generator` reads a file of a named format into a frozen generator;
* :func:`load_generator` finds a registry entry's file through the store (fetched and verified first), or a
  generator imported with ``mgan weights import``, and reads it;
* :func:`check_generator_structure` is the store's check for generator files without a published sha256
  (registered in :data:`mgan_cli.weights.store.STRUCTURE_CHECKS` when this module is imported).
"""

from __future__ import annotations

from pathlib import Path

from mgan_cli.errors import UnknownFormatError, WeightsError
from mgan_cli.generators import Generator
from mgan_cli.weights.formats import READERS, build, state_dict_fit
from mgan_cli.weights.formats.base import expected_shapes
from mgan_cli.weights.importing import IMPORTED_DIR
from mgan_cli.weights.store import STRUCTURE_CHECKS, WeightEntry, WeightStore, default_store


def read_generator(path: Path, format_name: str) -> Generator:
    """Read ``path`` (a file of format ``format_name``) into a frozen generator."""
    return build(READERS.get(format_name)(path), source=str(path))


def load_generator(name: str, store: WeightStore | None = None) -> Generator:
    """The frozen generator of registry entry ``name`` (its weights fetched and verified first), or of the
    generator imported as ``name`` with ``mgan weights import`` (``<cache>/imported/<name>``)."""
    store = store or default_store()
    imported = store.home / IMPORTED_DIR / name
    if name not in store.entries and (imported / "mgan.json").is_file():
        generator = read_generator(imported, "mgan-safetensors")
    else:
        entry = store.entry(name)
        if entry.kind != "generator":
            raise UnknownFormatError(f"weights {name!r} are a {entry.kind}, not a generator")
        generator = read_generator(store.path(name), entry.format or "")
    generator.weights_name = name
    return generator


@STRUCTURE_CHECKS.register("generator")
def check_generator_structure(entry: WeightEntry, path: Path) -> None:
    """The file at ``path`` must load through ``entry.format``'s safe reader and build, strictly, into exactly
    ``entry.architecture`` with ``entry.config``. Raises :class:`WeightsError` (or ``KeyError`` for an unknown
    format or architecture) otherwise."""
    weights = READERS.get(entry.format or "")(path)
    fit = state_dict_fit(expected_shapes(entry.architecture or "", entry.config), weights.state_dict)
    if weights.architecture != entry.architecture or not fit.fits:
        raise WeightsError(f"it holds a {weights.architecture} with config {weights.config}, not the "
                           f"{entry.architecture} {entry.config} of the registry ({fit.describe()})")
    build(weights, source=str(path))
