"""The targeted probes of ``make gpu-check`` (issue 19's risks), one per process: ``python -m bench.gpu_probes
NAME [--device cuda] [--smoke]``. Each prints one JSON line ``{"probe": NAME, "result": "..."}`` and exits
non-zero when the risk it probes shows. ``--smoke`` shrinks every probe to tiny random generators so that
the CPU tests can run them (the numbers are then meaningless; the code paths are the GPU's).

Probes (random weights everywhere: they test the code paths and speed, not image quality):

* ``reduce-overhead``: one batch on StyleGAN2-256 with ``--compile reduce-overhead`` and early stopping; fails
  if the run raises or falls back to eager.
* ``stylegan3-step``: seconds per optimisation step of StyleGAN3-t 256 (N = 4, batch 4).
* ``precision``: fp32, bf16 and fp16 on StyleGAN2-256: seconds per step and PSNR against a target rendered
  by the generator itself.
* ``auto-batch``: the batch ``--batch-size auto`` chooses vs the largest batch that really runs (doubling
  from the choice until out-of-memory, at most 4 tries).
* ``metrics-oom``: a real CUDA out-of-memory inside the metrics of a run; fails unless every image is
  restored with null metrics and a reason.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from mgan_cli.core.degradations import Identity
from mgan_cli.core.engine import EngineOptions, InversionSettings, invert
from mgan_cli.core.losses import ReconstructionLoss
from mgan_cli.generators import ARCHITECTURES


def _generator(name: str, resolution: int, smoke: bool, device: torch.device):
    config: dict = {"resolution": 16 if smoke else resolution}
    if smoke:
        config.update({"stylegan2": dict(z_dim=8, w_dim=8, fmaps_base=64, fmaps_max=8, num_mapping_layers=2),
                       "stylegan3": dict(z_dim=8, w_dim=8, channel_base=128, channel_max=8, num_layers=4,
                                         num_critical=1, margin_size=2),
                       "pggan": dict(z_dim=8, fmaps_base=64, fmaps_max=8)}[name])
    torch.manual_seed(0)
    return ARCHITECTURES.get(name)(**config).freeze().eval().to(device)


def _targets(generator, count: int, device: torch.device) -> torch.Tensor:
    with torch.no_grad():
        return generator(torch.randn(count, generator.latent_size, device=device)).clamp(-1, 1)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.clamp(-1, 1) - b) / 2).square().mean())
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def _timed_invert(generator, targets, settings, options, device, warn=None) -> tuple[float, object]:
    invert(generator, targets, Identity(), ReconstructionLoss(0.0), dataclasses.replace(settings, iterations=2),
           list(range(len(targets))), options=options, warn=warn)  # warm-up (compilation, cuDNN autotuning)
    _sync(device)
    start = time.perf_counter()
    result = invert(generator, targets, Identity(), ReconstructionLoss(0.0), settings, list(range(len(targets))),
                    options=options, warn=warn)
    _sync(device)
    return (time.perf_counter() - start) / max(1, settings.iterations), result


def reduce_overhead(device: torch.device, smoke: bool) -> tuple[bool, str]:
    generator = _generator("stylegan2", 256, smoke, device)
    targets = _targets(generator, 4, device)
    settings = InversionSettings(codes=4, layer=2, space="w+", iterations=20, schedule="constant",
                                 early_stop_window=5, early_stop_tolerance=0.05)
    warnings: list[str] = []
    seconds, result = _timed_invert(generator, targets, settings, EngineOptions(compile="reduce-overhead"), device,
                                    warnings.append)
    steps = result.steps.tolist()
    ok = not warnings
    return ok, f"{seconds:.3f} s/step, steps per image {steps}" + (f"; WARNED: {warnings[0]}" if warnings else "")


def stylegan3_step(device: torch.device, smoke: bool) -> tuple[bool, str]:
    generator = _generator("stylegan3", 256, smoke, device)
    targets = _targets(generator, 4, device)
    settings = InversionSettings(codes=4, layer=3, space="w+", iterations=5)
    precision = EngineOptions.for_device(device).precision
    seconds, _ = _timed_invert(generator, targets, settings, EngineOptions(precision=precision,
                                                                           channels_last=True), device)
    return True, f"{seconds:.3f} s/step (StyleGAN3-t 256, N 4, batch 4, {precision})"


def precision(device: torch.device, smoke: bool) -> tuple[bool, str]:
    generator = _generator("stylegan2", 256, smoke, device)
    targets = _targets(generator, 4, device)
    settings = InversionSettings(codes=4, layer=2, space="w+", iterations=20)
    parts, ok = [], True
    for name in ("fp32", "bf16", "fp16") if device.type == "cuda" else ("fp32", "bf16"):
        seconds, result = _timed_invert(generator, targets, settings, EngineOptions(precision=name,
                                                                                    channels_last=True), device)
        diverged = int((result.diverged_at >= 0).sum())
        ok &= diverged == 0
        parts.append(f"{name} {seconds:.3f} s/step PSNR {_psnr(result.images, targets):.2f} dB"
                     + (f" ({diverged} non-finite)" if diverged else ""))
    return ok, "; ".join(parts)


def auto_batch(device: torch.device, smoke: bool) -> tuple[bool, str]:
    from mgan_cli.run.batching import choose_batch_size, probe_memory

    generator = _generator("stylegan2", 256, smoke, device)
    settings = InversionSettings(codes=20 if not smoke else 2, layer=2, space="w+", iterations=2)
    options = EngineOptions.for_device(device)
    target = _targets(generator, 1, device)

    def runs(batch: int) -> bool:
        try:
            invert(generator, target.expand(batch, -1, -1, -1).contiguous(), Identity(), ReconstructionLoss(0.0),
                   settings, list(range(batch)), options=options)
            return True
        except torch.OutOfMemoryError:
            if device.type == "cuda":
                torch.cuda.empty_cache()
            return False

    if device.type != "cuda":
        return True, "no CUDA: the probe needs the allocator's numbers (smoke: invert of 2 ran: " \
                     f"{runs(2)})"
    torch.cuda.synchronize(device)
    baseline = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    runs(1)
    probe = probe_memory(torch.cuda, device, baseline, torch.cuda.max_memory_allocated(device))  # type: ignore[arg-type]
    choice = choose_batch_size("auto", 2, 100_000, "cuda", probe)
    chosen_runs = runs(choice.batch_size)
    largest = choice.batch_size if chosen_runs else 0
    batch = choice.batch_size
    for _ in range(4):
        batch *= 2
        if not runs(batch):
            break
        largest = batch
    return chosen_runs, (f"auto chose {choice.batch_size} (probe {probe.per_image_bytes / 2**20:.0f} MiB/image, "
                         f"free {probe.free_bytes / 2**30:.1f} GiB); it {'ran' if chosen_runs else 'did NOT run'}; "
                         f"largest that ran ≥ {largest} (doubling, 4 tries)")


def metrics_oom(device: torch.device, smoke: bool) -> tuple[bool, str]:
    import tempfile

    from PIL import Image

    from mgan_cli.config.presets import apply_overrides, load_preset
    from mgan_cli.config.tasks import TASKS
    from mgan_cli.run import Job, RunEvents, Runner, sink

    real_measure = sink.measure

    def measure_out_of_memory(outputs, references, names, measure_device):
        if measure_device.type == "cuda":
            torch.empty(2**62, dtype=torch.uint8, device=measure_device)  # a real CUDA out-of-memory error
        raise torch.OutOfMemoryError("out of memory (simulated off CUDA)")

    sink.measure = measure_out_of_memory
    try:
        with tempfile.TemporaryDirectory() as tmp:
            inputs = []
            for index in range(3):
                path = Path(tmp) / f"noise{index}.png"
                Image.fromarray((torch.rand(64, 64, 3) * 255).to(torch.uint8).numpy()).save(path)
                inputs.append(path)
            preset = apply_overrides(load_preset("dcgan64-invert"), iterations=1, codes=2, batch_size=3)
            job = Job(TASKS.get("invert"), preset, inputs, Path(tmp) / "out", metrics=("psnr", "lpips"),
                      device=device)
            records = Runner(job, RunEvents(on_warning=lambda message: None)).run()
    finally:
        sink.measure = real_measure
    ok = [r.status for r in records] == ["ok"] * 3 and all(r.metrics.get("lpips") is None for r in records)
    reasons = {str(r.metrics.get("lpips_reason"))[:60] for r in records}
    return ok, f"{sum(r.status == 'ok' for r in records)} of 3 restored; lpips null: {sorted(reasons)}"


PROBES: dict[str, Callable[[torch.device, bool], tuple[bool, str]]] = {
    "reduce-overhead": reduce_overhead, "stylegan3-step": stylegan3_step, "precision": precision,
    "auto-batch": auto_batch, "metrics-oom": metrics_oom,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_probes", description=__doc__.split("\n\n")[0])
    parser.add_argument("probe", choices=sorted(PROBES))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--smoke", action="store_true", help="tiny generators (for CPU tests)")
    args = parser.parse_args(argv)
    ok, result = PROBES[args.probe](torch.device(args.device), args.smoke)
    print(json.dumps({"probe": args.probe, "ok": ok, "result": result}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
