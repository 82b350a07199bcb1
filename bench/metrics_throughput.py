"""Throughput of each metric (images/s) on a batch of 256×256 RGB images, on the CPU and, if present, CUDA.

    python bench/metrics_throughput.py [--batch 16] [--repeats 3] [--threads N] [--devices cpu,cuda]

Images are the FFHQ faces of ../shared/data/ffhq256 (random pixels if that folder is missing), compared
with a noisy copy. Each metric is run once to warm up (model loading, caches), then timed ``--repeats``
times on the whole batch; the table reports the median. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mgan_cli.metrics.fidelity import psnr, ssim
from mgan_cli.metrics.naturalness import niqe
from mgan_cli.metrics.perceptual import lpips_distance

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def load_batch(size: int) -> torch.Tensor:
    """``size`` uint8 [3, 256, 256] images: FFHQ photos (repeated as needed) or seeded random pixels."""
    folder = SHARED / "data" / "ffhq256"
    files = sorted(folder.glob("*.png")) if folder.is_dir() else []
    if files:
        arrays = [np.array(Image.open(files[i % len(files)]).convert("RGB")) for i in range(size)]
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return torch.randint(0, 256, (size, 3, 256, 256), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def time_call(fn: Callable[[], torch.Tensor], device: torch.device, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs, after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--devices", default="cpu,cuda", help="comma-separated; cuda is skipped if absent")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("MGAN_WEIGHTS_MIRROR", str(SHARED / "weights"))

    references = load_batch(args.batch)
    generator = torch.Generator().manual_seed(1)
    noise = torch.randn(references.shape, generator=generator) * 15
    images = (references.float() + noise).clamp(0, 255).round().to(torch.uint8)

    devices = [torch.device(d) for d in args.devices.split(",") if d != "cuda" or torch.cuda.is_available()]
    metrics: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
        "psnr": lambda a, b: psnr(a, b),
        "psnr (Y)": lambda a, b: psnr(a, b, y_channel=True),
        "ssim": lambda a, b: ssim(a, b),
        "lpips (alex)": lambda a, b: lpips_distance(a, b, net="alex"),
        "lpips (vgg)": lambda a, b: lpips_distance(a, b, net="vgg"),
        "niqe": lambda a, b: niqe(a),
    }
    results: dict[str, dict[str, float]] = {name: {} for name in metrics}
    for device in devices:
        a, b = images.to(device), references.to(device)
        for name, fn in metrics.items():
            seconds = time_call(lambda fn=fn, a=a, b=b: fn(a, b), device, args.repeats)
            results[name][str(device)] = args.batch / seconds

    names = [str(d) for d in devices]
    cpu_info = f"{cpu_name()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"
    gpu_info = f"; CUDA: {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    print(f"Metric throughput, batch of {args.batch} RGB 256×256 images, median of {args.repeats} "
          f"(CPU: {cpu_info}{gpu_info}; torch {torch.__version__})\n")
    print("| metric | " + " | ".join(f"{n} images/s" for n in names) + " |")
    print("|---|" + "---:|" * len(names))
    for name, row in results.items():
        print(f"| {name} | " + " | ".join(f"{row[n]:.1f}" for n in names) + " |")


if __name__ == "__main__":
    main()
