"""StyleGAN3's filtered leaky ReLU: mgan's implementation against the textbook pipeline, per layer shape.

    python -m bench.filtered_lrelu [--resolution 256] [--variant t] [--batch 2] [--channel-scale 0.25]
                                   [--repeats 3] [--threads 1] [--device cpu]

For every layer of a StyleGAN3 schedule (:func:`mgan_cli.generators.stylegan3.layer_schedule`; channels ×
``--channel-scale`` so the naive side finishes), times on a random ``[batch, C, s + k − 1, s + k − 1]`` input:

* **naive**: :func:`~mgan_cli.generators.filtered_lrelu.reference_filtered_lrelu` — materialise the
  zero-inserted signal, convolve every high-rate sample with the full 2-D kernel (outer product), activate,
  convolve again at the high rate, then drop the samples not kept (what the official ``upfirdn2d``
  reference path does, with a 2-D instead of a separable kernel);
* **conv**: mgan's polyphase depthwise convolutions (never multiplies inserted zeros, never computes dropped
  samples) for every axis length;
* **mgan**: what :func:`~mgan_cli.generators.filtered_lrelu.filtered_lrelu` runs (one dense matrix product
  per axis up to ``MATMUL_MAX_LENGTH``, the polyphase convolutions above it).

Each is timed forward, and forward + backward (the engine differentiates through every layer), median of
``--repeats`` after one warm-up; the outputs are compared (max |Δ|). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time
from collections.abc import Callable

import torch

from mgan_cli.generators import filtered_lrelu as flr
from mgan_cli.generators.stylegan3 import LayerSpec, layer_schedule, variant_config


def _timed(fn: Callable[[], torch.Tensor], repeats: int, backward: bool, device: torch.device) -> float:
    def once() -> None:
        out = fn()
        if backward:
            out.square().mean().backward()
        if device.type == "cuda":
            torch.cuda.synchronize()

    once()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        once()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def _conv_only(*args: object, **kwargs: object) -> torch.Tensor:
    saved = flr.MATMUL_MAX_LENGTH
    flr.MATMUL_MAX_LENGTH = 0
    try:
        return flr.filtered_lrelu(*args, **kwargs)  # type: ignore[arg-type]
    finally:
        flr.MATMUL_MAX_LENGTH = saved


def bench_layer(spec: LayerSpec, channels: int, batch: int, repeats: int, device: torch.device,
                skip_naive_above: int) -> dict[str, object]:
    rate = spec.tmp_sampling_rate
    up_filter = flr.design_lowpass_filter(spec.up_taps, spec.in_cutoff, 2 * spec.in_half_width, rate)
    down_filter = flr.design_lowpass_filter(spec.down_taps, spec.out_cutoff, 2 * spec.out_half_width, rate,
                                            radial=spec.down_radial)
    up_filter = None if up_filter is None else up_filter.to(device)
    down_filter = None if down_filter is None else down_filter.to(device)
    size = spec.in_size + spec.conv_kernel - 1
    rng = torch.Generator().manual_seed(spec.index)
    x = torch.randn(batch, channels, size, size, generator=rng).to(device).requires_grad_()
    bias = torch.randn(channels, generator=rng).to(device)
    gain, slope = (1.0, 1.0) if spec.is_torgb else (math.sqrt(2), 0.2)
    args = (x, bias, up_filter, down_filter, spec.up, spec.down, spec.padding, gain, slope, 256.0)
    row: dict[str, object] = {"layer": spec.name, "input": f"{channels}x{size}x{size}",
                              "rate": f"{spec.in_sampling_rate}→{rate}→{spec.out_sampling_rate}",
                              "filters": "radial" if spec.down_radial else ("—" if spec.is_torgb else "separable")}
    candidates: dict[str, Callable[..., torch.Tensor]] = {"mgan": flr.filtered_lrelu, "conv": _conv_only}
    if size * spec.up <= skip_naive_above:
        candidates["naive"] = flr.reference_filtered_lrelu
    outputs = {}
    for name, fn in candidates.items():
        with torch.no_grad():
            outputs[name] = fn(*args)
        row[f"{name} fwd ms"] = _timed(lambda fn=fn: fn(*args), repeats, False, device)
        row[f"{name} fwd+bwd ms"] = _timed(lambda fn=fn: fn(*args), repeats, True, device)
    reference = outputs.get("naive", outputs["conv"])
    row["max |Δ|"] = max(float((out - reference).abs().max()) for out in outputs.values())
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--variant", choices=["t", "r"], default="t")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--channel-scale", type=float, default=0.25)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-naive-above", type=int, default=1200,
                        help="skip the naive side when the high-rate map is larger than this (it is slow)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    config = variant_config(args.variant, args.resolution)
    schedule = layer_schedule(args.resolution, conv_kernel=int(config.get("conv_kernel", 3)),  # type: ignore[arg-type]
                              channel_base=int(config["channel_base"]),  # type: ignore[arg-type]
                              channel_max=int(config["channel_max"]),  # type: ignore[arg-type]
                              use_radial_filters=bool(config.get("use_radial_filters", False)))
    rows = []
    for spec in schedule.layers:
        channels = max(1, round(spec.out_channels * args.channel_scale)) if not spec.is_torgb else 3
        rows.append(bench_layer(spec, channels, args.batch, args.repeats, device, args.skip_naive_above))
    print(f"StyleGAN3-{args.variant} {args.resolution}, batch {args.batch}, channels x{args.channel_scale}, "
          f"{args.device} ({platform.processor() or platform.machine()}, {args.threads} thread(s)), "
          f"torch {torch.__version__}, median of {args.repeats}\n")
    columns = list(dict.fromkeys(key for row in rows for key in row))
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        cells = [f"{row[c]:.3g}" if isinstance(row.get(c), float) else str(row.get(c, "—")) for c in columns]
        print("| " + " | ".join(cells) + " |")
    totals = {name: sum(float(row.get(f"{name} fwd+bwd ms", 0.0)) for row in rows if "naive fwd ms" in row)
              for name in ("naive", "conv", "mgan")}
    if totals["naive"]:
        print(f"\nlayers with all three: fwd+bwd total naive {totals['naive']:.0f} ms, conv {totals['conv']:.0f} ms, "
              f"mgan {totals['mgan']:.0f} ms ({totals['naive'] / max(totals['mgan'], 1e-9):.1f}x faster than naive)")


if __name__ == "__main__":
    main()
