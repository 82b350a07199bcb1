"""Official TF StyleGAN2 pickles (``stylegan2-*-config-{e,f}.pkl``, NVlabs/stylegan2) → ``stylegan2``.

``Gs`` is a ``dnnlib.tflib.network.Network`` (state version 4) built by ``G_main`` with components
``mapping`` (``G_mapping``) and ``synthesis`` (``G_synthesis_stylegan2``, 'skip'). Variables map onto the
genforce layout as genforce's converter maps them (``StyleGAN2GeneratorNet.pth_to_tf_var_mapping``):

* ``mapping/Dense{i}/weight`` [in, out] → ``mapping.dense{i}.fc.weight`` [out, in]; ``/bias`` → ``.bias``;
* ``dlatent_avg`` → ``truncation.w_avg``; ``synthesis/4x4/Const/const`` → ``synthesis.early_layer.const``;
* ``synthesis/4x4/Conv`` → ``layer0``, ``{R}x{R}/Conv0_up`` → ``layer{2b-1}``, ``{R}x{R}/Conv1`` → ``layer{2b}``,
  ``{R}x{R}/ToRGB`` → ``output{b}``: ``weight`` stays in TF layout [k, k, in, out]; ``bias``;
  ``mod_weight`` [w, in] → ``style.fc.weight`` [in, w]; ``mod_bias`` → ``style.bias`` (both without the +1);
  ``noise_strength`` → ``noise_strength``; ``synthesis/noise{k}`` → ``synthesis.layer{k}.noise``;
* the [1,3,3,1] FIR buffers (graph constants in TF) are added as genforce stores them.

Shapes give the architecture (:func:`mgan_cli.weights.formats.genforce_stylegan2.infer_config`); ``static_kwargs`` give
``mapping_lrmul`` and the truncation, else ``G_main``'s defaults (psi 0.5 on every row = genforce's),
applied to z codes. Noise is the stored variables (TF's ``randomize_noise=False``). Other synthesis
variants ('orig', 'resnet', ``G_synthesis_stylegan_revised``) raise :class:`UnknownFormatError`.
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
from mgan_cli.weights.formats import genforce_stylegan2 as sg2_layout
from mgan_cli.weights.formats.base import READERS, GeneratorWeights
from mgan_cli.weights.formats.tf_pickle import (
    VarSpec,
    check_lod,
    check_static_kwargs,
    convert_variables,
    export_variables,
    read_gs,
)

BUILD_FUNCS = ("G_main",)
COMPONENT_FUNCS = {"mapping": "G_mapping", "synthesis": "G_synthesis_stylegan2"}
DEFAULT_TRUNCATION_PSI = 0.5  # G_main's default; truncation_cutoff None = every row
SUPPORTED_KWARGS: dict[str, Any] = {
    "label_size": 0, "mapping_nonlinearity": "lrelu", "normalize_latents": True, "dtype": "float32",
    "fmap_decay": 1.0, "architecture": "skip", "nonlinearity": "lrelu", "resample_kernel": [1, 3, 3, 1],
}


def var_specs(resolution: int, mapping_layers: int) -> list[VarSpec]:
    """Canonical key ↔ TF variable (``"<component>/<local>"``) for a 'skip' StyleGAN2 generator."""
    specs = [VarSpec("truncation.w_avg", "dlatent_avg")]
    for i in range(mapping_layers):
        specs += [VarSpec(f"mapping.dense{i}.fc.weight", f"mapping/Dense{i}/weight", "dense"),
                  VarSpec(f"mapping.dense{i}.bias", f"mapping/Dense{i}/bias")]
    specs.append(VarSpec("synthesis.early_layer.const", "synthesis/4x4/Const/const"))

    def modconv(gf: str, tf: str, noise: int | None) -> list[VarSpec]:
        out = [VarSpec(f"{gf}.weight", f"{tf}/weight"), VarSpec(f"{gf}.bias", f"{tf}/bias"),
               VarSpec(f"{gf}.style.fc.weight", f"{tf}/mod_weight", "dense"),
               VarSpec(f"{gf}.style.bias", f"{tf}/mod_bias")]
        if noise is not None:
            out += [VarSpec(f"{gf}.noise_strength", f"{tf}/noise_strength"),
                    VarSpec(f"{gf}.noise", f"synthesis/noise{noise}")]
        return out

    for b in range(int(math.log2(resolution)) - 1):
        res = 4 * 2**b
        scope = f"synthesis/{res}x{res}"
        if b == 0:
            specs += modconv("synthesis.layer0", f"{scope}/Conv", 0)
        else:
            specs += modconv(f"synthesis.layer{2 * b - 1}", f"{scope}/Conv0_up", 2 * b - 1)
            specs += modconv(f"synthesis.layer{2 * b}", f"{scope}/Conv1", 2 * b)
        specs += modconv(f"synthesis.output{b}", f"{scope}/ToRGB", None)
    return specs


def _layout(gs_vars: Mapping[str, np.ndarray], source: str) -> tuple[int, int]:
    """``(resolution, mapping layers)`` from the variable names."""
    mapping = sorted(int(m.group(1)) for n in gs_vars if (m := re.fullmatch(r"mapping/Dense(\d+)/weight", n)))
    blocks = sorted(int(m.group(1)) for n in gs_vars if (m := re.fullmatch(r"synthesis/(\d+)x\1/ToRGB/weight", n)))
    if not mapping or mapping != list(range(len(mapping))):
        raise UnknownFormatError(f"{source}: mapping layers missing or not numbered Dense0..n-1")
    if not blocks or blocks != [4 * 2**b for b in range(len(blocks))]:
        raise UnknownFormatError(f"{source}: not a 'skip' StyleGAN2 synthesis (ToRGB per block: {blocks})")
    return blocks[-1], len(mapping)


def tf_to_state(gs_vars: Mapping[str, np.ndarray], source: str) -> dict[str, torch.Tensor]:
    """All ``Gs`` variables (components prefixed) → genforce state dict, FIR buffers added."""
    resolution, mapping_layers = _layout(gs_vars, source)
    state = convert_variables(gs_vars, var_specs(resolution, mapping_layers), ("lod",), source)
    state.update(sg2_layout.fixed_buffers(resolution))
    return state


def to_tf_variables(state: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Genforce state dict of ``stylegan2(**config)`` → ``{"<component>/<local>": array}`` (plus ``lod``)."""
    out = export_variables(state, var_specs(int(config["resolution"]), int(config.get("num_mapping_layers", 8))))
    for name in [n for n in out if n.endswith("noise_strength")]:
        out[name] = np.float32(out[name])
    out["lod"] = np.float32(0.0)
    return out


def _truncation(kwargs: Mapping[str, Any], num_layers: int) -> tuple[float | None, int | None]:
    psi = kwargs.get("truncation_psi", DEFAULT_TRUNCATION_PSI)
    if psi is None or float(psi) == 1.0:
        return None, None
    cutoff = kwargs.get("truncation_cutoff")
    return float(psi), num_layers if cutoff is None else int(cutoff)


@READERS.register("tf-stylegan2")
def read_tf_stylegan2(path: Path) -> GeneratorWeights:
    """An official TF StyleGAN2 pickle (``stylegan2-*-config-*.pkl``): ``Gs`` → architecture ``stylegan2``."""
    gs = read_gs(path, BUILD_FUNCS)
    for comp, func in COMPONENT_FUNCS.items():
        if comp not in gs.components or gs.components[comp].build_func_name != func:
            found = gs.components[comp].build_func_name if comp in gs.components else None
            raise UnknownFormatError(f"{path}: Gs {comp} is built by {found!r}; mgan reads {func} only")
        check_static_kwargs(gs.merged_kwargs(comp), SUPPORTED_KWARGS, f"{path} ({comp})")
    gs_vars = gs.all_variables()
    check_lod(gs_vars, ["lod"], str(path))
    state = tf_to_state(gs_vars, str(path))
    config: dict[str, Any] = sg2_layout.infer_config(state, str(path))
    synthesis_kwargs = gs.merged_kwargs("synthesis")
    for key, ours in (("resolution", config["resolution"]), ("num_channels", config["image_channels"]),
                      ("dlatent_size", config["w_dim"])):
        if key in synthesis_kwargs and synthesis_kwargs[key] != ours:
            raise UnknownFormatError(f"{path}: static kwarg {key}={synthesis_kwargs[key]!r} contradicts the "
                                     f"variables ({ours!r})")
    config["mapping_lr_multiplier"] = float(gs.merged_kwargs("mapping").get("mapping_lrmul", 0.01))
    psi, layers = _truncation(gs.static_kwargs, 2 * int(math.log2(int(config["resolution"]))) - 2)
    config.update(truncation_psi=psi, truncation_layers=layers)
    sg2_layout.check_shapes(config, state, str(path))
    return GeneratorWeights("stylegan2", config, state, {"format": "tf-stylegan2", "network": gs.name})


__all__ = ["read_tf_stylegan2", "tf_to_state", "to_tf_variables", "var_specs"]
