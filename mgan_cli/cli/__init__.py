"""The ``mgan`` command line: restoration tasks, presets, weights and metrics."""

from __future__ import annotations

import click

from mgan_cli.cli.metrics_cmd import metrics_command
from mgan_cli.cli.presets_cmd import presets_group
from mgan_cli.cli.restore import task_commands
from mgan_cli.cli.weights_cmd import weights_group
from mgan_cli.version import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="mgan")
def main() -> None:
    """Batch image restoration with the multi-code GAN prior (mGANprior, Gu, Shen, Zhou, CVPR 2020).

    A pretrained generator is split at a layer ℓ; N latent codes are rendered up to ℓ, their feature maps
    are composed with learned per-channel importances, and codes and importances are optimised so that
    the task's degradation of the result matches each input image.

    \b
    Examples:
      mgan invert faces/ -o restored/
      mgan superres lowres/ -o sr/ --scale 4 --json > results.jsonl
      mgan inpaint photos/ -o filled/ --mask mask.png
      mgan presets show dcgan64-invert
      mgan metrics restored/ --reference originals/
    """


for _command in task_commands():
    main.add_command(_command)
main.add_command(presets_group)
main.add_command(weights_group)
main.add_command(metrics_command)
from mgan_cli.cli.analyze_cmd import analyze_command  # noqa: E402 - after the group it joins

main.add_command(analyze_command)

from mgan_cli.cli.directions_cmd import directions_command  # noqa: E402 - after the group it joins

main.add_command(directions_command)

from mgan_cli.cli.edit_cmd import edit_command  # noqa: E402 - after the group it joins

main.add_command(edit_command)

from mgan_cli.cli.encoder_cmd import encoder_group  # noqa: E402 - after the group it joins

main.add_command(encoder_group)

from mgan_cli.cli.report_cmd import report_command  # noqa: E402 - after the group it joins

main.add_command(report_command)
