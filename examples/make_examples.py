"""Regenerate the demo images in examples/faces/ (run: .venv/bin/python examples/make_examples.py).

The images are made by mgan itself from the embedded default generator (DCGAN-64, MIT-licensed weights),
so they can be redistributed: two faces rendered from seeded codes, and two composites (the left half of
one rendered face beside the right half of another) that no single code reproduces — the case the
multi-code prior is for.
"""

from __future__ import annotations

from pathlib import Path

import torch

from mgan_cli import load_generator
from mgan_cli.utils.imageio import to_uint8, write_png

SEEDS = (186, 190, 145, 67, 180, 119)


def main() -> None:
    out = Path(__file__).resolve().parent / "faces"
    out.mkdir(exist_ok=True)
    generator = load_generator("dcgan64-digiface")
    codes = torch.stack([torch.randn(100, generator=torch.Generator().manual_seed(s)) for s in SEEDS])
    with torch.no_grad():
        faces = to_uint8(generator(codes))
    write_png(faces[0], out / "face-a.png")
    write_png(faces[1], out / "face-b.png")
    half = faces.shape[-1] // 2
    for name, (left, right) in {"composite-cd": (2, 3), "composite-ef": (4, 5)}.items():
        composite = torch.cat([faces[left][..., :half], faces[right][..., half:]], dim=-1)
        write_png(composite, out / f"{name}.png")


if __name__ == "__main__":
    main()
