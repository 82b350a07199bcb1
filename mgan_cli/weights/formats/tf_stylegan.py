"""Official TF StyleGAN pickles (``karras2019stylegan-*.pkl``, NVlabs/stylegan) → ``stylegan``.

``Gs`` is a ``dnnlib.tflib.network.Network`` built by ``G_style`` with components ``mapping``
(``G_mapping``) and ``synthesis`` (``G_synthesis``). Variables map onto the genforce layout as genforce's
converter maps them (``StyleGANGeneratorNet.pth_to_tf_var_mapping``):

* ``mapping/Dense{i}/weight`` [in, out] → ``mapping.dense{i}.fc.weight`` [out, in]; ``/bias`` → ``.wscale.bias``;
* ``dlatent_avg`` → ``truncation.w_avg``; ``synthesis/lod`` → ``synthesis.lod``;
* ``synthesis/4x4/Const/const`` → ``synthesis.layer0.const``; ``4x4/Conv`` → ``layer1``;
  ``{R}x{R}/Conv0_up`` → ``layer{2b}``, ``{R}x{R}/Conv1`` → ``layer{2b+1}``: ``weight`` HWIO → OIHW
  ``conv.weight``, except fused up-convs, whose TF-layout ``weight`` [3, 3, in, out] genforce keeps as is;
  ``bias`` → ``epilogue.bias``, ``Noise/weight`` → ``epilogue.apply_noise.weight``, ``StyleMod/weight``
  [w, 2C] → ``epilogue.style_mod.dense.fc.weight`` [2C, w], ``StyleMod/bias`` → ``…wscale.bias``;
* ``synthesis/noise{k}`` → ``synthesis.layer{k}.epilogue.apply_noise.noise``;
* ``synthesis/ToRGB_lod{n-1-b}`` → ``synthesis.output{b}`` (HWIO → OIHW ``conv.weight``, ``bias``).

The blur kernels are not variables in TF (constants in the graph): they are the fixed [1,2,1]² filter.
Shapes give ``resolution``, ``z_dim``, ``w_dim``, ``mapping_layers``, channels; ``fused_scale`` is not
visible in the shapes and comes from ``static_kwargs`` (default ``'auto'``, as ``G_synthesis``). The
truncation is the network's own: ``truncation_psi``/``truncation_cutoff`` from ``static_kwargs``, else
``G_style``'s defaults 0.7 / 8 (= genforce's), applied to z codes. Noise is the stored ``noise{k}``
variables (TF's ``randomize_noise=False``; its default draws fresh noise every call).
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
from mgan_cli.generators.stylegan import AUTO_FUSED_MIN_RES, Blur
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

BUILD_FUNCS = ("G_style",)
#: G_style defaults (used when static_kwargs do not set them)
DEFAULT_TRUNCATION_PSI = 0.7
DEFAULT_TRUNCATION_CUTOFF = 8
SUPPORTED_KWARGS: dict[str, Any] = {
    "label_size": 0, "mapping_lrmul": 0.01, "mapping_nonlinearity": "lrelu", "use_wscale": True,
    "normalize_latents": True, "dtype": "float32", "fmap_decay": 1.0, "use_styles": True,
    "const_input_layer": True, "use_noise": True, "nonlinearity": "lrelu", "use_pixel_norm": False,
    "use_instance_norm": True, "blur_filter": [1, 2, 1],
}


def _is_fused(config: Mapping[str, Any], res: int) -> bool:
    fused = config.get("fused_scale", "auto")
    return res >= AUTO_FUSED_MIN_RES if fused == "auto" else bool(fused)


def var_specs(config: Mapping[str, Any]) -> list[VarSpec]:
    """Canonical key ↔ TF variable (``"<component>/<local>"``) for ``stylegan(**config)``."""
    specs = [VarSpec("truncation.w_avg", "dlatent_avg")]
    for i in range(int(config["mapping_layers"])):
        specs += [VarSpec(f"mapping.dense{i}.fc.weight", f"mapping/Dense{i}/weight", "dense"),
                  VarSpec(f"mapping.dense{i}.wscale.bias", f"mapping/Dense{i}/bias")]
    specs.append(VarSpec("synthesis.lod", "synthesis/lod"))
    blocks = int(math.log2(int(config["resolution"]))) - 1
    for b in range(blocks):
        res = 4 * 2**b
        for k, scope in ((2 * b, "Const" if b == 0 else "Conv0_up"), (2 * b + 1, "Conv" if b == 0 else "Conv1")):
            tf = f"synthesis/{res}x{res}/{scope}"
            gf = f"synthesis.layer{k}"
            if k == 0:
                specs.append(VarSpec(f"{gf}.const", f"{tf}/const"))
            elif k % 2 == 0 and _is_fused(config, res):
                specs.append(VarSpec(f"{gf}.weight", f"{tf}/weight"))
            else:
                specs.append(VarSpec(f"{gf}.conv.weight", f"{tf}/weight", "conv"))
            specs += [VarSpec(f"{gf}.epilogue.bias", f"{tf}/bias"),
                      VarSpec(f"{gf}.epilogue.apply_noise.weight", f"{tf}/Noise/weight"),
                      VarSpec(f"{gf}.epilogue.apply_noise.noise", f"synthesis/noise{k}"),
                      VarSpec(f"{gf}.epilogue.style_mod.dense.fc.weight", f"{tf}/StyleMod/weight", "dense"),
                      VarSpec(f"{gf}.epilogue.style_mod.dense.wscale.bias", f"{tf}/StyleMod/bias")]
        specs += [VarSpec(f"synthesis.output{b}.conv.weight", f"synthesis/ToRGB_lod{blocks - 1 - b}/weight", "conv"),
                  VarSpec(f"synthesis.output{b}.bias", f"synthesis/ToRGB_lod{blocks - 1 - b}/bias")]
    return specs


def blur_buffers(state: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The fixed [1,2,1]² blur kernels of every up-layer (constants in the TF graph, buffers in genforce)."""
    blocks = int(math.log2(int(config["resolution"]))) - 1
    out = {}
    for b in range(1, blocks):
        bias = state[f"synthesis.layer{2 * b}.epilogue.bias"]
        out[f"synthesis.layer{2 * b}.blur.kernel"] = Blur(int(bias.shape[0])).kernel
    return out


def infer_config(gs_vars: Mapping[str, np.ndarray], kwargs: Mapping[str, Any], source: str) -> dict[str, Any]:
    """``stylegan`` kwargs from the variable shapes, plus ``fused_scale`` and truncation from ``static_kwargs``."""
    try:
        mapping = sorted(int(m.group(1)) for n in gs_vars if (m := re.fullmatch(r"mapping/Dense(\d+)/weight", n)))
        if not mapping or mapping != list(range(len(mapping))):
            raise UnknownFormatError(f"{source}: mapping layers missing or not numbered Dense0..n-1")
        first, last = gs_vars["mapping/Dense0/weight"], gs_vars[f"mapping/Dense{mapping[-1]}/weight"]
        channels = {4: int(gs_vars["synthesis/4x4/Const/const"].shape[1])}
        for name, value in gs_vars.items():
            if (m := re.fullmatch(r"synthesis/(\d+)x\1/Conv1/weight", name)):
                channels[int(m.group(1))] = int(value.shape[3])
        if sorted(channels) != [4 * 2**b for b in range(len(channels))]:
            raise UnknownFormatError(f"{source}: StyleGAN blocks are not contiguous: {sorted(channels)}")
        image_channels = int(gs_vars["synthesis/ToRGB_lod0/weight"].shape[3])
    except (KeyError, IndexError) as exc:
        raise UnknownFormatError(f"{source}: not an official TF StyleGAN generator (missing {exc})") from exc
    fmaps_max = int(first.shape[1]) if len(mapping) > 1 else channels[4]
    base, fmaps_max = genforce._fmaps(channels, fmaps_max)
    fused = kwargs.get("fused_scale", "auto")
    if fused not in (True, False, "auto"):
        raise UnknownFormatError(f"{source}: fused_scale={fused!r} is not True, False or 'auto'")
    psi = kwargs.get("truncation_psi", DEFAULT_TRUNCATION_PSI)
    cutoff = kwargs.get("truncation_cutoff", DEFAULT_TRUNCATION_CUTOFF)
    if psi is None or cutoff is None or float(psi) == 1.0 or int(cutoff) <= 0:
        psi, cutoff = None, None
    return {"resolution": max(channels), "z_dim": int(first.shape[0]), "w_dim": int(last.shape[1]),
            "image_channels": image_channels, "fused_scale": fused,
            "truncation_psi": None if psi is None else float(psi),
            "truncation_layers": None if cutoff is None else int(cutoff),
            "mapping_layers": len(mapping), "fmaps_base": base, "fmaps_max": fmaps_max}


def tf_to_state(gs_vars: Mapping[str, np.ndarray], config: Mapping[str, Any], source: str) -> dict[str, torch.Tensor]:
    """All ``Gs`` variables (components prefixed) → genforce state dict, blur kernels added."""
    state = convert_variables(gs_vars, var_specs(config), ("lod",), source)
    state.update(blur_buffers(state, config))
    return state


def to_tf_variables(state: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Genforce state dict of ``stylegan(**config)`` → ``{"<component>/<local>": array}`` (plus ``lod``)."""
    out = export_variables(state, var_specs(config))
    out["synthesis/lod"] = np.float32(out["synthesis/lod"])
    out["lod"] = np.float32(0.0)
    return out


@READERS.register("tf-stylegan")
def read_tf_stylegan(path: Path) -> GeneratorWeights:
    """An official TF StyleGAN pickle (``karras2019stylegan-*.pkl``): ``Gs`` → architecture ``stylegan``."""
    gs = read_gs(path, BUILD_FUNCS)
    for comp, func in (("mapping", "G_mapping"), ("synthesis", "G_synthesis")):
        if comp not in gs.components or gs.components[comp].build_func_name != func:
            raise UnknownFormatError(f"{path}: Gs has no {comp} component built by {func}")
        check_static_kwargs(gs.merged_kwargs(comp), SUPPORTED_KWARGS, f"{path} ({comp})")
    gs_vars = gs.all_variables()
    config = infer_config(gs_vars, gs.merged_kwargs("synthesis"), str(path))
    synthesis_kwargs = gs.merged_kwargs("synthesis")
    for key, ours in (("resolution", config["resolution"]), ("num_channels", config["image_channels"]),
                      ("dlatent_size", config["w_dim"])):
        if key in synthesis_kwargs and synthesis_kwargs[key] != ours:
            raise UnknownFormatError(f"{path}: static kwarg {key}={synthesis_kwargs[key]!r} contradicts the "
                                     f"variables ({ours!r})")
    check_lod(gs_vars, ["lod", "synthesis/lod"], str(path))
    state = tf_to_state(gs_vars, config, str(path))
    genforce.check_keys(state, "stylegan", config, path)
    return GeneratorWeights("stylegan", config, state, {"format": "tf-stylegan", "network": gs.name})


__all__ = ["blur_buffers", "infer_config", "read_tf_stylegan", "tf_to_state", "to_tf_variables", "var_specs"]
