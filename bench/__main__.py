"""mgan's engine vs the reference implementation's loop: throughput, memory, FLOP utilisation, quality.

    make bench                     # = python -m bench: every config the device can take, default sizes
    python -m bench --configs dcgan64 --iterations 50 --images 4 [--device cuda] [--out BENCHMARKS.md]
    python -m bench --configs pggan256 --device cpu --width-scale 0.0625 --iterations 5 --images 1

Per configuration (see :data:`bench.harness.CONFIGS`) it runs the reference's loop
(:mod:`bench.reference_loop`), the same loop with the shipped script's history deep-copies, mgan with the
reference's settings (batched) and mgan with its preset's settings, on the same images, seeds and device
(see :mod:`bench.harness` for what is timed and how memory and FLOPs are measured), and prints two
markdown tables. ``--iterations`` steps are timed per side; images per hour extrapolate to the presets'
iteration counts. On the CPU only ``dcgan64`` runs unless ``--configs`` names others (use ``--width-scale``
to shrink the random generators' channels and ``--iterations`` to make them feasible).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from bench.flops import device_peak, measure_cpu_peak
from bench.harness import (
    COMPARE_HEADER,
    CONFIGS,
    SHARED,
    SIDE_HEADER,
    ConfigResult,
    RunOptions,
    compare_row,
    run_config,
    side_rows,
)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"CPU {line.split(':', 1)[1].strip()}"
    except OSError:
        pass
    return f"CPU {platform.processor() or platform.machine()}"


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).resolve().parents[1])
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default=None,
                        help=f"comma-separated, from {', '.join(CONFIGS)} (default: all on CUDA, dcgan64 on CPU)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    parser.add_argument("--iterations", type=int, default=50, help="steps timed per side (default 50)")
    parser.add_argument("--images", type=int, default=4,
                        help="images: one batch for mgan, one at a time for the reference (default 4)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed warm-up steps per side (default 2)")
    parser.add_argument("--width-scale", type=float, default=1.0,
                        help="scale the random generators' channel widths (e.g. 0.0625 to fit a CPU)")
    parser.add_argument("--perceptual-resolution", type=int, default=None,
                        help="override the VGG input size on every side (default: each preset's)")
    parser.add_argument("--no-shipped", action="store_true", help="skip the 'reference as shipped' run")
    parser.add_argument("--no-flops", action="store_true", help="skip FLOP counting")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto",
                        help="precision of mgan's sides (default auto: bf16 where the device does it natively)")
    parser.add_argument("--out", type=Path, default=None, help="append the results as markdown to this file")
    parser.add_argument("--json", type=Path, default=None, help="write the results as JSON to this file")
    args = parser.parse_args(argv)
    if args.iterations < 1 or args.images < 1 or args.warmup < 0 or args.width_scale <= 0:
        parser.error("--iterations and --images must be >= 1, --warmup >= 0, --width-scale > 0")
    return args


def main(argv: Sequence[str] | None = None) -> list[ConfigResult]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("MGAN_WEIGHTS_MIRROR", str(SHARED / "weights"))  # offline: the shared weight mirror
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.configs:
        names = [name.strip() for name in args.configs.split(",") if name.strip()]
        unknown = [name for name in names if name not in CONFIGS]
        if unknown:
            raise SystemExit(f"unknown config(s) {', '.join(unknown)}; choose from {', '.join(CONFIGS)}")
    else:
        names = [name for name, config in CONFIGS.items() if device.type == "cuda" or not config.gpu_sized]
        skipped = [name for name in CONFIGS if name not in names]
        if skipped:
            print(f"note: skipping GPU-sized config(s) {', '.join(skipped)} on {device.type}; name them with "
                  "--configs (with --width-scale / --iterations to make them feasible)")
    cpu_peak = measure_cpu_peak() if device.type == "cpu" else None
    options = RunOptions(iterations=args.iterations, images=args.images, warmup=args.warmup,
                         width_scale=args.width_scale, perceptual_resolution=args.perceptual_resolution,
                         shipped=not args.no_shipped, count_flops=not args.no_flops, precision=args.precision)
    results = [run_config(CONFIGS[name], device, options, cpu_peak, log=lambda m: print(m, file=sys.stderr))
               for name in names]

    fp32, auto = device_peak(device, "fp32", cpu_peak), device_peak(device, "bf16", cpu_peak)
    peaks = (f"fp32 {fp32.flops / 1e12:.3g} TFLOP/s ({fp32.source})" if fp32.flops else fp32.source)
    if device.type == "cuda":
        peaks += f"; bf16 {auto.flops / 1e12:.3g} TFLOP/s ({auto.source})" if auto.flops else ""
    header = [
        f"### mgan vs reference loop — {device_name(device)}",
        "",
        f"- command: `{shlex.join(['python', '-m', 'bench', *(sys.argv[1:] if argv is None else argv)])}`",
        f"- commit {git_commit()}, {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU thread(s)",
        f"- peak assumed: {peaks}",
        f"- {args.iterations} timed steps per side after {args.warmup} warm-up steps; images/h extrapolate to the "
        "preset's iterations (reference: the reference preset's / script's; mgan default: mgan's preset's)",
        "- peak memory: " + ("CUDA max_memory_allocated (weights included)" if device.type == "cuda"
                             else "peak RSS during the timed run minus RSS before it (sampled every 5 ms)"),
        "- mgan default runs its cosine schedule over the same timed steps; 'steps to reference PSNR' = first "
        "recorded step whose mean PSNR reaches the reference loop's final mean PSNR",
        "",
    ]
    for result in results:
        header.append(f"- {result.config}: {result.description}; {CONFIGS[result.config].notes}")
    lines = [*header, "", SIDE_HEADER]
    for result in results:
        lines += side_rows(result, device)
    lines += ["", COMPARE_HEADER, *(compare_row(result) for result in results), ""]
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        with args.out.open("a", encoding="utf-8") as handle:
            handle.write(text + "\n")
    if args.json is not None:
        args.json.write_text(json.dumps({"device": device_name(device), "commit": git_commit(),
                                         "torch": torch.__version__,
                                         "results": [r.as_dict() for r in results]}, indent=2))
    return results


if __name__ == "__main__":
    main()
