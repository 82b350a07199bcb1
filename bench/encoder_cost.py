"""What training an encoder costs per generator (issue 21): FLOPs of one training sample, counted, not timed.

One training sample of :func:`mgan_cli.encoder.train_encoder` costs a generator forward without gradients (drawing
the sample), the encoder's forward and backward, and the prediction rendered back through the frozen generator
with the gradient to its input (forward + backward). Each is counted with ``torch.utils.flop_counter`` on the
``meta`` device (shapes only: nothing is computed, so 1024² generators are counted on any machine), at the
registry entry's full-size configuration. The CPU rate is calibrated on the DCGAN-64 (its measured training
samples per second here); GPU hours are estimates from FLOPs at a stated utilisation, not measurements.

    python -m bench.encoder_cost [--samples-per-second S]
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.flop_counter import FlopCounterMode

from mgan_cli.encoder.model import Encoder, default_architecture
from mgan_cli.encoder.targets import target_for
from mgan_cli.generators import ARCHITECTURES
from mgan_cli.weights.store import load_registry

GENERATORS = ("dcgan64-digiface", "pggan-celebahq1024", "stylegan-ffhq1024", "stylegan2-ffhq1024",
              "stylegan3-t-ffhq1024")
#: dense bf16 tensor-core peak of an H100/H200 SXM (NVIDIA's data sheets), and the utilisations assumed
GPU_PEAK_FLOPS = 989e12
UTILISATIONS = (0.15, 0.4)


def flops(run) -> int:
    with FlopCounterMode(display=False) as counter:
        run()
    return counter.get_total_flops()


def sample_flops(name: str) -> dict[str, float]:
    entry = load_registry()[name]
    with torch.device("meta"):
        generator = ARCHITECTURES.get(str(entry.architecture))(**entry.config).requires_grad_(False)
        target = target_for(generator)
        shape = target.shape(generator)
        encoder = Encoder(default_architecture(generator.resolution, target.name, shape))
        latent = torch.zeros(1, *shape)
        size = encoder.architecture.input_size
        draw = flops(lambda: target.render(generator, latent))

        def encode() -> None:
            encoder(torch.zeros(1, 4, size, size)).sum().backward()

        def render() -> None:
            target.render(generator, torch.zeros(1, *shape, requires_grad=True)).sum().backward()

        return {"draw": draw, "encoder": flops(encode), "render": flops(render)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples-per-second", type=float, default=None,
                        help="measured DCGAN-64 training samples per second on this CPU (calibrates the CPU rate)")
    args = parser.parse_args()
    rows = {name: sample_flops(name) for name in GENERATORS}
    dcgan = sum(rows["dcgan64-digiface"].values())
    cpu_rate = None if args.samples_per_second is None else dcgan * args.samples_per_second
    print("| generator | GFLOP per training sample (draw + encoder + render) | CPU h per 100k samples | "
          + " | ".join(f"H100/H200 h per 100k samples at {u:.0%}" for u in UTILISATIONS) + " |")
    print("|---|---:|---:|" + "---:|" * len(UTILISATIONS))
    for name, parts in rows.items():
        total = sum(parts.values())
        cpu = "" if cpu_rate is None else f"{total * 1e5 / cpu_rate / 3600:.3g}"
        gpu = " | ".join(f"{total * 1e5 / (GPU_PEAK_FLOPS * u) / 3600:.3g}" for u in UTILISATIONS)
        detail = " + ".join(f"{parts[k] / 1e9:.3g}" for k in ("draw", "encoder", "render"))
        print(f"| {name} | {total / 1e9:.4g} ({detail}) | {cpu} | {gpu} |")


if __name__ == "__main__":
    main()
