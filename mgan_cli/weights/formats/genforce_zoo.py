"""genforce/genforce model-zoo checkpoints and InterFaceGAN's StyleGAN ``.pth``: renamed into mgan's layout.

**genforce/genforce** (the 2021 training framework; its converters and runners write
``{'generator': sd, 'discriminator': sd, 'generator_smooth': sd}``, runner checkpoints nest that under
``'models'``; a bare generator state dict is accepted too). ``generator_smooth`` (the moving average used
for synthesis) is taken when present. Its modules name parameters differently from genforce/mGANprior's
(which mgan's architectures use): plain ``weight`` / ``bias`` instead of ``conv.weight`` / ``wscale.bias``
or ``fc.weight``, ``style.weight`` instead of ``style_mod.dense.fc.weight`` (StyleGAN) or
``style.fc.weight`` (StyleGAN2), and conv weights in PyTorch layout ``[out, in, k, k]`` where mgan's
StyleGAN2 and fused up-convs keep TensorFlow's ``[k, k, in, out]``. The family is told by the keys:
``synthesis.early_layer.const`` → StyleGAN2, ``synthesis.layer0.const`` → StyleGAN, ``layer0.weight`` →
PGGAN. Its generators do not truncate unless asked (``trunc_psi=None``), so the config has no truncation.

**InterFaceGAN** (genforce/interfacegan ``stylegan_*.pth``, ``StyleGANGeneratorModel.state_dict()``): the
mGANprior names except ``*.dense.linear.weight`` (mGANprior: ``*.dense.fc.weight``) and
``synthesis.layer0.first_layer`` (``synthesis.layer0.const``); ``truncation.truncation`` is dropped. Its
model truncates by default (psi 0.7 on the first 8 rows), as the config here. (InterFaceGAN's PGGAN files
have mGANprior's names and are read by ``genforce-pggan``.)

The renamed state dicts go through the mGANprior readers' config inference and strict key/shape checks.
Every file is read with ``torch.load(weights_only=True)``: a pickle asking for more than tensors and
containers is refused (:class:`~mgan_cli.errors.UnsafePickleError`). Exactness against the official modules
is tested with ``tests/fixtures/official_layouts.pt`` (see ``tests/test_genforce_zoo.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from mgan_cli.errors import UnknownFormatError
from mgan_cli.weights.formats import genforce_stylegan2 as sg2_layout
from mgan_cli.weights.formats.base import READERS, GeneratorWeights
from mgan_cli.weights.formats.genforce import pggan_weights, stylegan_weights
from mgan_cli.weights.formats.torch_files import load_torch_file

#: InterFaceGAN's StyleGAN wrapper defaults (models/model_settings.py)
INTERFACEGAN_TRUNCATION_PSI = 0.7
INTERFACEGAN_TRUNCATION_LAYERS = 8


def _torch_load(path: Path) -> Any:
    return load_torch_file(path)


def _tensor_dict(value: Any) -> bool:
    return isinstance(value, Mapping) and bool(value) and all(isinstance(v, torch.Tensor) for v in value.values())


def load_zoo_generator_state(path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """The generator state dict in a genforce/genforce file and which entry it was (``generator_smooth``,
    ``generator`` or ``state_dict`` for a bare one)."""
    data = _torch_load(path)
    if isinstance(data, Mapping) and isinstance(data.get("models"), Mapping):
        data = data["models"]
    if isinstance(data, Mapping):
        for entry in ("generator_smooth", "generator"):
            if _tensor_dict(data.get(entry)):
                return dict(data[entry]), entry
    if _tensor_dict(data):
        return dict(data), "state_dict"
    keys = sorted(data)[:6] if isinstance(data, Mapping) else type(data).__name__
    raise UnknownFormatError(f"{path}: no generator state dict (expected 'generator_smooth' or 'generator'; "
                             f"found {keys})")


Rename = Callable[[str, torch.Tensor], tuple[str, torch.Tensor]]


def _rename_all(state: Mapping[str, torch.Tensor], rename: Rename) -> dict[str, torch.Tensor]:
    renamed: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        new_key, new_value = rename(key, value)
        renamed[new_key] = new_value.contiguous()
    return renamed


def _pggan_rename(fused_layers: set[str]) -> Rename:
    def rename(key: str, value: torch.Tensor) -> tuple[str, torch.Tensor]:
        match = re.fullmatch(r"((?:layer|output)\d+)\.(weight|bias)", key)
        if match is None:
            return key, value  # lod
        unit, kind = match.groups()
        if kind == "bias":
            return f"{unit}.wscale.bias", value
        if unit in fused_layers:  # transposed-conv kernel [in, out, k, k] -> TF [k, k, in, out]
            return f"{unit}.weight", value.permute(2, 3, 0, 1)
        return f"{unit}.conv.weight", value

    return rename


def _pggan_fused_layers(state: Mapping[str, torch.Tensor]) -> set[str]:
    """Up-conv units stored as transposed-conv kernels ``[in, out, k, k]``: recognisable only where the
    channel count changes (``in`` must match the previous unit's output); where it does not, the official
    models' (and genforce's default) plain upsample + conv is assumed."""
    fused = set()
    for key, value in state.items():
        match = re.fullmatch(r"layer(\d+)\.weight", key)
        if match is None or int(match.group(1)) % 2 or int(match.group(1)) == 0:
            continue
        previous = state.get(f"layer{int(match.group(1)) - 1}.weight")
        if previous is not None and value.shape[0] == previous.shape[0] != value.shape[1]:
            fused.add(f"layer{match.group(1)}")
    return fused


def _stylegan_rename(fused_layers: set[str]) -> Rename:
    def rename(key: str, value: torch.Tensor) -> tuple[str, torch.Tensor]:
        if match := re.fullmatch(r"mapping\.dense(\d+)\.(weight|bias)", key):
            index, kind = match.groups()
            suffix = "fc.weight" if kind == "weight" else "wscale.bias"
            return f"mapping.dense{index}.{suffix}", value
        if match := re.fullmatch(r"synthesis\.(layer\d+)\.(.+)", key):
            unit, rest = match.groups()
            if rest == "weight":
                if unit in fused_layers:  # [out, in, k, k] -> TF [k, k, in, out]
                    return f"synthesis.{unit}.weight", value.permute(2, 3, 1, 0)
                return f"synthesis.{unit}.conv.weight", value
            if rest == "bias":
                return f"synthesis.{unit}.epilogue.bias", value
            if rest.startswith("apply_noise."):
                return f"synthesis.{unit}.epilogue.{rest}", value
            if rest == "style.weight":
                return f"synthesis.{unit}.epilogue.style_mod.dense.fc.weight", value
            if rest == "style.bias":
                return f"synthesis.{unit}.epilogue.style_mod.dense.wscale.bias", value
            return key, value  # const, blur.kernel
        if match := re.fullmatch(r"synthesis\.(output\d+)\.weight", key):
            return f"synthesis.{match.group(1)}.conv.weight", value
        return key, value  # truncation.w_avg, synthesis.lod, synthesis.output{b}.bias

    return rename


def _stylegan_fused_layers(state: Mapping[str, torch.Tensor], fused_scale: bool | str) -> set[str]:
    """The StyleGAN up-conv units (even ``layer{k}``, k > 0) that fuse upsampling into a transposed conv.

    The keys and shapes do not say (both kinds store ``[out, in, k, k]``), so genforce's option decides:
    ``'auto'`` (its default and the official models') fuses at 128x128 and above, ``True`` every up-conv.
    """
    fused = set()
    for key, value in state.items():
        match = re.fullmatch(r"synthesis\.layer(\d+)\.apply_noise\.noise", key)
        if match is None or int(match.group(1)) % 2 or int(match.group(1)) == 0:
            continue
        if fused_scale is True or (fused_scale == "auto" and value.shape[-1] >= 128):
            fused.add(f"layer{match.group(1)}")
    return fused


def _stylegan2_rename(key: str, value: torch.Tensor) -> tuple[str, torch.Tensor]:
    if match := re.fullmatch(r"mapping\.dense(\d+)\.weight", key):
        return f"mapping.dense{match.group(1)}.fc.weight", value
    if match := re.fullmatch(r"synthesis\.((?:layer|output)\d+)\.(weight|style\.weight)", key):
        unit, kind = match.groups()
        if kind == "style.weight":
            return f"synthesis.{unit}.style.fc.weight", value
        return f"synthesis.{unit}.weight", value.permute(2, 3, 1, 0)  # [out, in, k, k] -> TF [k, k, in, out]
    return key, value


def zoo_weights(state: dict[str, torch.Tensor], path: Path, stylegan_fused_scale: bool | str = "auto") \
        -> GeneratorWeights:
    """A genforce/genforce generator state dict → ``GeneratorWeights`` (the family told by its keys).

    ``stylegan_fused_scale``: genforce's ``fused_scale`` of a StyleGAN (not recorded in the file; see
    :func:`_stylegan_fused_layers`). PGGAN fused up-convs are told by their transposed kernels' shapes
    where the channel count changes, else plain upsample + conv (genforce's default and the official models').
    """
    if "synthesis.early_layer.const" in state:
        renamed = _rename_all(state, _stylegan2_rename)
        renamed.pop("truncation.truncation", None)
        config = sg2_layout.infer_config(renamed, str(path))
        config.update(truncation_psi=None, truncation_layers=None)
        sg2_layout.check_shapes(config, renamed, str(path))
        return GeneratorWeights("stylegan2", config, renamed, {"format": "genforce-zoo", "path": str(path)})
    if "synthesis.layer0.const" in state and "synthesis.layer0.style.weight" in state:
        renamed = _rename_all(state, _stylegan_rename(_stylegan_fused_layers(state, stylegan_fused_scale)))
        return stylegan_weights(renamed, path, "genforce-zoo", None, None)
    if "layer0.weight" in state:
        return pggan_weights(_rename_all(state, _pggan_rename(_pggan_fused_layers(state))), path, "genforce-zoo")
    raise UnknownFormatError(f"{path}: a torch file, but not a genforce/genforce PGGAN, StyleGAN or StyleGAN2 "
                             f"generator (keys {sorted(state)[:4]})")


@READERS.register("genforce-zoo")
def read_genforce_zoo(path: Path) -> GeneratorWeights:
    """A genforce/genforce checkpoint (``generator_smooth`` if present) → pggan / stylegan / stylegan2."""
    state, entry = load_zoo_generator_state(path)
    weights = zoo_weights(state, path)
    weights.metadata["entry"] = entry
    return weights


def _interfacegan_rename(key: str, value: torch.Tensor) -> tuple[str, torch.Tensor]:
    if key == "synthesis.layer0.first_layer":
        return "synthesis.layer0.const", value
    if key.endswith(".dense.linear.weight") or re.fullmatch(r"mapping\.dense\d+\.linear\.weight", key):
        return key.replace(".linear.weight", ".fc.weight"), value
    return key, value


@READERS.register("interfacegan-stylegan")
def read_interfacegan_stylegan(path: Path) -> GeneratorWeights:
    """InterFaceGAN's ``StyleGANGeneratorModel`` state dict → ``stylegan`` (truncation psi 0.7 on 8 rows)."""
    data = _torch_load(path)
    if not _tensor_dict(data):
        raise UnknownFormatError(f"{path}: expected a state dict (name -> tensor), got {type(data).__name__}")
    if "synthesis.layer0.first_layer" not in data:
        raise UnknownFormatError(f"{path}: no 'synthesis.layer0.first_layer', so not an InterFaceGAN StyleGAN")
    state = _rename_all(data, _interfacegan_rename)
    return stylegan_weights(state, path, "interfacegan-stylegan", INTERFACEGAN_TRUNCATION_PSI,
                            INTERFACEGAN_TRUNCATION_LAYERS)


__all__ = ["load_zoo_generator_state", "read_genforce_zoo", "read_interfacegan_stylegan", "zoo_weights"]
