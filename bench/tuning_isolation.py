"""How generator tuning keeps images apart: a copy per image vs stacked per-image weight deltas.

    python -m bench.tuning_isolation [--images 4] [--steps 20] [--precision auto]

Issue 12 lets tuning isolate images either by one copy of the generator per image (what
:func:`mgan_cli.core.tuning.tune` does: images tuned one after another) or by per-image weights stacked along a
batch axis and rendered under ``torch.func.vmap`` (one step tunes every image of a batch at once). This
script measures both on the same pivots: ``dcgan64-invert`` (N = 20, ℓ = 2, VGG λ = 1), tuning all layers
with the PTI locality term, on the 4 CelebA faces of ``bench.tuning``, after a short inversion.

The stacked variant here is a measuring prototype written for this comparison (DCGAN's plain layers; it is
not wired into mgan): Adam is element-wise, so one Adam over the stacked ``[B, ...]`` weights is B
independent Adams, and the summed per-image loss gives each image's weights only its own gradient; the
same locality moves are drawn per image from the same seeded generators, so both variants compute the same
maths. Prints seconds per tuning step per image for each, and the largest pixel difference between their
tuned renders (float rounding of batched vs single convolutions).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import torch
from torch.func import functional_call, vmap

from bench.tuning import SHARED, _face, preset_parts
from mgan_cli.core.engine import EngineOptions, MultiCodeModel, invert
from mgan_cli.core.inversion import Inversion
from mgan_cli.core.losses import ReconstructionLoss
from mgan_cli.core.tuning import TuningSettings, tune, tuning_autocast


def tune_stacked(generator: torch.nn.Module, inversions: list[Inversion], observed: torch.Tensor,
                 loss: ReconstructionLoss, settings: TuningSettings, seeds: list[int],
                 autocast: torch.dtype | None) -> torch.Tensor:
    """Tune B per-image weight sets at once (identity degradation, all layers); the tuned renders ``[B, 3, R, R]``."""
    first = inversions[0]
    model = MultiCodeModel(generator, first.layer, first.space, first.composition)
    count = len(inversions)
    stacked = {name: p.detach()[None].repeat(count, *[1] * p.dim()).requires_grad_(True)
               for name, p in model.named_parameters()}
    buffers = dict(model.named_buffers())
    codes = torch.stack([inv.codes for inv in inversions])  # [B, N, D]
    alphas = torch.stack([inv.alphas for inv in inversions])  # [B, N, C]
    optimizer = torch.optim.Adam(list(stacked.values()), lr=settings.lr)
    target_features = loss.prepare(observed)
    rngs = [torch.Generator().manual_seed(int(seed)) for seed in seeds]

    def render_one(params: dict[str, torch.Tensor], one_codes: torch.Tensor, one_alphas: torch.Tensor) -> torch.Tensor:
        return functional_call(model, {**params, **buffers}, (one_codes[None], one_alphas[None]))[0]

    render = vmap(render_one)
    frozen = MultiCodeModel(generator, first.layer, first.space, first.composition)
    enabled = autocast is not None
    for step in range(settings.steps):
        with torch.autocast("cpu", dtype=autocast or torch.float32, enabled=enabled):
            images = render(stacked, codes, alphas).float()
            total = loss(images, observed, target_features).sum()
            if settings.locality_weight > 0 and step % settings.locality_every == 0:
                moves = torch.stack([torch.randn(codes.shape[2:], generator=rng) for rng in rngs])
                nearby = codes + settings.locality_radius * moves[:, None] / moves.norm(dim=1)[:, None, None]
                with torch.no_grad():
                    expected = frozen(nearby, alphas).float()
                rendered = render(stacked, nearby, alphas).float()
                # the per-image mean of tune(): summed over images, each image's weights see only its own term
                total = total + settings.locality_weight * (rendered - expected).square().flatten(1).mean(1).sum()
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
    with torch.no_grad():
        return render({k: v.detach() for k, v in stacked.items()}, codes, alphas).float()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", default="182650,182651,182652,182653")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--inversion-steps", type=int, default=50)
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()
    faces = torch.stack([_face(SHARED / "data" / "celeba64" / f"{name}.jpg") for name in args.faces.split(",")])
    preset, generator, degradation, loss = preset_parts("dcgan64-invert")
    options = EngineOptions.for_device(torch.device("cpu"), args.precision)
    autocast = tuning_autocast(options.precision)
    settings = dataclasses.replace(preset.inversion, iterations=args.inversion_steps)
    seeds = list(range(len(faces)))
    result = invert(generator, faces, degradation, loss, settings, seeds, options=options)
    inversions = [Inversion(result.codes[b], result.alphas[b], None, settings.layer, settings.space,
                            settings.composition) for b in range(len(faces))]
    tuning = TuningSettings(steps=args.steps)

    started = time.perf_counter()
    copies = []
    for b, inversion in enumerate(inversions):
        tuned = tune(generator, inversion, faces[b], degradation, loss, tuning, b, autocast_dtype=autocast)
        with torch.no_grad():
            model = MultiCodeModel(tuned, inversion.layer, inversion.space, inversion.composition)
            copies.append(model(inversion.codes[None], inversion.alphas[None]).float()[0])
    copy_seconds = time.perf_counter() - started

    started = time.perf_counter()
    stacked = tune_stacked(generator, inversions, faces, loss, tuning, seeds, autocast)
    stacked_seconds = time.perf_counter() - started

    per_step = len(faces) * args.steps
    row = {"images": len(faces), "steps": args.steps, "precision": options.precision,
           "copy_per_image_s_per_step_per_image": copy_seconds / per_step,
           "stacked_deltas_vmap_s_per_step_per_image": stacked_seconds / per_step,
           "max_abs_pixel_difference": float((torch.stack(copies) - stacked).abs().max()),
           "threads": torch.get_num_threads()}
    print(json.dumps(row))


if __name__ == "__main__":
    main()
