"""genforce / mGANprior StyleGAN2 weights (``stylegan2_ffhq1024_generator.pth`` …): the canonical layout.

The file is ``torch.save(net.state_dict())`` of genforce's ``StyleGAN2GeneratorNet`` minus
``truncation.truncation`` (read with ``torch.load(weights_only=True)``); mgan's ``stylegan2`` uses the same
keys, so the reader only infers the constructor arguments from the tensor shapes. Truncation is the
genforce wrapper's default, **psi 0.5 on every w+ row** (``STYLEGAN2_TRUNCATION_PSI`` /
``_LAYERS = 18``), applied to z codes; noise is the stored buffers (``randomize_noise=False``).

Every StyleGAN2 reader (rosinality, NVlabs, TF) converts into this layout and then uses the helpers here:
:func:`infer_config`, :func:`check_shapes`, :func:`fixed_buffers` and :func:`mean_w`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from mgan_cli.errors import UnknownFormatError
from mgan_cli.generators import stylegan2 as sg2
from mgan_cli.generators.layers import channels_at
from mgan_cli.weights.formats.base import READERS, GeneratorWeights, require_fit
from mgan_cli.weights.formats.torch_files import load_torch_file

#: genforce's wrapper defaults (models/model_settings.py)
GENFORCE_TRUNCATION_PSI = 0.5
GENFORCE_TRUNCATION_LAYERS = 18


def infer_config(state: Mapping[str, torch.Tensor], source: str = "weights") -> dict[str, object]:
    """Constructor kwargs implied by a genforce-layout state dict's shapes (truncation left at the defaults).

    Raises :class:`UnknownFormatError` when the channel table does not follow ``min(base // res, max)``.
    """
    try:
        num_mapping = sum(1 for k in state if k.startswith("mapping.dense") and k.endswith(".fc.weight"))
        first = state["mapping.dense0.fc.weight"]
        hidden = first.shape[0] if num_mapping > 1 else None
        w_dim = state["synthesis.layer0.style.fc.weight"].shape[1]
        num_layers = 1 + max(int(k.split(".")[1][5:]) for k in state if k.startswith("synthesis.layer"))
        resolution = 2 ** ((num_layers + 1 + 2) // 2)
        channels = {4 * 2**b: state[f"synthesis.layer{2 * b}.weight"].shape[3] for b in range((num_layers + 1) // 2)}
        image_channels = state["synthesis.output0.weight"].shape[3]
    except (KeyError, IndexError, ValueError) as exc:
        raise UnknownFormatError(f"{source}: not a StyleGAN2 generator ({exc})") from exc
    fmaps_max = channels[4]
    below = [r * c for r, c in channels.items() if c < fmaps_max]
    fmaps_base = min(below) if below else fmaps_max * resolution
    if any(channels_at(r, fmaps_base, fmaps_max) != c for r, c in channels.items()):
        raise UnknownFormatError(f"{source}: StyleGAN2 channel table {channels} is not min(base // res, max)")
    return {"resolution": resolution, "z_dim": int(first.shape[1]), "w_dim": int(w_dim),
            "image_channels": int(image_channels), "fmaps_base": int(fmaps_base), "fmaps_max": int(fmaps_max),
            "num_mapping_layers": num_mapping,
            "mapping_hidden": None if hidden in (None, fmaps_max) else int(hidden)}


def refuse_other_architectures(state: Mapping[str, torch.Tensor], source: str) -> None:
    """Refuse genforce StyleGAN2 files of the 'resnet' or 'origin' architectures (they have residual convs, or
    an output layer only at the last resolution) and non-RGB ones: mgan implements the 3-channel 'skip' net."""
    outputs = sorted({int(m.group(1)) for k in state if (m := re.match(r"synthesis\.output(\d+)\.", k))})
    if any(re.match(r"synthesis\.(skip|residual)\d*\.", k) for k in state):
        raise UnknownFormatError(f"{source}: a genforce StyleGAN2 with the 'resnet' architecture (residual "
                                 "convolutions); mgan implements only 'skip'")
    if len(outputs) == 1 and outputs[0] > 0:
        raise UnknownFormatError(f"{source}: a genforce StyleGAN2 with the 'origin' architecture (an output layer "
                                 "only at the last resolution); mgan implements only 'skip'")
    rgb = state.get("synthesis.output0.weight")
    if rgb is not None and rgb.dim() == 4 and rgb.shape[3] != 3:
        raise UnknownFormatError(f"{source}: a {rgb.shape[3]}-channel generator; mgan imports RGB generators only "
                                 "(its tasks, metrics and reports are RGB)")


def check_shapes(config: Mapping[str, object], state: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise :class:`UnknownFormatError` unless ``state`` has exactly the keys and shapes of ``stylegan2(**config)``."""
    require_fit("stylegan2", config, state, source)


def fixed_buffers(resolution: int) -> dict[str, torch.Tensor]:
    """The FIR buffers genforce stores (``layer{2b-1}.filter.kernel``, ``upsample.kernel``) for a resolution."""
    num_layers = 2 * int(math.log2(resolution)) - 2
    buffers = {f"synthesis.layer{j}.filter.kernel": sg2.fir_kernel() for j in range(1, num_layers - 1, 2)}
    buffers["synthesis.upsample.kernel"] = sg2.fir_kernel()
    return buffers


def mean_w(config: Mapping[str, object], state: Mapping[str, torch.Tensor], samples: int = 4096,
           seed: int = 0) -> torch.Tensor:
    """``w_avg`` for files that lack it: the mean mapping output of ``samples`` z ~ N(0, I) (seeded)."""
    mapping = sg2.MappingNetwork(int(config["z_dim"]), int(config.get("mapping_hidden") or config["fmaps_max"]),  # type: ignore[arg-type]
                                 int(config["w_dim"]), int(config["num_mapping_layers"]),  # type: ignore[arg-type]
                                 float(config.get("mapping_lr_multiplier", 0.01)))  # type: ignore[arg-type]
    mapping.load_state_dict({k[len("mapping."):]: v for k, v in state.items() if k.startswith("mapping.")})
    z = torch.randn(samples, int(config["z_dim"]), generator=torch.Generator().manual_seed(seed))  # type: ignore[arg-type]
    with torch.no_grad():
        return mapping(z).mean(dim=0)


@READERS.register("genforce-stylegan2")
def read_genforce_stylegan2(path: Path) -> GeneratorWeights:
    """A genforce ``StyleGAN2GeneratorNet`` state dict → ``stylegan2`` (truncation psi 0.5 on all rows)."""
    state = load_torch_file(path)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UnknownFormatError(f"{path}: expected a state dict of tensors")
    state = {k: v for k, v in state.items() if k != "truncation.truncation"}
    refuse_other_architectures(state, str(path))
    config = infer_config(state, str(path))
    num_layers = 2 * (int(config["resolution"]).bit_length() - 1) - 2  # type: ignore[call-overload]
    config.update(truncation_psi=GENFORCE_TRUNCATION_PSI,
                  truncation_layers=min(GENFORCE_TRUNCATION_LAYERS, num_layers))
    check_shapes(config, state, str(path))
    return GeneratorWeights("stylegan2", config, state, {"format": "genforce-stylegan2"})
