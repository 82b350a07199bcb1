"""``mgan edit``: invert each image with the multi-code prior, then render it moved along a direction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from mgan_cli.cli.common import exit_for_failures, reports_errors, stderr_console
from mgan_cli.cli.restore import _common_options, extras_options, run_task
from mgan_cli.config.presets import Preset
from mgan_cli.config.tasks import TASKS
from mgan_cli.core.tuning import TuningSettings
from mgan_cli.edit.frames import (
    DEFAULT_STRENGTHS,
)
from mgan_cli.edit.saved import render_saved, resolve_edit
from mgan_cli.run.extras import RunExtras
from mgan_cli.utils.devices import resolve_device

HELP = """Semantic editing: invert each INPUT with the multi-code prior, then render one frame per strength s
with every code moved by s·d in the codes' latent space (z for DCGAN/PGGAN, w for StyleGANs), importances and
the upper latent kept. Strength 0 is the inversion itself. For StyleGANs the codes render the style rows below
the composing layer ℓ and the upper latent the rows from ℓ up, so a W edit reaches rows 0 … ℓ-1; --edit-upper
moves the upper latent's rows too (the whole W+ stack), for attributes that live in rows at or above ℓ.

Writes OUT/<stem>.png (the inversion), OUT/frames/<stem>_<s>.png per strength, OUT/strips/<stem>.png (the
frames side by side) and OUT/report.json whose rows list their frames ([{strength, path}]) and the metrics of
the strength-0 image against the input. Every inversion option and --preset apply (the task is `invert`).

--direction is a registry boundary (`mgan weights list`, kind boundary: InterFaceGAN's, refused for another
generator or latent space), a .npy file ([D] or [1, D]; FILE.npy:K for row K of `mgan directions` output),
or sefa:K / pca:K (direction K, from 0, computed for this generator). --condition B removes d's component
along B (InterFaceGAN's conditional editing; repeatable).

With --from-latents DIR nothing is inverted: the .safetensors files that --save-latents wrote are rendered
exactly as they were (with their tuned weights, if any); latents of another generator are refused. Each file
is recorded in OUT's run store like any task's input (OUT may hold other runs, e.g. the invert run that saved
the latents: the report shows them all); the same command again skips what is done, and other settings are
refused for files already rendered unless --overwrite.

\b
Examples:
  mgan edit faces/ -o edits/ --direction sefa:0 --strengths -3,0,3
  mgan edit faces/ -o edits/ --generator pggan-celebahq1024 --direction pggan-celebahq1024-smile \\
      --condition pggan-celebahq1024-gender
  mgan invert faces/ -o inv/ --save-latents
  mgan edit --from-latents inv/latents -o edits/ --direction dirs/sefa.npy:2
"""


def _edit_options(command: Any) -> Any:
    options = [
        click.option("--direction", required=True, help="Boundary name, FILE.npy[:K], or sefa:K / pca:K."),
        click.option("--strengths", default=",".join(f"{s:g}" for s in DEFAULT_STRENGTHS), show_default=True,
                     help="Comma-separated strengths s, one frame each."),
        click.option("--condition", "conditions", multiple=True, help="Remove the component along this direction."),
        click.option("--edit-layers", help="W/W+ codes only: move only these w+ rows (from 0), e.g. 4-7."),
        click.option("--edit-upper", is_flag=True,
                     help="W/W+ codes only: move the upper latent's rows (at and above ℓ) as well as the codes."),
        click.option("--from-latents", type=click.Path(exists=True, file_okay=False, path_type=Path),
                     help="Edit saved latents (--save-latents) instead of inverting INPUTs."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.command("edit", help=HELP)
@_common_options
@_edit_options
@extras_options
@reports_errors
def edit_command(direction: str, strengths: str, conditions: tuple[str, ...], edit_layers: str | None,
                 edit_upper: bool, from_latents: Path | None, tune_generator: int | None, tune_layers: str | None,
                 save_latents: bool, **kwargs: Any) -> None:
    if from_latents is not None:
        if kwargs.get("shard"):
            raise click.UsageError("--shard does not apply to --from-latents (it renders every saved file)")
        kwargs.pop("shard", None)
        _edit_saved(from_latents, direction, strengths, conditions, edit_layers, edit_upper, kwargs)
        return
    def make_extras(preset: Preset, tuning: TuningSettings) -> RunExtras:
        edit = resolve_edit(preset.generator, preset.inversion.space, direction, conditions, strengths, edit_layers,
                            edit_upper)
        return RunExtras(tuning, save_latents, edit)

    run_task(TASKS.get("invert"), make_extras=make_extras, tune_generator=tune_generator, tune_layers=tune_layers,
             **kwargs)


# the INPUT argument is optional with --from-latents
for _param in edit_command.params:
    if _param.name == "inputs":
        _param.required = False


def _edit_saved(directory: Path, direction: str, strengths: str, conditions: tuple[str, ...],
                edit_layers: str | None, edit_upper: bool, options: dict[str, Any]) -> None:
    """Render the saved latents in ``directory`` (no inversion; :func:`mgan_cli.edit.saved.render_saved`)."""
    if options.get("inputs"):
        raise click.UsageError("give either INPUT images or --from-latents DIR, not both")
    output_dir: Path = options["output_dir"]
    outcome = render_saved(
        directory, output_dir, direction=direction, strengths=strengths, conditions=conditions,
        edit_layers=edit_layers, edit_upper=edit_upper, device=resolve_device(options.get("device") or "auto"),
        generator=options.get("generator"), overwrite=bool(options.get("overwrite")),
        channels_last=options.get("channels_last"),
        on_warning=lambda line: stderr_console.print(f"[yellow]mgan: warning:[/] {escape(line)}", soft_wrap=True))
    if not options.get("quiet"):
        skipped = f" ({outcome.skipped} skipped: made with these settings already)" if outcome.skipped else ""
        stderr_console.print(f"wrote {outcome.strips} strips to {output_dir / 'strips'}{skipped} and {outcome.report}")
    exit_for_failures(outcome.failed, len(outcome.rows))
