"""mgan from Python: super-resolve a face, score it, edit it, save its latents.

Run: .venv/bin/python examples/python_api.py [OUTPUT_FOLDER [ITERATIONS]]   (default: python-api-output/, 100)
It uses the embedded default generator (DCGAN-64, fetched on first use) and examples/faces/face-a.png.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import mgan_cli as mgan

HERE = Path(__file__).resolve().parent


def main(out: Path, iterations: int = 100) -> None:
    out.mkdir(parents=True, exist_ok=True)
    face = Image.open(HERE / "faces" / "face-a.png").convert("RGB")            # 64x64
    low = face.resize((16, 16), Image.Resampling.BICUBIC)                     # what we observe

    generator = mgan.load_generator("dcgan64-digiface", device="cpu")
    restorer = mgan.Restorer(generator, task="superres", scale=4, iterations=iterations, codes=10, device="cpu")
    result = restorer([low], seed=0)                                          # images in [0, 1] out
    assert result.failed == [None], result.failed

    original = torch.from_numpy(np.asarray(face)).permute(2, 0, 1)[None]      # uint8 [1, 3, 64, 64]
    print(f"PSNR {float(mgan.metrics.psnr(result.images, original)):.2f} dB, "
          f"LPIPS {float(mgan.metrics.lpips(result.images, original)):.4f}")

    frames = mgan.edit(generator, result.inversions[0], direction="sefa:1", strengths=[-3, 0, 3])   # [3, 3, 64, 64]
    strip = torch.cat(list(frames), dim=2)                                    # side by side
    for name, image in (("restored.png", result.images[0]), ("edit-strip.png", strip)):
        pixels = (image * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        Image.fromarray(pixels).save(out / name)
    mgan.save_latents(out / "face-a.safetensors", result.inversions[0], generator)
    print(f"wrote {out / 'restored.png'}, {out / 'edit-strip.png'} and {out / 'face-a.safetensors'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("python-api-output"),
         int(sys.argv[2]) if len(sys.argv) > 2 else 100)
