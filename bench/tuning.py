"""Generator tuning on real faces: plain multi-code inversion at more steps vs fewer steps + tuning.

    python -m bench.tuning [--faces 182650,182651,182652,182653] [--tasks invert,colorize,inpaint,superres,denoise]

For each task, the built-in ``dcgan64-<task>`` preset (N = 20, ℓ = 2, VGG λ = 1, Adam with a cosine
schedule) on 4 CelebA test faces of ``../shared/data/celeba64`` (centre-cropped, 64×64) that the README
uses nowhere else. The observed images are made from the faces: ``invert`` the face itself, ``colorize``
its luma, ``superres`` the task's ×4 bicubic down-sampling, ``inpaint`` a 24×32 hole in the middle,
``denoise`` Gaussian noise σ = 25/255·2 (seeded). Rows: plain inversion at each of ``--plain`` steps, and
inversion at ``--base`` steps followed by :func:`mgan_cli.core.tuning.tune` (all layers, PTI locality term) at
each of ``--tune`` steps. Outputs go through the task's ``finalize`` (colour merge, known-pixel paste) and are
scored against the clean face: PSNR and LPIPS (alex) means over the faces, and wall seconds per image of
the whole restoration (inversion + tuning). Prints a markdown table and writes ``--json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from mgan_cli.config.presets import Preset, load_preset
from mgan_cli.core.degradations import Degradation, build_degradation
from mgan_cli.core.engine import EngineOptions, MultiCodeModel, invert
from mgan_cli.core.inversion import Inversion
from mgan_cli.core.losses import ReconstructionLoss
from mgan_cli.core.tuning import TuningSettings, tune, tuning_autocast
from mgan_cli.generators.base import Generator
from mgan_cli.metrics.measure import measure
from mgan_cli.utils.imageio import to_tensor, to_uint8
from mgan_cli.weights.loading import load_generator

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def _face(path: Path, size: int = 64) -> torch.Tensor:
    from PIL import Image

    image = Image.open(path).convert("RGB")
    side = min(image.size)
    left, top = (image.size[0] - side) // 2, (image.size[1] - side) // 2
    image = image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BICUBIC)
    return to_tensor(image)


def _observed(task: str, degradation: torch.nn.Module, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    mask = None
    if task == "inpaint":
        mask = torch.zeros(len(faces), 1, 64, 64)
        mask[:, :, 20:44, 16:48] = 1.0
        return degradation(faces, mask), mask
    if task == "denoise":
        noise = torch.randn(faces.shape, generator=torch.Generator().manual_seed(0)) * (25 / 255 * 2)
        return (faces + noise).clamp(-1, 1), None
    if task == "invert":
        return faces, None
    return degradation(faces), None


def _tuned_snapshots(generator: torch.nn.Module, inversion: Inversion, observed: torch.Tensor,
                     degradation: torch.nn.Module, loss: ReconstructionLoss, steps: list[int], seed: int,
                     mask: torch.Tensor | None, autocast: torch.dtype | None) -> dict[int, tuple[torch.Tensor, float]]:
    """Tune once to ``max(steps)``; the image rendered and the tuning seconds spent at each of ``steps``."""
    found: dict[int, tuple[torch.Tensor, float]] = {}
    started = time.perf_counter()
    paused = 0.0

    def snap(step: int, tuned: torch.nn.Module) -> None:
        nonlocal paused
        if step not in steps:
            return
        seconds = time.perf_counter() - started - paused
        rendering = time.perf_counter()
        with torch.no_grad():
            model = MultiCodeModel(tuned, inversion.layer, inversion.space, inversion.composition)
            found[step] = model(inversion.codes[None], inversion.alphas[None]).float()[0], seconds
        paused += time.perf_counter() - rendering

    tune(generator, inversion, observed, degradation, loss, TuningSettings(steps=max(steps)), seed, mask=mask,
         autocast_dtype=autocast, snapshot=snap)
    return found


def preset_parts(name: str) -> tuple[Preset, Generator, Degradation, ReconstructionLoss]:
    """The built-in preset ``name`` and what a restoration with it needs: its generator, degradation and loss."""
    preset = load_preset(name)
    return preset, load_generator(preset.generator), build_degradation(preset.degradation), preset.loss.build()


def run_task(task: str, faces: torch.Tensor, plain: list[int], base: int, tune_steps: list[int],
             options: EngineOptions) -> list[dict[str, object]]:
    preset, generator, degradation, loss = preset_parts(f"dcgan64-{task}")
    observed, mask = _observed(task, degradation, faces)
    full = observed if observed.shape[-1] == 64 else torch.nn.functional.interpolate(
        observed, size=64, mode="bicubic", align_corners=False).clamp(-1, 1)
    references = list(to_uint8(faces))
    seeds = list(range(len(faces)))
    autocast = tuning_autocast(options.precision)
    rows = []

    def score(label: str, images: torch.Tensor, seconds: float) -> None:
        outputs = to_uint8(degradation.finalize(images, full, mask))
        metrics, _ = measure(outputs, references, ("psnr", "lpips"), torch.device("cpu"))
        row = {"task": task, "method": label, "psnr": sum(m["psnr"] for m in metrics) / len(metrics),
               "lpips": sum(m["lpips"] for m in metrics) / len(metrics), "seconds_per_image": seconds / len(faces)}
        rows.append(row)
        print(json.dumps(row), flush=True)

    for steps in sorted(set(plain) | {base}):
        settings = dataclasses.replace(preset.inversion, iterations=steps)
        started = time.perf_counter()
        result = invert(generator, observed, degradation, loss, settings, seeds, mask=mask, options=options)
        elapsed = time.perf_counter() - started
        if steps in plain:
            score(f"plain {steps}", result.images, elapsed)
        if steps != base:
            continue

        # one tuning run per image to the largest step count, scored at every requested count (Adam at a
        # constant rate: the first k steps of a longer run are exactly a k-step run)
        images: dict[int, list[torch.Tensor]] = {k: [] for k in tune_steps}
        tuning_seconds = dict.fromkeys(tune_steps, 0.0)
        for b in range(len(faces)):
            inversion = Inversion(result.codes[b], result.alphas[b], None, settings.layer, settings.space,
                                  settings.composition)
            for step, (image, seconds) in _tuned_snapshots(generator, inversion, observed[b], degradation, loss,
                                                           tune_steps, b, None if mask is None else mask[b],
                                                           autocast).items():
                images[step].append(image)
                tuning_seconds[step] += seconds
        for extra in tune_steps:
            score(f"{base} + tune {extra}", torch.stack(images[extra]), elapsed + tuning_seconds[extra])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", default="182650,182651,182652,182653")
    parser.add_argument("--tasks", default="invert,colorize,inpaint,superres,denoise")
    parser.add_argument("--plain", default="200,600,1200")
    parser.add_argument("--base", type=int, default=200)
    parser.add_argument("--tune", default="50,100,200")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    faces = torch.stack([_face(SHARED / "data" / "celeba64" / f"{name}.jpg") for name in args.faces.split(",")])
    options = EngineOptions.for_device(torch.device("cpu"), args.precision)
    rows = []
    for task in args.tasks.split(","):
        rows += run_task(task, faces, [int(s) for s in args.plain.split(",")], args.base,
                         [int(s) for s in args.tune.split(",")], options)
    print(f"\nprecision {options.precision}, {len(faces)} faces ({args.faces})\n")
    print("| task | method | PSNR (dB) | LPIPS | seconds / image |\n|---|---|---:|---:|---:|")
    for row in rows:
        print(f"| {row['task']} | {row['method']} | {row['psnr']:.2f} | {row['lpips']:.3f} | "
              f"{row['seconds_per_image']:.1f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
