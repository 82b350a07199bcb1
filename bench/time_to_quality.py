"""Time to quality: PSNR and LPIPS against wall time for each start recipe and task (issue 21).

For every task, every recipe (start ``random`` or ``encoder``, generator tuning steps) and every number of
iterations, the four faces are restored from scratch through the public API (``mgan.Restorer``: a run of that
many iterations, so the learning-rate schedule is the one a user gets) and timed; PSNR and LPIPS are against the
original 64×64 face. The one-off encoder training is not counted (``mgan encoder train`` first). Writes a
matplotlib figure (PSNR against seconds per image, one line per recipe, one panel per task) and appends a table to
BENCHMARKS.md.

    python -m bench.time_to_quality                      # every task, the embedded DCGAN
    python -m bench.time_to_quality --tasks invert --no-write

Faces: CelebA 182690, 182693, 182696, 182699 (in ../shared/data/celeba64), used nowhere else in the README and tests.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import mgan_cli as mgan
from bench.harness import celeba_face

FACES = ("182690.jpg", "182693.jpg", "182696.jpg", "182699.jpg")
#: a second set, used nowhere else either, on which the invert recipes are checked (a recipe chosen on one set of
#: four faces is not trusted until another set agrees)
CHECK_FACES = ("182670.jpg", "182671.jpg", "182672.jpg", "182673.jpg")
CHECK_PLAN: list[tuple[Recipe, tuple[int | None, ...]]] = []  # filled below, once Recipe exists
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REPO = Path(__file__).resolve().parents[1]
NOISE_SIGMA = 25.0  # denoise inputs: Gaussian noise of this σ on the 0-255 scale, seeded per face


@dataclass(frozen=True)
class Recipe:
    init: str  # random | encoder | auto (what a user gets by default: the encoder, once trained)
    tune_steps: int | None = 0  # None: the preset's recipe decides (the default)
    tune_layers: str | None = None  # None: all for tune_steps, upper for the preset's recipe

    @property
    def label(self) -> str:
        name = "default (encoder trained)" if self.init == "auto" else self.init
        above = " above ℓ" if self.tune_layers == "upper" else ""
        return name + (f" + tune {self.tune_steps}{above}" if self.tune_steps else "")


DEFAULT = None  # as iterations: the preset's own count (with init auto and an encoder: its encoder_iterations)

#: per task: (recipe, iteration counts) — invert gets the full curves, the other tasks the points that decide;
#: every task: random and encoder starts, each with and without generator tuning, and the default recipe
PLAN: dict[str, list[tuple[Recipe, tuple[int | None, ...]]]] = {
    "invert": [(Recipe("random"), (100, 200, 400, 600, 1200)),
               (Recipe("encoder"), (0, 50, 100, 200, 300, 400)),
               (Recipe("encoder", 100), (100, 200)),
               (Recipe("encoder", 100, "upper"), (100, 200, 300)),
               (Recipe("random", 100), (200,)),
               (Recipe("random", 100, "upper"), (200,)),
               (Recipe("auto", None), (DEFAULT,))],
    **{task: [(Recipe("random"), (200, DEFAULT)), (Recipe("encoder"), (100, 200)), (Recipe("random", 100), (200,)),
              (Recipe("encoder", 100), (100,)), (Recipe("auto", None), (DEFAULT,))]
       for task in ("colorize", "superres", "inpaint", "denoise")},
}
CHECK_PLAN += [(Recipe("random"), (375, 600, 1200)), (Recipe("encoder"), (375, 600)),
               (Recipe("encoder", 100, "upper"), (200,)), (Recipe("auto", None), (DEFAULT,))]


@dataclass
class Point:
    task: str
    recipe: str
    iterations: int
    seconds: float  # wall time per image
    psnr: float  # means over the faces
    lpips: float


def observations(task: str, faces: list[Image.Image]) -> tuple[list[Image.Image], list[Image.Image] | None]:
    """What each task observes of each face, and its masks (inpaint: a centre hole)."""
    if task == "colorize":
        return [face.convert("L") for face in faces], None
    if task == "superres":
        return [face.resize((16, 16), Image.Resampling.BICUBIC) for face in faces], None
    if task == "denoise":
        noisy = []
        for index, face in enumerate(faces):
            rng = np.random.default_rng(index)
            pixels = np.asarray(face, dtype=np.float64) + rng.normal(0, NOISE_SIGMA, (64, 64, 3))
            noisy.append(Image.fromarray(np.clip(np.round(pixels), 0, 255).astype(np.uint8)))
        return noisy, None
    if task == "inpaint":
        hole = np.zeros((64, 64), dtype=np.uint8)
        hole[20:44, 16:48] = 255
        return faces, [Image.fromarray(hole)]
    return faces, None


def measure(generator: mgan.Generator, task: str, recipe: Recipe, iterations: int | None, faces: list[Image.Image],
            originals: torch.Tensor, names: tuple[str, ...] = FACES) -> Point:
    """One recipe on ``faces`` (named ``names``: the per-image seeds come from the names)."""
    observed, masks = observations(task, faces)
    overrides = {"scale": 4} if task == "superres" else {}
    restorer = mgan.Restorer(generator, task, device="cpu", iterations=iterations, init=recipe.init,
                             tune_steps=recipe.tune_steps, tune_layers=recipe.tune_layers, **overrides)
    iterations = restorer.preset.inversion.iterations
    # labelled with the tuning that runs (the default's: what the preset's recipe resolved to)
    label = dataclasses.replace(recipe, tune_steps=restorer.tuning.steps, tune_layers=restorer.tuning.layers).label
    if restorer.preset.inversion.init == "encoder":
        restorer._batches.encoder  # noqa: B018 - the one-off load is not part of the timing
    started = time.perf_counter()
    out = restorer(observed, masks, names=list(names))
    seconds = (time.perf_counter() - started) / len(faces)
    if any(out.failed):
        raise RuntimeError(f"{task} {recipe.label} {iterations}: {out.failed}")
    return Point(task, label, iterations, seconds, float(mgan.metrics.psnr(out.images, originals).mean()),
                 float(mgan.metrics.lpips(out.images, originals).mean()))


def figure(points: list[Point], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(p.task for p in points))
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.6), squeeze=False)
    for axis, task in zip(axes[0], tasks, strict=True):
        for label in dict.fromkeys(p.recipe for p in points if p.task == task):
            line = sorted((p for p in points if p.task == task and p.recipe == label), key=lambda p: p.seconds)
            default = label.startswith("default")
            axis.plot([p.seconds for p in line], [p.psnr for p in line], marker="*" if default else "o",
                      markersize=13 if default else 6, linestyle="none" if default else "-", label=label)
            for p in line:
                axis.annotate(str(p.iterations), (p.seconds, p.psnr), fontsize=7, xytext=(3, -9),
                              textcoords="offset points")
        axis.set_title(task)
        axis.set_xlabel("seconds per image (2-core CPU)")
        axis.set_ylabel("PSNR (dB)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    fig.suptitle("time to quality on 4 CelebA faces (labels: iterations)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(points: list[Point], encoder_info: dict[str, object], command: str) -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout
    lines = [f"## Time to quality: random vs encoder start (`{command}`)", "",
             f"{datetime.date.today()}, commit {commit.strip()}, 2-core CPU, fp32/bf16 as `--precision auto`, "
             f"faces CelebA {', '.join(f.removesuffix('.jpg') for f in FACES)}; encoder: "
             f"{encoder_info.get('steps')} steps, {float(encoder_info.get('seconds', 0)) / 60:.1f} minutes of training "
             "(not counted).",
             "", "| task | recipe | iterations | s/image | PSNR dB | LPIPS |", "|---|---|---:|---:|---:|---:|"]
    lines += [f"| {p.task} | {p.recipe} | {p.iterations} | {p.seconds:.2f} | {p.psnr:.2f} | {p.lpips:.4f} |"
              for p in points]
    return "\n".join(lines) + "\n" + verdict(points)


def verdict(points: list[Point]) -> str:
    """The issue's target, checked on each face set: the default invert (encoder trained) against 1200 random
    steps, and against the default without an encoder (600 random steps)."""
    lines = []
    for task in ("invert", "invert (check set)"):
        found = {(p.recipe, p.iterations): p for p in points if p.task == task}
        default = next((p for p in points if p.task == task and p.recipe.startswith("default")), None)
        if default is None:
            continue
        for iterations, target in ((1200, "1200 random steps"), (600, "the default without an encoder")):
            base = found.get(("random", iterations))
            if base is None:
                continue
            lines.append(f"- {task}: default with the encoder {default.psnr:.2f} dB / LPIPS {default.lpips:.4f} in "
                         f"{default.seconds:.2f} s against {target} ({base.psnr:.2f} dB / {base.lpips:.4f} in "
                         f"{base.seconds:.2f} s): {default.seconds / base.seconds:.2f}× the time, "
                         f"{default.psnr - base.psnr:+.2f} dB" + (_target(default, base) if iterations == 1200 else ""))
    return "\n" + "\n".join(lines) + "\n" if lines else ""


def _target(default: Point, base: Point) -> str:
    """The issue's target: at least the PSNR of 1200 random steps in at most 0.33× their wall time."""
    met = default.psnr >= base.psnr and default.seconds <= 0.33 * base.seconds
    return f" (target ≥ their PSNR in ≤ 0.33× their time: {'met' if met else 'not met'})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generator", default="dcgan64-digiface")
    parser.add_argument("--tasks", default=",".join(PLAN))
    parser.add_argument("--figure", type=Path, default=REPO / "docs" / "time_to_quality.png")
    parser.add_argument("--json", type=Path, help="also write the points here")
    parser.add_argument("--no-write", action="store_true", help="do not append to BENCHMARKS.md")
    args = parser.parse_args()
    torch.manual_seed(0)
    generator = mgan.load_generator(args.generator)
    faces = [celeba_face(SHARED / "data" / "celeba64" / name, 64) for name in FACES]
    originals = torch.stack([torch.from_numpy(np.asarray(f).copy()).permute(2, 0, 1) for f in faces])
    from mgan_cli.encoder import load_encoder

    encoder_info = load_encoder(args.generator).info
    points = []
    for task in args.tasks.split(","):
        measure(generator, task, Recipe("random"), 1, faces, originals)  # warm-up (first calls), not recorded
        for recipe, counts in PLAN[task]:
            for iterations in counts:
                point = measure(generator, task, recipe, iterations, faces, originals)
                points.append(point)
                print(f"{task:9s} {point.recipe:34s} {point.iterations:5d} it  {point.seconds:6.2f} s/image  "
                      f"PSNR {point.psnr:6.2f}  LPIPS {point.lpips:.4f}", flush=True)
    check_faces = [celeba_face(SHARED / "data" / "celeba64" / name, 64) for name in CHECK_FACES]
    check_originals = torch.stack([torch.from_numpy(np.asarray(f).copy()).permute(2, 0, 1) for f in check_faces])
    for recipe, counts in CHECK_PLAN if "invert" in args.tasks.split(",") else []:
        for iterations in counts:
            point = measure(generator, "invert", recipe, iterations, check_faces, check_originals, CHECK_FACES)
            point.task = "invert (check set)"
            points.append(point)
            print(f"{point.task} {point.recipe:34s} {point.iterations:5d} it  {point.seconds:6.2f} s/image  "
                  f"PSNR {point.psnr:6.2f}  LPIPS {point.lpips:.4f}", flush=True)
    figure(points, args.figure)
    if args.json:
        args.json.write_text(json.dumps([asdict(p) for p in points], indent=1))
    command = "python -m bench.time_to_quality" + (f" --tasks {args.tasks}" if args.tasks != ",".join(PLAN) else "")
    text = table(points, encoder_info, command)
    print(text)
    if not args.no_write:
        with (REPO / "BENCHMARKS.md").open("a") as handle:
            handle.write("\n" + text)


if __name__ == "__main__":
    main()
