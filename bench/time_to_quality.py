"""Time to quality: PSNR against wall time for each start recipe (issue 21). SKELETON: runs, but its default
budgets are not yet chosen from measurements, and no numbers in BENCHMARKS.md come from it yet.

For every recipe (start ``random`` or ``encoder``, generator tuning steps) and every number of iterations in
``--iterations``, each face is inverted from scratch (a run of that many iterations, so the learning-rate schedule
is the one a user gets) and timed; PSNR is against the original 64×64 face. Writes one line per recipe to a
matplotlib figure (PSNR against seconds per image) and appends a table to BENCHMARKS.md.

    python -m bench.time_to_quality --generator dcgan64-digiface --iterations 0,100,200,400,1200

The encoder must be trained first (``mgan encoder train GENERATOR``). The default faces are four CelebA test
images the README and tests use nowhere else (check again before publishing numbers).
"""

from __future__ import annotations

import argparse
import datetime
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mgan_cli.core.degradations import Identity
from mgan_cli.core.engine import InversionSettings, invert
from mgan_cli.core.losses import ReconstructionLoss
from mgan_cli.core.tuning import TuningSettings, tune
from mgan_cli.edit.frames import Inversion, render_inversion
from mgan_cli.encoder import encoder_initial_state, load_encoder
from mgan_cli.weights.loading import load_generator

FACES = ("182690.jpg", "182693.jpg", "182696.jpg", "182699.jpg")
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@dataclass(frozen=True)
class Recipe:
    init: str  # random | encoder
    tune_steps: int = 0

    @property
    def label(self) -> str:
        return self.init + (f" + tune {self.tune_steps}" if self.tune_steps else "")


@dataclass
class Point:
    recipe: Recipe
    iterations: int
    seconds: float  # per image
    psnr: float  # mean over the faces


def load_face(path: Path, size: int) -> torch.Tensor:
    """A CelebA photo as the dataset frames it (centre square, bicubic resize) -> ``[3, size, size]`` in [-1, 1]."""
    image = Image.open(path).convert("RGB")
    side = min(image.size)
    left, top = (image.size[0] - side) // 2, (image.size[1] - side) // 2
    image = image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BICUBIC)
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)


def psnr(restored: torch.Tensor, original: torch.Tensor) -> float:
    """PSNR in dB of uint8-quantised images in [-1, 1]."""
    a, b = (((t.clamp(-1, 1) + 1) * 127.5).round() for t in (restored, original))
    mse = float((a - b).square().mean())
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def run_point(generator_name: str, faces: torch.Tensor, recipe: Recipe, iterations: int,
              settings: InversionSettings, perceptual_weight: float) -> Point:
    generator = load_generator(generator_name)
    loss = ReconstructionLoss(perceptual_weight=perceptual_weight)
    loaded = load_encoder(generator_name) if recipe.init == "encoder" else None  # one-off, not timed
    scores, seconds = [], 0.0
    for index, face in enumerate(faces):
        observed, seeds = face[None], [index]
        started = time.perf_counter()
        start = None
        if loaded is not None:
            start = encoder_initial_state(loaded, generator, observed, Identity(), settings, seeds)
        run = InversionSettings(**{**settings.__dict__, "iterations": iterations})
        result = invert(generator, observed, Identity(), loss, run, seeds,
                        initial_codes=None if start is None else start.codes,
                        initial_upper=None if start is None else start.upper)
        image = result.images[0]
        if recipe.tune_steps:
            inversion = Inversion(result.codes[0], result.alphas[0],
                                  None if result.upper_latent is None else result.upper_latent[0],
                                  run.layer, run.space, run.composition)
            tuned = tune(generator, inversion, face, Identity(), loss, TuningSettings(steps=recipe.tune_steps),
                         seeds[0])
            image = render_inversion(tuned, inversion)
        seconds += time.perf_counter() - started
        scores.append(psnr(image.detach(), face))
    return Point(recipe, iterations, seconds / len(faces), float(np.mean(scores)))


def draw(points: Sequence[Point], figure: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(6, 4))
    for recipe in dict.fromkeys(p.recipe for p in points):
        line = sorted((p for p in points if p.recipe == recipe), key=lambda p: p.seconds)
        axis.plot([p.seconds for p in line], [p.psnr for p in line], marker="o", label=recipe.label)
    axis.set_xlabel("seconds per image")
    axis.set_ylabel("PSNR (dB)")
    axis.set_title(title)
    axis.legend()
    fig.tight_layout()
    fig.savefig(figure, dpi=120)


def table(points: Sequence[Point], title: str) -> str:
    rows = [f"\n### {title}\n", "| recipe | iterations | seconds / image | PSNR (dB) |", "|---|---:|---:|---:|"]
    rows += [f"| {p.recipe.label} | {p.iterations} | {p.seconds:.2f} | {p.psnr:.2f} |" for p in points]
    return "\n".join(rows) + "\n"


def main(argv: Sequence[str] | None = None) -> list[Point]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generator", default="dcgan64-digiface")
    parser.add_argument("--faces", default=",".join(FACES), help="CelebA file names under shared/data/celeba64")
    parser.add_argument("--iterations", default="0,100,200,400,1200")
    parser.add_argument("--tune", default="0,100", help="generator tuning steps per recipe")
    parser.add_argument("--inits", default="random,encoder")
    parser.add_argument("--codes", type=int, default=20)
    parser.add_argument("--layer", type=int, default=2)
    parser.add_argument("--perceptual-weight", type=float, default=1.0)
    parser.add_argument("--figure", type=Path, default=Path("docs/time_to_quality.png"))
    parser.add_argument("--markdown", type=Path, default=Path("BENCHMARKS.md"))
    args = parser.parse_args(argv)
    generator = load_generator(args.generator)
    faces = torch.stack([load_face(SHARED / "data" / "celeba64" / name, generator.resolution)
                         for name in args.faces.split(",")])
    settings = InversionSettings(codes=args.codes, layer=args.layer)
    recipes = [Recipe(init, int(steps)) for init in args.inits.split(",") for steps in args.tune.split(",")]
    points = [run_point(args.generator, faces, recipe, int(n), settings, args.perceptual_weight)
              for recipe in recipes for n in args.iterations.split(",")]
    title = (f"{args.generator}, {len(faces)} CelebA faces, {torch.get_num_threads()} threads, "
             f"{datetime.date.today().isoformat()}")
    args.figure.parent.mkdir(parents=True, exist_ok=True)
    draw(points, args.figure, args.generator)
    with open(args.markdown, "a", encoding="utf-8") as handle:
        handle.write(table(points, f"Time to quality: {title}") + f"\n![time to quality]({args.figure})\n")
    for point in points:
        print(f"{point.recipe.label:>22}  {point.iterations:5d} it  {point.seconds:8.2f} s  {point.psnr:6.2f} dB")
    return points


if __name__ == "__main__":
    main()
