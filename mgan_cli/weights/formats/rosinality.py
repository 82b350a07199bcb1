"""rosinality/stylegan2-pytorch checkpoints: ``torch.save({'g_ema': state_dict, ...})``.

Training checkpoints hold ``g``, ``d``, ``g_ema``, optimiser states and ``args`` (an
``argparse.Namespace``); TF conversions by its ``convert_weight.py`` hold ``g_ema`` and ``latent_avg``.
The file is read with ``torch.load(weights_only=True)`` (``argparse.Namespace`` is the one extra class
allowed: it only holds attributes). Only ``g_ema`` is used.

Layout (rosinality → genforce, also :func:`rosinality_to_genforce`; it is the composition of rosinality's
``convert_weight.py`` TF → rosinality rules with genforce's TF → genforce rules):

* ``style.{i+1}.weight`` / ``.bias`` (EqualLinear, lr_mul 0.01, weight stored ×1/lr) → ``mapping.dense{i}.fc.weight``
  / ``.bias`` unchanged (``style.0`` is the pixel norm); ``latent_avg`` → ``truncation.w_avg``.
* ``input.input`` → ``synthesis.early_layer.const``.
* ``conv1`` → ``layer0``; ``convs.{k}`` → ``layer{k+1}`` (even ``k`` are the up-convs); ``to_rgb1`` → ``output0``;
  ``to_rgbs.{i}`` → ``output{i+1}``.
* ``conv.weight`` [1, out, in, k, k] → TF layout ``[0].permute(2, 3, 1, 0)``; the up-convs' kernels are stored
  flipped (rosinality's transposed conv uses them as stored), so they are flipped back.
* ``conv.modulation.weight`` → ``style.fc.weight``; ``conv.modulation.bias - 1`` → ``style.bias`` (rosinality
  initialises it to 1); ``noise.weight`` [1] → ``noise_strength`` []; ``activate.bias`` (StyledConv) /
  ``bias`` [1, 3, 1, 1] (ToRGB) → ``bias``; ``noises.noise_{j}`` → ``layer{j}.noise``.
* The blur/upsample kernels (``conv.blur.kernel``, ``upsample.kernel``: the ×4 [1,3,3,1]² FIR) must be
  the standard ones. The up-conv's blur pads (1, 1) and the skip upsampler pads (2, 1) after zero
  insertion, exactly genforce's ``filter`` and ``upsample``.

Config: ``style_dim`` = z = w = mapping width; channels from the tensors (``channel_multiplier`` 2 =
config F = ``fmaps_base`` 32768, 1 = config E). Truncation off (rosinality's default ``truncation=1``);
noise = the stored ``noises`` buffers (rosinality's ``randomize_noise=False``). Without ``latent_avg``,
``w_avg`` is the mean mapping output of 4096 seeded z (as its ``mean_latent(4096)``).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from mgan_cli.errors import UnknownFormatError
from mgan_cli.generators import stylegan2 as sg2
from mgan_cli.weights.formats import genforce_stylegan2 as sg2_layout
from mgan_cli.weights.formats.base import READERS, GeneratorWeights
from mgan_cli.weights.formats.torch_files import load_torch_file


def _names(conv_layers: int) -> list[tuple[str, str, bool]]:
    """``(rosinality prefix, genforce prefix, flipped)`` of every modulated conv (``conv_layers`` = L - 1)."""
    names = [("conv1", "synthesis.layer0", False), ("to_rgb1", "synthesis.output0", False)]
    for k in range(conv_layers - 1):
        names.append((f"convs.{k}", f"synthesis.layer{k + 1}", k % 2 == 0))
    for i in range((conv_layers - 1) // 2):
        names.append((f"to_rgbs.{i}", f"synthesis.output{i + 1}", False))
    return names


def rosinality_to_genforce(state: Mapping[str, torch.Tensor], source: str = "weights") -> dict[str, torch.Tensor]:
    """A rosinality ``Generator`` state dict (``g_ema``) → genforce layout, without ``truncation.w_avg``."""
    state = dict(state)
    out: dict[str, torch.Tensor] = {}
    fir = sg2.fir_kernel()[0, 0]
    try:
        i = 1
        while f"style.{i}.weight" in state:
            out[f"mapping.dense{i - 1}.fc.weight"] = state.pop(f"style.{i}.weight")
            out[f"mapping.dense{i - 1}.bias"] = state.pop(f"style.{i}.bias")
            i += 1
        out["synthesis.early_layer.const"] = state.pop("input.input")
        num_layers = 1 + sum(1 for k in state if k.startswith("convs.") and k.endswith(".conv.weight"))
        for ros, gf, flip in _names(num_layers):
            weight = state.pop(f"{ros}.conv.weight")[0].permute(2, 3, 1, 0)
            out[f"{gf}.weight"] = (weight.flip(0, 1) if flip else weight).contiguous()
            out[f"{gf}.style.fc.weight"] = state.pop(f"{ros}.conv.modulation.weight")
            out[f"{gf}.style.bias"] = state.pop(f"{ros}.conv.modulation.bias") - 1.0
            if ros.startswith("to_rgb"):
                out[f"{gf}.bias"] = state.pop(f"{ros}.bias").reshape(-1)
            else:
                out[f"{gf}.bias"] = state.pop(f"{ros}.activate.bias")
                out[f"{gf}.noise_strength"] = state.pop(f"{ros}.noise.weight").reshape(())
        for j in range(num_layers):
            out[f"synthesis.layer{j}.noise"] = state.pop(f"noises.noise_{j}")
    except KeyError as exc:
        raise UnknownFormatError(f"{source}: not a rosinality StyleGAN2 generator (missing {exc})") from exc
    for key in [k for k in state if k.endswith((".blur.kernel", ".upsample.kernel"))]:
        if not torch.allclose(state.pop(key), fir):
            raise UnknownFormatError(f"{source}: {key} is not the [1,3,3,1] FIR mgan implements")
    if state:
        raise UnknownFormatError(f"{source}: unexpected rosinality tensors {sorted(state)[:4]}")
    out.update(sg2_layout.fixed_buffers(2 ** ((num_layers + 3) // 2)))
    return out


def genforce_to_rosinality(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of :func:`rosinality_to_genforce` (with rosinality's kernel buffers), e.g. to export."""
    num_layers = 1 + max(int(k.split(".")[1][5:]) for k in state if k.startswith("synthesis.layer"))
    fir = sg2.fir_kernel()[0, 0]
    out: dict[str, torch.Tensor] = {}
    i = 0
    while f"mapping.dense{i}.fc.weight" in state:
        out[f"style.{i + 1}.weight"] = state[f"mapping.dense{i}.fc.weight"]
        out[f"style.{i + 1}.bias"] = state[f"mapping.dense{i}.bias"]
        i += 1
    out["input.input"] = state["synthesis.early_layer.const"]
    for ros, gf, flip in _names(num_layers):
        weight = state[f"{gf}.weight"]
        out[f"{ros}.conv.weight"] = (weight.flip(0, 1) if flip else weight).permute(3, 2, 0, 1)[None].contiguous()
        if flip:
            out[f"{ros}.conv.blur.kernel"] = fir.clone()
        out[f"{ros}.conv.modulation.weight"] = state[f"{gf}.style.fc.weight"]
        out[f"{ros}.conv.modulation.bias"] = state[f"{gf}.style.bias"] + 1.0
        if ros.startswith("to_rgb"):
            out[f"{ros}.bias"] = state[f"{gf}.bias"].reshape(1, -1, 1, 1)
            if ros != "to_rgb1":
                out[f"{ros}.upsample.kernel"] = fir.clone()
        else:
            out[f"{ros}.noise.weight"] = state[f"{gf}.noise_strength"].reshape(1)
            out[f"{ros}.activate.bias"] = state[f"{gf}.bias"]
    for j in range(num_layers):
        out[f"noises.noise_{j}"] = state[f"synthesis.layer{j}.noise"]
    return out


def _load(path: Path) -> Any:
    return load_torch_file(path, safe_globals=[argparse.Namespace])


@READERS.register("rosinality")
def read_rosinality(path: Path) -> GeneratorWeights:
    """A rosinality/stylegan2-pytorch ``.pt`` checkpoint (``g_ema`` [+ ``latent_avg``]) → ``stylegan2``."""
    checkpoint = _load(path)
    if isinstance(checkpoint, dict) and "g_ema" in checkpoint:
        g_ema, latent_avg = checkpoint["g_ema"], checkpoint.get("latent_avg")
    elif isinstance(checkpoint, dict) and "style.1.weight" in checkpoint:
        g_ema, latent_avg = checkpoint, None
    else:
        raise UnknownFormatError(f"{path}: expected a rosinality checkpoint with 'g_ema'")
    state = rosinality_to_genforce(g_ema, str(path))
    config = {**sg2_layout.infer_config(state, str(path)), "truncation_psi": None, "truncation_layers": None}
    if isinstance(latent_avg, torch.Tensor):
        state["truncation.w_avg"] = latent_avg.reshape(-1).to(torch.float32)
    else:
        state["truncation.w_avg"] = sg2_layout.mean_w(config, state)
    sg2_layout.check_shapes(config, state, str(path))
    return GeneratorWeights("stylegan2", config, state, {"format": "rosinality"})
