"""Real photos: the multi-code prior reconstructs CelebA faces far better than a single code."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mgan_cli.config.presets import apply_overrides, load_preset
from mgan_cli.core.degradations import build_degradation
from mgan_cli.core.engine import invert
from mgan_cli.utils.imageio import to_tensor, to_uint8
from mgan_cli.weights.loading import load_generator
from tests.helpers import celeba_face, psnr_uint8

REDUCED_ITERATIONS = 150


def _mean_psnr(preset, faces: list, generator) -> float:
    loss = preset.loss.build()
    observed = torch.stack([to_tensor(face) for face in faces])
    result = invert(generator, observed, build_degradation(preset.degradation), loss, preset.inversion,
                    seeds=list(range(len(faces))))
    restored = to_uint8(result.images).permute(0, 2, 3, 1).numpy()
    return float(np.mean([psnr_uint8(r, np.asarray(f)) for r, f in zip(restored, faces, strict=True)]))


@pytest.mark.slow
def test_multi_code_beats_single_code_on_real_faces(shared_dir) -> None:
    faces = [celeba_face(p) for p in sorted((shared_dir / "data" / "celeba64").glob("*.jpg"))[:4]]
    generator = load_generator("dcgan64-digiface")
    preset = apply_overrides(load_preset("dcgan64-invert"), iterations=REDUCED_ITERATIONS)
    assert preset.inversion.codes >= 10
    multi = _mean_psnr(preset, faces, generator)
    single = _mean_psnr(apply_overrides(preset, codes=1), faces, generator)
    assert multi > single + 3.0, (multi, single)  # dB
    assert multi > 23.0
