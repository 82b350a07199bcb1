"""``mgan weights list | fetch NAME | verify | path NAME``."""

from __future__ import annotations

import json
import sys

import click
import torch
from rich.table import Table

from mgan_cli.cli.common import EXIT_SOME_FAILED, reports_errors, stdout_console
from mgan_cli.generators import ARCHITECTURES
from mgan_cli.weight_store import WeightEntry, default_store


@click.group("weights")
def weights_group() -> None:
    """Known weight files: where they come from, whether they are here, and fetching them.

    Files are looked up in the cache ($MGAN_HOME, default ~/.cache/mgan), then in $MGAN_WEIGHTS_MIRROR,
    then fetched from their pinned sources; every file is checked against its sha256.
    """


def parameter_count(entry: WeightEntry) -> int | None:
    """Learnable parameters of a generator entry, counted from its architecture (no weights needed)."""
    if entry.kind != "generator" or not entry.architecture:
        return None
    with torch.device("meta"):
        model = ARCHITECTURES.get(entry.architecture)(**entry.config)
    return sum(p.numel() for p in model.parameters())


@weights_group.command("list")
@click.option("--json", "json_lines", is_flag=True, help="One JSON object per known file.")
@reports_errors
def list_weights(json_lines: bool) -> None:
    """List every known weight file and whether a verified copy is here."""
    store = default_store()
    table = Table("name", "kind", "architecture", "res", "latent", "available", "file")
    for name, entry in sorted(store.entries.items()):
        status = store.status(name)
        if json_lines:
            click.echo(json.dumps({
                "name": name, "kind": entry.kind, "architecture": entry.architecture,
                "resolution": entry.resolution, "latent_size": entry.latent_size,
                "parameters": parameter_count(entry), "available": status.verified,
                "location": status.location, "file": entry.file, "sha256": entry.sha256,
            }))
        else:
            table.add_row(name, entry.kind, entry.architecture or "", str(entry.resolution or ""),
                          str(entry.latent_size or ""), "yes" if status.verified else "no", entry.file)
    if not json_lines:
        stdout_console.print(table)


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
    if bad:
        sys.exit(EXIT_SOME_FAILED)


@weights_group.command("path")
@click.argument("name")
@reports_errors
def weights_path(name: str) -> None:
    """Print the local path of NAME (fetching it if needed)."""
    click.echo(default_store().path(name))
