"""mgan: batch image restoration with the multi-code GAN prior (Gu, Shen, Zhou, CVPR 2020).

The public Python API (everything in ``__all__``; the rest of the package is internal and may change)::

    import mgan_cli as mgan

    G = mgan.load_generator("dcgan64-digiface", device="cpu")
    restorer = mgan.Restorer(G, task="superres", scale=4, iterations=300, codes=20, device="cpu")
    out = restorer(low, seed=0)    # low: float [B, 3, 16, 16] in [0, 1], uint8, or a list of PIL images
    out.images                     # float [B, 3, 64, 64] in [0, 1] on the CPU, as the CLI writes it
    frames = mgan.edit(G, out.inversions[0], direction="sefa:1", strengths=[-3, 0, 3])
    mgan.metrics.psnr(out.images, originals)

Images are [0, 1] floats (or uint8, or PIL) everywhere in this API; see :mod:`mgan_cli.api`.
"""

from mgan_cli import metrics
from mgan_cli.api import (
    Restoration,
    Restorer,
    directions,
    edit,
    load_generator,
    load_latents,
    save_latents,
)
from mgan_cli.core.inversion import Inversion
from mgan_cli.edit.directions import Directions
from mgan_cli.edit.frames import Direction
from mgan_cli.errors import InputValueError, MganError
from mgan_cli.generators import Generator
from mgan_cli.run.files import FilesOutcome, RunInterrupted
from mgan_cli.run.job import RunEvents
from mgan_cli.version import __version__

__all__ = [
    "Direction",
    "Directions",
    "FilesOutcome",
    "Generator",
    "InputValueError",
    "Inversion",
    "MganError",
    "Restoration",
    "Restorer",
    "RunEvents",
    "RunInterrupted",
    "__version__",
    "directions",
    "edit",
    "load_generator",
    "load_latents",
    "metrics",
    "save_latents",
]
