"""``mgan report OUT``: rebuild report.json, report.csv and index.html from every run store in ``OUT``."""

from __future__ import annotations

from pathlib import Path

import click

from mgan_cli.analysis.sweep import rebuild_analysis
from mgan_cli.cli.common import reports_errors, stderr_console
from mgan_cli.errors import OutputError
from mgan_cli.report.tables import rebuild_views
from mgan_cli.run.store import STORE_DIR


@click.command("report")
@click.argument("output_dir", metavar="OUT", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--quiet", is_flag=True, help="Print nothing.")
@reports_errors
def report_command(output_dir: Path, quiet: bool) -> None:
    """Rebuild OUT's report.json, report.csv and index.html from every run store in OUT (every host and shard
    that restored into it), e.g. once a SLURM array is done (a dependent job) or while it still runs. Safe to
    run at any time, as often as wanted. For an `mgan analyze` folder, also each pair's views and
    analysis.json/analysis.csv.

    \b
    Examples:
      mgan report out/
      sbatch --dependency=afterany:$JOBID --wrap 'mgan report out/'
    """
    if (output_dir / STORE_DIR).is_dir():
        report = rebuild_views(output_dir)
        summary = report.summary
        message = (f"wrote {output_dir / 'report.json'}, report.csv and index.html: {summary['images']} images, "
                   f"{summary['ok']} ok, {summary['skipped']} skipped, {summary['failed']} failed")
    elif (pairs := rebuild_analysis(output_dir)):
        message = f"wrote {output_dir / 'analysis.json'} and analysis.csv from {pairs} (layer, codes) pairs"
    else:
        raise OutputError(f"{output_dir}: no run store (OUT/.mgan) and no analysis pairs (OUT/runs/…); "
                          "nothing was restored into it")
    if not quiet:
        stderr_console.print(message, soft_wrap=True)
