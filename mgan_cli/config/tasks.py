"""The restoration tasks the command line offers (one registered entry per command)."""

from __future__ import annotations

from dataclasses import dataclass

from mgan_cli.utils.registry import Registry


@dataclass(frozen=True)
class Task:
    """A restoration command: its default preset, and how its report measures quality.

    ``compare_to_input``: without ``--reference``, full-reference metrics compare the output with the
    input (meaningful only when the input is what the output should reproduce: inversion).
    ``baseline``: the registered classical baseline (:mod:`mgan_cli.metrics.baselines`) each report row also
    scores against the reference, or ``None``.
    """

    name: str
    summary: str
    default_preset: str
    compare_to_input: bool = False
    needs_mask: bool = False
    needs_scale: bool = False
    baseline: str | None = None


TASKS: Registry[Task] = Registry("task")


def _register(task: Task) -> Task:
    return TASKS.register(task.name)(task)


_register(Task("invert", "Reconstruct images with the multi-code GAN prior (GAN inversion).",
               "dcgan64-invert", compare_to_input=True))
_register(Task("colorize", "Colourise greyscale images: keep their luma, take chroma from the prior.",
               "dcgan64-colorize", baseline="observed"))
_register(Task("superres", "Super-resolve low-resolution images to the generator's resolution.",
               "dcgan64-superres", needs_scale=True, baseline="bicubic"))
_register(Task("inpaint", "Fill in the missing pixels given by a mask (white = missing).",
               "dcgan64-inpaint", needs_mask=True, baseline="telea"))
_register(Task("denoise", "Remove noise by projecting onto the generator's image manifold.",
               "dcgan64-denoise", baseline="observed"))
