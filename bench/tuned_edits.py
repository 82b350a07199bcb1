"""Do edits of a tuned generator stay edits? In-domain ground truth, with and without PTI's locality term.

    python -m bench.tuned_edits [--images 8] [--base 200] [--tune 50,100,200] [--layers all|upper]

Targets are ``G(z)`` for seeded hidden codes ``z`` of the embedded DCGAN (``dcgan64-digiface``), so the true
edit of each target along a direction ``d`` is known: ``G(z + s·d)``. Each target is inverted with the
``dcgan64-invert`` preset at ``--base`` steps, then the generator is tuned (all layers) for each of ``--tune``
steps, with the locality term (weight 1, radius 3: mgan's default) and without it (weight 0). For the first
two SeFa directions and strengths ±1.5, ±3 the edited frames are compared with the true edits: mean PSNR
(dB) over images, directions and strengths, beside the strength-0 PSNR against the target. A tuning that
overfits the pivot raises the strength-0 PSNR and lowers the edited frames' PSNR; the locality term is
there to prevent that. Prints a markdown table and, with ``--json``, writes the rows.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from bench.tuning import preset_parts
from mgan_cli.core.engine import EngineOptions, invert
from mgan_cli.core.inversion import Inversion
from mgan_cli.core.tuning import TuningSettings, tune, tuning_autocast
from mgan_cli.edit import directions
from mgan_cli.edit import frames as editing
from mgan_cli.edit.frames import Direction

STRENGTHS = (-3.0, -1.5, 0.0, 1.5, 3.0)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR of images in [-1, 1] (peak-to-peak 2), after clamping ``a`` as a written PNG would be."""
    mse = float((a.clamp(-1, 1) - b.clamp(-1, 1)).square().mean())
    return 10 * torch.log10(torch.tensor(4.0 / max(mse, 1e-12))).item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--base", type=int, default=200)
    parser.add_argument("--tune", default="50,100,200")
    parser.add_argument("--layers", choices=("all", "upper"), default="all", help="which weights tuning changes")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    preset, generator, degradation, loss = preset_parts("dcgan64-invert")
    options = EngineOptions.for_device(torch.device("cpu"), args.precision)
    autocast = tuning_autocast(options.precision)
    hidden = torch.randn(args.images, 100, generator=torch.Generator().manual_seed(1234))
    with torch.no_grad():
        targets = generator(hidden)
    settings = dataclasses.replace(preset.inversion, iterations=args.base)
    seeds = list(range(args.images))
    result = invert(generator, targets, degradation, loss, settings, seeds, options=options)
    found = directions.sefa(generator, 2).vectors
    edit_directions = [Direction(found[k], "z", f"sefa:{k}") for k in range(2)]
    strengths = torch.tensor(STRENGTHS)
    truths = []  # per image, per direction: [S, 3, R, R]
    with torch.no_grad():
        for b in range(args.images):
            truths.append([generator(hidden[b:b + 1] + strengths[:, None] * d.vector) for d in edit_directions])

    def psnrs(b: int, model: torch.nn.Module) -> tuple[list[float], list[float]]:
        """Image b rendered by ``model``: PSNRs of its strength-0 frames and of its edited frames."""
        inversion = Inversion(result.codes[b], result.alphas[b], None, settings.layer, settings.space,
                              settings.composition)
        kept, moved = [], []
        for d, direction in enumerate(edit_directions):
            frames = editing.render_frames(model, inversion, direction, STRENGTHS)
            for i, s in enumerate(STRENGTHS):
                (kept if s == 0 else moved).append(_psnr(frames[i], truths[b][d][i]))
        return kept, moved

    def row(label: str, kept: list[float], moved: list[float], seconds: float) -> dict[str, object]:
        found = {"method": label, "strength_0_psnr": sum(kept) / len(kept), "edited_psnr": sum(moved) / len(moved),
                 "tuning_seconds_per_image": seconds / args.images}
        print(json.dumps(found), flush=True)
        return found

    plain = [psnrs(b, generator) for b in range(args.images)]
    rows = [row(f"plain {args.base}", [v for k, _ in plain for v in k], [v for _, m in plain for v in m], 0.0)]
    wanted = [int(s) for s in args.tune.split(",")]

    def tuned_scores(b: int, locality: float) -> dict[int, tuple[list[float], list[float], float]]:
        """One tuning run of image b to the largest step count, scored at each requested count (what a run of
        that many steps returns): its PSNRs and tuning seconds (the scoring time left out)."""
        found: dict[int, tuple[list[float], list[float], float]] = {}
        started, paused = time.perf_counter(), 0.0

        def snapshot(step: int, tuned: torch.nn.Module) -> None:
            nonlocal paused
            if step in wanted:
                seconds = time.perf_counter() - started - paused
                scoring = time.perf_counter()
                found[step] = (*psnrs(b, tuned), seconds)
                paused += time.perf_counter() - scoring

        inversion = Inversion(result.codes[b], result.alphas[b], None, settings.layer, settings.space,
                              settings.composition)
        tune(generator, inversion, targets[b], degradation, loss,
             TuningSettings(steps=max(wanted), layers=args.layers, locality_weight=locality), b,
             autocast_dtype=autocast, snapshot=snapshot)
        return found

    for locality in (1.0, 0.0):
        per_image = [tuned_scores(b, locality) for b in range(args.images)]
        for steps in wanted:
            above = " above ℓ" if args.layers == "upper" else ""
            label = f"{args.base} + tune {steps}{above}" + ("" if locality else ", no locality term")
            rows.append(row(label, [v for scores in per_image for v in scores[steps][0]],
                            [v for scores in per_image for v in scores[steps][1]],
                            sum(scores[steps][2] for scores in per_image)))
    print(f"\n{args.images} in-domain targets, SeFa 0-1, strengths ±1.5, ±3, precision {options.precision}\n")
    print("| method | strength 0 vs target (dB) | edited frames vs true edits (dB) | tuning s / image |")
    print("|---|---:|---:|---:|")
    for row in rows:
        print(f"| {row['method']} | {row['strength_0_psnr']:.2f} | {row['edited_psnr']:.2f} | "
              f"{row['tuning_seconds_per_image']:.1f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
