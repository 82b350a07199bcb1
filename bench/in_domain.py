"""In-domain inversion: images rendered by a generator from hidden codes, recovered by multi-code inversion.

    python -m bench.in_domain [--targets 2] [--pggan-iterations 600] [--stylegan2-iterations 200]
                             [--stylegan3-iterations 200] [--threads 1] [--only stylegan3]

For PGGAN-256, StyleGAN2-256 and StyleGAN3-t-64 with reduced channel widths (see :data:`CONFIGS`; full widths are far
too slow on a CPU), randomly initialised with fixed seeds (:func:`random_generator`), K targets are
rendered from hidden random codes (seeds disjoint from the inversion's), clamped to [-1, 1], and inverted
with the engine (:func:`mgan_cli.core.engine.invert`, identity degradation, pixel MSE only: λ = 0) by
multi-code (N codes at layer ℓ) and by single-code baselines (N = 1 at the same ℓ; for the StyleGANs also
plain w+ optimisation, no split). Prints a markdown table: mean PSNR / SSIM / LPIPS over the targets
(``mgan_cli.metrics.compute_metrics`` on uint8 images) and CPU seconds per iteration.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from mgan_cli.core.degradations import build_degradation
from mgan_cli.core.engine import InversionSettings, invert, lr_factor
from mgan_cli.core.losses import ReconstructionLoss
from mgan_cli.generators import ARCHITECTURES, Generator
from mgan_cli.metrics import compute_metrics
from mgan_cli.utils.imageio import to_uint8

SHARED = Path(__file__).resolve().parents[1].parent / "shared"

#: Reduced-width 256×256 configs (channels min(fmaps_base // res, fmaps_max): 64 up to 32², then 32, 16, 8).
CONFIGS: dict[str, dict[str, object]] = {
    "pggan": {"resolution": 256, "z_dim": 64, "fmaps_base": 2048, "fmaps_max": 64},
    "stylegan2": {"resolution": 256, "z_dim": 64, "w_dim": 64, "fmaps_base": 2048, "fmaps_max": 64,
                  "truncation_psi": None},
    # StyleGAN3-t at 64×64 (the size; a 256² StyleGAN3 is far slower on a CPU): 15 layers + toRGB,
    # channels min(channel_base / 2 / cutoff, 32), sampling rates 16 … 64
    "stylegan3": {"resolution": 64, "z_dim": 64, "w_dim": 64, "channel_base": 1024, "channel_max": 32},
}

#: (parameter-name regex, std) per architecture, first match wins: the golden fixtures' TF-like init
#: (``shared/golden/*/config.json:init_rules``), except the toRGB weights, scaled down so that the
#: images are not mostly saturated (per-image std ≈ 0.5–0.6 instead of 1–2).
INIT_RULES: dict[str, tuple[tuple[str, float], ...]] = {
    "pggan": ((r"^output\d+\.conv\.weight$", 0.6), (r"\.conv\.weight$", 1.0), (r"\.wscale\.bias$", 0.1)),
    "stylegan2": ((r"^mapping\.dense\d+\.fc\.weight$", 100.0), (r"^mapping\.dense\d+\.bias$", 10.0),
                  (r"early_layer\.const$", 1.0), (r"\.style\.fc\.weight$", 1.0), (r"\.style\.bias$", 0.1),
                  (r"noise_strength$", 0.1), (r"output\d+\.weight$", 0.2), (r"layer\d+\.weight$", 1.0),
                  (r"(layer|output)\d+\.bias$", 0.1)),
    # the golden StyleGAN3 rules; the affines' biases keep their constructor value (1; input [1, 0, 0, 0])
    "stylegan3": ((r"^mapping\.dense\d+\.fc\.weight$", 100.0), (r"^mapping\.dense\d+\.bias$", 10.0),
                  (r"^synthesis\.input\.weight$", 1.0), (r"^synthesis\.input\.affine\.weight$", 0.1),
                  (r"\.affine\.weight$", 1.0), (r"_3\.weight$", 4.0), (r"L\d+_\d+_\d+\.weight$", 1.0),
                  (r"L\d+_\d+_\d+\.bias$", 0.1)),
}
#: z samples averaged for StyleGAN2's ``w_avg`` (the golden protocol uses 1000).
W_AVG_SAMPLES = 2000


def random_generator(architecture: str, config: Mapping[str, object], seed: int = 0) -> Generator:
    """A frozen generator whose learnable parameters are drawn ``std · N(0, 1)`` per :data:`INIT_RULES`
    from ``seed``; StyleGAN2 also gets ``w_avg`` = mean mapping output and N(0, 1) noise buffers."""
    generator = ARCHITECTURES.get(architecture)(**config)
    rng = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in generator.named_parameters():
            std = next((s for pattern, s in INIT_RULES[architecture] if re.search(pattern, name)), None)
            if std is not None:
                param.copy_(torch.randn(param.shape, generator=rng) * std)
        if hasattr(generator, "mapping"):
            z = torch.randn(W_AVG_SAMPLES, generator.latent_size, generator=rng)
            generator.truncation.w_avg.copy_(generator.mapping(z).mean(dim=0))
            for name, buffer in generator.named_buffers():
                if name.endswith(".noise"):
                    buffer.copy_(torch.randn(buffer.shape, generator=rng))
    return generator.freeze()


def render_targets(generator: Generator, count: int, seed: int) -> torch.Tensor:
    """``count`` images ``[K, 3, R, R]`` rendered from z ~ N(0, I) drawn from ``seed``, clamped to [-1, 1]."""
    z = torch.randn(count, generator.latent_size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return generator(z).clamp(-1.0, 1.0)


def invert_wplus(generator: Generator, targets: torch.Tensor, settings: InversionSettings,
                 seeds: Sequence[int]) -> torch.Tensor:
    """Plain single-code w+ inversion (no split, no α), pixel MSE, same optimiser/schedule: images ``[K, 3, R, R]``."""
    codes = torch.stack([generator.sample_codes(1, torch.Generator().manual_seed(int(s)), "w+")[0] for s in seeds])
    codes.requires_grad_()
    optimizer_class = torch.optim.Adam if settings.optimizer == "adam" else torch.optim.SGD
    optimizer = optimizer_class([codes], lr=settings.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, settings.iterations, settings.schedule, settings.warmup))
    for _ in range(settings.iterations):
        loss = (generator.render(codes, "w+") - targets).square().flatten(1).mean(dim=1).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
    with torch.no_grad():
        return generator.render(codes, "w+")


@dataclass(frozen=True)
class Run:
    """One table row: a generator, the method (``multi-code`` / ``single-code`` / ``w+``) and its settings."""

    architecture: str
    method: str
    settings: InversionSettings


def evaluate(generator: Generator, targets: torch.Tensor, run: Run, seeds: Sequence[int],
             metrics: Sequence[str] = ("psnr", "ssim", "lpips")) -> dict[str, float]:
    """Invert ``targets`` with ``run``; mean of each metric over the targets and seconds per iteration."""
    start = time.perf_counter()
    if run.method == "w+":
        images = invert_wplus(generator, targets, run.settings, seeds)
    else:
        result = invert(generator, targets, build_degradation({"type": "identity"}),
                        ReconstructionLoss(perceptual_weight=0.0), run.settings, seeds)
        images = result.images
    seconds = (time.perf_counter() - start) / max(run.settings.iterations, 1)
    rows = compute_metrics(to_uint8(images), to_uint8(targets), metrics)
    means = {name: sum(float(row[name]) for row in rows) / len(rows) for name in metrics}  # type: ignore[arg-type]
    return {**means, "s_per_iter": seconds}


def default_runs(iterations: Mapping[str, int]) -> list[Run]:
    """The benchmark's rows: multi-code vs single-code at the same ℓ (and plain w+ for the StyleGANs; StyleGAN3
    composes at ℓ 5, the last layer at sampling rate 16).

    Adam, lr 0.1, constant schedule (a cosine decay over these short runs stops too early), α's lr
    the engine's default lr / N.
    """
    pggan = InversionSettings(codes=20, layer=4, space="z", iterations=iterations["pggan"], optimizer="adam",
                              lr=0.1, schedule="constant")
    style = InversionSettings(codes=20, layer=4, space="w", iterations=iterations["stylegan2"], optimizer="adam",
                              lr=0.1, schedule="constant")
    return [
        Run("pggan", "multi-code", pggan),
        Run("pggan", "single-code", replace(pggan, codes=1)),
        Run("stylegan2", "multi-code", style),
        Run("stylegan2", "single-code", replace(style, codes=1)),
        Run("stylegan2", "w+", replace(style, codes=1, space="w+")),
        Run("stylegan3", "multi-code", replace(style, layer=5, iterations=iterations["stylegan3"])),
        Run("stylegan3", "single-code", replace(style, layer=5, codes=1, iterations=iterations["stylegan3"])),
        Run("stylegan3", "w+", replace(style, codes=1, space="w+", iterations=iterations["stylegan3"])),
    ]


def describe(architecture: str) -> str:
    config = CONFIGS[architecture]
    base = config.get("fmaps_base", config.get("channel_base"))
    most = config.get("fmaps_max", config.get("channel_max"))
    return f"{architecture} {config['resolution']}² base {base} max {most} z {config['z_dim']}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=2, help="K images per generator")
    parser.add_argument("--pggan-iterations", type=int, default=600)
    parser.add_argument("--stylegan2-iterations", type=int, default=200)
    parser.add_argument("--stylegan3-iterations", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--generator-seed", type=int, default=0)
    parser.add_argument("--only", choices=sorted(CONFIGS), default=None, help="one generator only")
    parser.add_argument("--no-lpips", action="store_true", help="skip LPIPS (needs the AlexNet weights)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("MGAN_WEIGHTS_MIRROR", str(SHARED / "weights"))  # LPIPS weights, offline
    metrics = ("psnr", "ssim") if args.no_lpips else ("psnr", "ssim", "lpips")
    target_seed, init_seeds = 10_000, list(range(args.targets))
    print("| generator | method | space | ℓ | N | iterations | optimizer / lr | PSNR (dB) | SSIM | LPIPS | s / iter |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    generators: dict[str, tuple[Generator, torch.Tensor]] = {}
    for run in default_runs({"pggan": args.pggan_iterations, "stylegan2": args.stylegan2_iterations,
                              "stylegan3": args.stylegan3_iterations}):
        if args.only and run.architecture != args.only:
            continue
        if run.architecture not in generators:
            generator = random_generator(run.architecture, CONFIGS[run.architecture], args.generator_seed)
            generators[run.architecture] = generator, render_targets(generator, args.targets, target_seed)
        generator, targets = generators[run.architecture]
        scores = evaluate(generator, targets, run, init_seeds, metrics)
        s = run.settings
        layer = "—" if run.method == "w+" else str(s.layer)
        lpips = f"{scores['lpips']:.3f}" if "lpips" in scores and not math.isnan(scores["lpips"]) else "—"
        print(f"| {describe(run.architecture)} | {run.method} | {s.space} | {layer} | {s.codes} | {s.iterations} "
              f"| {s.optimizer} {s.lr} {s.schedule} | {scores['psnr']:.2f} | {scores['ssim']:.3f} | {lpips} "
              f"| {scores['s_per_iter']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
