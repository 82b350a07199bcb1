"""``mgan weights list [--format table|tsv|json] | fetch NAME | verify | path NAME | import FILE --name NAME``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from mgan_cli.cli.common import EXIT_SOME_FAILED, reports_errors
from mgan_cli.weights.formats import READERS
from mgan_cli.weights.formats.config_checks import build_architecture
from mgan_cli.weights.importing import import_generator, imported_rows, list_imported
from mgan_cli.weights.store import WeightEntry, default_store


@click.group("weights")
def weights_group() -> None:
    """Known weight files: where they come from, whether they are here, and fetching them.

    Files are looked up in the cache ($MGAN_HOME, default ~/.cache/mgan), then in $MGAN_WEIGHTS_MIRROR,
    then fetched from their pinned sources; every file is checked against its sha256 (or, where no
    checksum is published, by loading it through its safe reader). Generators you hold in another format
    are converted once with `mgan weights import` and listed with location "imported".
    """


def parameter_count(entry: WeightEntry) -> int | None:
    """Learnable parameters of a generator entry, counted from its architecture (no weights needed)."""
    if entry.kind != "generator" or not entry.architecture:
        return None
    model = build_architecture(entry.architecture, entry.config, f"weights entry {entry.name!r}")
    return sum(p.numel() for p in model.parameters())


#: the columns of ``mgan weights list`` as a table and as TSV: (record key, table heading)
LIST_COLUMNS = (("name", "name"), ("kind", "kind"), ("architecture", "architecture"), ("resolution", "res"),
                ("latent_size", "latent"), ("available", "available"), ("location", "location"))


def _records() -> list[dict[str, Any]]:
    """One record per known weight file, then per imported generator (the JSON lines of ``--format json``)."""
    store = default_store()
    records = []
    for name, entry in sorted(store.entries.items()):
        status = store.status(name)
        records.append({
            "name": name, "kind": entry.kind, "architecture": entry.architecture,
            "resolution": entry.resolution, "latent_size": entry.latent_size,
            "parameters": parameter_count(entry), "available": status.verified,
            "location": status.location, "file": entry.file, "sha256": entry.sha256,
        })
    records.extend(imported_rows(store))
    return records


def _stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "" if value is None else str(value)


@weights_group.command("list")
@click.option("--format", "output_format", type=click.Choice(["table", "tsv", "json"]), default=None,
              help="table (for reading), tsv (one tab-separated line per file after a heading line: for cut, awk, "
                   "sort) or json (one object per file). Default: table on a terminal, else tsv (as ls and git do).")
@click.option("--json", "json_lines", is_flag=True, hidden=True, help="Same as --format json.")
@reports_errors
def list_weights(output_format: str | None, json_lines: bool) -> None:
    """List every known weight file and whether a verified copy is here."""
    if json_lines:
        output_format = "json"
    if output_format is None:
        output_format = "table" if _stdout_is_terminal() else "tsv"
    records = _records()
    if output_format == "json":
        for record in records:
            click.echo(json.dumps(record))
    elif output_format == "tsv":
        click.echo("\t".join(key for key, _ in LIST_COLUMNS))
        for record in records:
            click.echo("\t".join(_cell(record.get(key)).replace("\t", " ") for key, _ in LIST_COLUMNS))
    else:
        click.echo(aligned_table([heading for _, heading in LIST_COLUMNS],
                                 [[_cell(record.get(key)) for key, _ in LIST_COLUMNS] for record in records]))


def aligned_table(headings: list[str], rows: list[list[str]]) -> str:
    """Left-aligned columns two spaces apart, each as wide as its widest cell: nothing is ever shortened (a
    terminal narrower than a line wraps it)."""
    widths = [max(len(cell) for cell in column) for column in zip(headings, *rows, strict=True)]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
                      for line in (headings, *rows))


@weights_group.command("fetch")
@click.argument("names", nargs=-1, required=True)
@reports_errors
def fetch_weights(names: tuple[str, ...]) -> None:
    """Fetch NAMES into the cache (a no-op for files already here) and print their paths."""
    store = default_store()
    for name in names:
        click.echo(f"{name}\t{store.path(name)}")


@weights_group.command("verify")
@reports_errors
def verify_weights() -> None:
    """Check every copy present against its sha256; exit 1 if any is corrupt."""
    store = default_store()
    bad = False
    for name in sorted(store.entries):
        status = store.status(name)
        if status.verified:
            click.echo(f"ok       {name}\t{status.path}")
        elif status.problem:
            bad = True
            click.echo(f"CORRUPT  {name}\t{status.problem}")
        else:
            click.echo(f"missing  {name}")
    for imported in list_imported(store):
        if imported.verified():
            click.echo(f"ok       {imported.name}\t{imported.weights_file}")
        else:
            bad = True
            click.echo(f"CORRUPT  {imported.name}\t{imported.weights_file} is missing or changed since it was "
                       f"imported; import it again")
    if bad:
        sys.exit(EXIT_SOME_FAILED)


@weights_group.command("path")
@click.argument("name")
@reports_errors
def weights_path(name: str) -> None:
    """Print the local path of NAME (fetching it if needed)."""
    click.echo(default_store().path(name))


@weights_group.command("import")
@click.argument("file", type=click.Path(exists=True, path_type=Path))
@click.option("--name", required=True, help="Name to use for it in presets and --generator.")
@click.option("--format", "format_name", default="auto", show_default=True,
              help=f"auto (detect), or a reader: {', '.join(READERS.names())}.")
@click.option("--overwrite", is_flag=True, help="Replace an imported generator of the same name.")
@click.option("--json", "as_json", is_flag=True, help="Print the import record (mgan.json) as JSON.")
@reports_errors
def import_weights(file: Path, name: str, format_name: str, overwrite: bool, as_json: bool) -> None:
    """Convert a generator FILE (TF or NVlabs pickle, genforce .pth, rosinality .pt) into the cache.

    The file is read as data (never unpickled as code), built to check that every tensor fits, and written
    once as safetensors + mgan.json under $MGAN_HOME/imported/NAME; NAME then works like a registry name.
    """
    imported = import_generator(file, name, format_name, default_store(), overwrite=overwrite)
    info = imported.info
    if as_json:
        click.echo(json.dumps({**info, "folder": str(imported.folder)}))
    else:
        click.echo(f"imported {name}: {info['architecture']} {info['resolution']}x{info['resolution']}, "
                   f"{info['parameters']:,} parameters, from {info['source_format']} file {info['source_file']}"
                   f"\n  -> {imported.folder}")
