"""Official TF PGGAN pickles (``karras2018iclr-*.pkl``, tkarras/progressive_growing_of_gans) → ``pggan``.

``Gs`` is a ``tfutil.Network`` built by ``networks.G_paper``; its variables map onto the genforce layout as
genforce's converter maps them (``PGGANGeneratorNet.pth_to_tf_var_mapping``):

* ``4x4/Dense/weight`` [z, 16·C] → ``layer0.conv.weight`` [C, z, 4, 4]: reshape to [z, C, 4, 4], swap the
  first two axes, flip both spatial axes (the dense layer becomes a 4×4 conv with padding 3);
* ``4x4/Conv``, ``{R}x{R}/Conv0``, ``{R}x{R}/Conv1`` → ``layer{k}.conv.weight``: HWIO → OIHW;
  fused ``{R}x{R}/Conv0_up/weight`` [3, 3, out, in] → ``layer{2b}.weight`` [3, 3, in, out];
* ``*/bias`` → ``layer{k}.wscale.bias``; ``ToRGB_lod{n-1-b}`` → ``output{b}`` (HWIO → OIHW); ``lod`` → ``lod``.

The config is inferred from the variable shapes (``z_dim``, channel table → ``fmaps_base``/``fmaps_max``,
``fused_scale`` from ``Conv0_up``) and cross-checked with ``static_kwargs``; options mgan does not
implement (labels, ``fmap_decay`` ≠ 1, no pixel-norm, …) raise :class:`UnknownFormatError`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mgan_cli.errors import UnknownFormatError
from mgan_cli.weights.formats import genforce
from mgan_cli.weights.formats.base import READERS, GeneratorWeights
from mgan_cli.weights.formats.tf_pickle import (
    VarSpec,
    check_lod,
    check_static_kwargs,
    convert_variables,
    export_variables,
    read_gs,
)

BUILD_FUNCS = ("G_paper",)
#: G_paper options and the values mgan's PGGAN implements
SUPPORTED_KWARGS: dict[str, Any] = {
    "label_size": 0, "fmap_decay": 1.0, "normalize_latents": True, "use_wscale": True, "use_pixelnorm": True,
    "pixelnorm_epsilon": 1e-8, "use_leakyrelu": True, "dtype": "float32",
}


def _dense_to_conv(a: torch.Tensor) -> torch.Tensor:
    return a.view(a.shape[0], -1, 4, 4).permute(1, 0, 2, 3).flip(2, 3).contiguous()


def _conv_to_dense(a: torch.Tensor) -> torch.Tensor:
    return a.flip(2, 3).permute(1, 0, 2, 3).reshape(a.shape[1], -1).contiguous()


def var_specs(config: Mapping[str, Any]) -> list[VarSpec]:
    """Canonical key ↔ TF variable for ``pggan(**config)``."""
    blocks = int(math.log2(int(config["resolution"]))) - 1
    specs = [VarSpec("lod", "lod"), VarSpec("layer0.conv.weight", "4x4/Dense/weight", "pggan_dense"),
             VarSpec("layer0.wscale.bias", "4x4/Dense/bias")]
    for b in range(blocks):
        res = 4 * 2**b
        scope = f"{res}x{res}"
        if b > 0:
            if config.get("fused_scale"):
                specs.append(VarSpec(f"layer{2 * b}.weight", f"{scope}/Conv0_up/weight", "swap_io"))
                specs.append(VarSpec(f"layer{2 * b}.wscale.bias", f"{scope}/Conv0_up/bias"))
            else:
                specs.append(VarSpec(f"layer{2 * b}.conv.weight", f"{scope}/Conv0/weight", "conv"))
                specs.append(VarSpec(f"layer{2 * b}.wscale.bias", f"{scope}/Conv0/bias"))
        conv = "Conv" if b == 0 else "Conv1"
        specs.append(VarSpec(f"layer{2 * b + 1}.conv.weight", f"{scope}/{conv}/weight", "conv"))
        specs.append(VarSpec(f"layer{2 * b + 1}.wscale.bias", f"{scope}/{conv}/bias"))
        specs.append(VarSpec(f"output{b}.conv.weight", f"ToRGB_lod{blocks - 1 - b}/weight", "conv"))
        specs.append(VarSpec(f"output{b}.wscale.bias", f"ToRGB_lod{blocks - 1 - b}/bias"))
    return specs


CUSTOM_FORWARD = {"pggan_dense": _dense_to_conv}
CUSTOM_BACKWARD = {"pggan_dense": _conv_to_dense}


def infer_config(variables: Mapping[str, np.ndarray], source: str) -> dict[str, Any]:
    """``pggan`` kwargs from the TF variable shapes."""
    try:
        dense = variables["4x4/Dense/weight"]
        channels = {4: int(variables["4x4/Conv/weight"].shape[3])}
        for name, value in variables.items():
            if (m := re.fullmatch(r"(\d+)x\1/Conv1/weight", name)):
                channels[int(m.group(1))] = int(value.shape[3])
        resolution = max(channels)
        if sorted(channels) != [4 * 2**b for b in range(len(channels))]:
            raise UnknownFormatError(f"{source}: PGGAN blocks are not contiguous: {sorted(channels)}")
        image_channels = int(variables["ToRGB_lod0/weight"].shape[3])
    except (KeyError, IndexError) as exc:
        raise UnknownFormatError(f"{source}: not an official TF PGGAN generator (missing {exc})") from exc
    base, fmaps_max = genforce._fmaps(channels, max(channels.values()))
    return {"resolution": resolution, "z_dim": int(dense.shape[0]), "image_channels": image_channels,
            "fmaps_base": base, "fmaps_max": fmaps_max,
            "fused_scale": any(name.endswith("/Conv0_up/weight") for name in variables)}


def tf_to_state(variables: Mapping[str, np.ndarray], config: Mapping[str, Any], source: str) -> dict[str, torch.Tensor]:
    """TF ``Gs`` variables → genforce state dict (every variable must be matched)."""
    return convert_variables(variables, var_specs(config), (), source, CUSTOM_FORWARD)


def to_tf_variables(state: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Genforce state dict of ``pggan(**config)`` → TF ``Gs`` variables ``{local name: array}`` (``lod`` a scalar)."""
    out = export_variables(state, var_specs(config), CUSTOM_BACKWARD)
    out["lod"] = np.float32(out["lod"])
    return out


@READERS.register("tf-pggan")
def read_tf_pggan(path: Path) -> GeneratorWeights:
    """An official TF PGGAN pickle (``karras2018iclr-*.pkl``): ``Gs`` → architecture ``pggan``."""
    gs = read_gs(path, BUILD_FUNCS)
    kwargs = gs.static_kwargs
    check_static_kwargs(kwargs, SUPPORTED_KWARGS, str(path))
    config = infer_config(gs.variables, str(path))
    for key, ours in (("resolution", config["resolution"]), ("num_channels", config["image_channels"]),
                      ("fused_scale", config["fused_scale"])):
        if key in kwargs and kwargs[key] != ours:
            raise UnknownFormatError(f"{path}: static kwarg {key}={kwargs[key]!r} contradicts the variables ({ours!r})")
    check_lod(gs.variables, ["lod"], str(path))
    state = tf_to_state(gs.variables, config, str(path))
    genforce.check_keys(state, "pggan", config, path)
    return GeneratorWeights("pggan", config, state, {"format": "tf-pggan", "network": gs.name})


__all__ = ["infer_config", "read_tf_pggan", "tf_to_state", "to_tf_variables", "var_specs"]
