"""``mgan encoder train GENERATOR [--minutes M | --steps K] [--device D]`` and ``mgan encoder list``."""

from __future__ import annotations

import json

import click
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from mgan_cli.cli.common import reports_errors, stderr_console, stdout_console
from mgan_cli.encoder.storage import list_encoders
from mgan_cli.encoder.training import Budget, TrainingProgress, TrainingSettings, default_minutes, train_encoder
from mgan_cli.utils.devices import DEVICE_CHOICES, resolve_device


@click.group("encoder")
def encoder_group() -> None:
    """Encoders: a learned warm start for the inversion, trained on a generator's own samples only.

    An encoder predicts, from an observed image (through any task's degradation), where the image lies in the
    generator's latent space. Once one is trained, every run of that generator starts its codes there (the
    built-in presets' `init: auto`, with each task's measured number of iterations for that start: about a third
    of the time for the same quality on the embedded DCGAN); `--init random` opts out, `--init encoder` insists.
    It needs no real data. It is stored in the cache ($MGAN_HOME/encoders/<generator sha256>/) and serves only
    the weights it was trained for.
    """


@encoder_group.command("train")
@click.argument("generator")
@click.option("--minutes", type=click.FloatRange(min=0), default=None,
              help="Train for this many minutes in all (default: 14 on a CPU, 20 on CUDA).")
@click.option("--steps", type=click.IntRange(min=0), default=None, help="Train for this many steps in all.")
@click.option("--device", default="auto", show_default=True, help=f"Device: {DEVICE_CHOICES}.")
@click.option("--batch-size", type=click.IntRange(min=1), default=TrainingSettings.batch_size, show_default=True,
              help="Generator samples per step.")
@click.option("--fresh", is_flag=True, help="Start afresh instead of resuming from the checkpoint.")
@reports_errors
def train_command(generator: str, minutes: float | None, steps: int | None, device: str, batch_size: int,
                  fresh: bool) -> None:
    """Train (or go on training) the encoder of GENERATOR, a registry name or an imported generator.

    The budget counts over all runs: a run that is interrupted (or a rerun with a larger budget) resumes from
    the checkpoint written every minute. Without --minutes or --steps it trains for the default minutes.
    """
    from mgan_cli.weights.importing import generator_identity
    from mgan_cli.weights.loading import load_generator

    if minutes is not None and steps is not None:
        raise click.UsageError("give --minutes or --steps, not both")
    chosen = resolve_device(device)
    budget = Budget(steps=steps) if steps is not None else Budget(minutes=default_minutes(chosen)
                                                                  if minutes is None else minutes)
    model = load_generator(generator)
    _, _, sha = generator_identity(generator)
    if sha is None:
        raise click.ClickException(f"no weight file for {generator}")
    columns = [TextColumn("[bold]encoder[/] {task.description}"), BarColumn(), TextColumn("{task.fields[status]}"),
               TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=stderr_console, transient=False) as bar:
        total = float(budget.steps) if budget.steps is not None else 60 * float(budget.minutes or 0)
        task = bar.add_task(generator, total=total, status="")

        def report(done: TrainingProgress) -> None:
            completed = done.step if budget.steps is not None else done.seconds
            bar.update(task, completed=completed,
                       status=f"step {done.step}  loss {done.loss:.4f} (latent {done.latent_loss:.3f}, "
                              f"pixel {done.pixel_loss:.4f})")

        outcome = train_encoder(model, generator, sha, budget, TrainingSettings(batch_size=batch_size),
                                device=chosen, progress=report, fresh=fresh)
    resumed = f", resumed from step {outcome.resumed_from}" if outcome.resumed_from else ""
    click.echo(f"encoder for {generator}: {outcome.steps} steps, {outcome.seconds / 60:.1f} minutes in all"
               f"{resumed} -> {outcome.folder}")


@encoder_group.command("list")
@click.option("--json", "json_lines", is_flag=True, help="One JSON object per trained encoder.")
@reports_errors
def list_command(json_lines: bool) -> None:
    """List the trained encoders in the cache."""
    from rich.table import Table

    rows = list_encoders()
    if json_lines:
        for row in rows:
            click.echo(json.dumps(row, sort_keys=True))
        return
    table = Table()
    for column in ("generator", "generator sha256", "predicts", "steps", "minutes", "trained", "usable"):
        table.add_column(column)
    for row in rows:
        architecture = row.get("architecture") or {}
        table.add_row(str(row.get("generator", "?")), str(row.get("generator_sha256", "?"))[:12],
                      str(architecture.get("target", "?")), str(row.get("steps", "?")),
                      f"{float(row.get('seconds', 0)) / 60:.1f}", str(row.get("trained", "?")),
                      "yes" if row["problem"] is None else f"no: {row['problem']}")
    if not rows:
        stdout_console.print("no encoders trained yet (`mgan encoder train GENERATOR`)")
    else:
        stdout_console.print(table)
