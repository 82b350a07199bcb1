"""NVlabs stylegan2-ada-pytorch / stylegan3 network pickles (``network-snapshot-*.pkl``, ``ffhq.pkl``, …).

The file is ``pickle.dump(dict(G=..., D=..., G_ema=..., augment_pipe=..., training_set_kwargs=...))``. Every
network is a ``torch_utils.persistence`` class: it pickles as ``_reconstruct_persistent_obj(meta)`` with
``meta = {type, version, module_src, class_name, state}``, where ``module_src`` is the *source code* of
its module (loading it normally means executing that code) and ``state`` the module's ``__dict__``
(``_parameters``, ``_buffers``, ``_modules``, ``_init_args``, ``_init_kwargs``, …). Tensors pickle as
``torch._utils._rebuild_parameter`` / ``_rebuild_tensor_v2`` over storages that are themselves small
legacy ``torch.save`` payloads (``torch.storage._load_from_bytes``).

This reader runs none of that: :class:`~mgan_cli.weights.safe_pickle.SafeUnpickler` maps
``_reconstruct_persistent_obj`` to a function that only records the meta dict (the source is never
compiled), ``torch_utils.*`` / ``training.*`` / ``dnnlib.*`` classes to inert stand-ins, storages to
``torch.load(..., weights_only=True)``, and refuses every other name. Only ``G_ema`` is used: its tensors
are converted into the canonical genforce layout, and its constructor arguments (``init_kwargs``:
``z_dim``, ``w_dim``, ``img_resolution``, ``mapping_kwargs``, ``synthesis_kwargs`` — flat in the
stylegan3 repository — incl. ``channel_base``, ``channel_max``, ``conv_clamp``) give the config.

Conversion (NVlabs → genforce, also :func:`nvlabs_to_genforce`): ``mapping.fc{i}`` → ``mapping.dense{i}``
(``weight`` → ``fc.weight``; both store the weight ×1/lr), ``mapping.w_avg`` → ``truncation.w_avg``,
``b4.const`` → ``early_layer.const[None]``, ``b{4·2^b}.conv0`` → ``layer{2b-1}`` (kernel stored flipped:
``permute(2, 3, 1, 0).flip(0, 1)``), ``.conv1`` → ``layer{2b}``, ``.torgb`` → ``output{b}`` (``permute(2, 3, 1, 0)``
to TF layout), ``affine.weight`` → ``style.fc.weight``, ``affine.bias - 1`` → ``style.bias``,
``noise_const`` → ``noise[None, None]``; the ``resample_filter`` buffers must be the [1,3,3,1] FIR.

**StyleGAN3** (``networks_stylegan3.Generator``, recognised by its ``synthesis.input`` Fourier features) →
``stylegan3`` (:mod:`mgan_cli.generators.stylegan3`): the synthesis keeps NVlabs' own keys, the mapping is
renamed as above (:func:`nvlabs3_to_mgan`). Its config comes only from ``_init_kwargs``, each checked against
:data:`STYLEGAN3_INIT_KWARGS` (an unknown kwarg, a wrong type, or kwargs that disagree with the tensors' shapes are
refused; a snapshot without the record is refused, since cutoffs and filters are not in the shapes).

Config: truncation off (NVlabs' ``truncation_psi=1`` default), ``conv_clamp`` from the pickle (None for
TF-converted nets, 256 for nets trained with stylegan2-ada-pytorch), noise = the stored ``noise_const``
(NVlabs ``noise_mode='const'``; its default 'random' redraws noise every call). ``num_fp16_res`` is
ignored: mgan computes in float32 (NVlabs' ``force_fp32=True``).
"""

from __future__ import annotations

import io
import math
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mgan_cli.errors import UnknownFormatError, UnsafePickleError
from mgan_cli.generators import stylegan2 as sg2
from mgan_cli.utils.settings_schema import SpecError, ValueSpec
from mgan_cli.weights.formats import genforce_stylegan2 as sg2_layout
from mgan_cli.weights.formats.base import READERS, GeneratorWeights, require_fit
from mgan_cli.weights.formats.torch_files import first_line, refused_global
from mgan_cli.weights.safe_pickle import InertObject, charge, plain_data, safe_load

#: persistence version this reader understands (stylegan2-ada-pytorch and stylegan3 both write 6)
PERSISTENCE_VERSION = 6


@dataclass
class PersistentObject:
    """What ``_reconstruct_persistent_obj(meta)`` stands for: the class name and its pickled ``__dict__``."""

    class_name: str
    state: dict[str, Any] = field(default_factory=dict)
    version: Any = None


def _record_persistent(meta: Any) -> PersistentObject:
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise UnsafePickleError("refused a persistent object whose meta is not a plain class record")
    state = meta.get("state")
    return PersistentObject(str(meta.get("class_name")), state if isinstance(state, dict) else {},
                            meta.get("version"))


def _load_storage(data: bytes) -> Any:
    """``torch.storage._load_from_bytes``: a legacy ``torch.save`` of one storage, read as data."""
    if not isinstance(data, bytes | bytearray):
        raise UnsafePickleError("refused a storage that is not a byte string")
    charge(len(data), "a storage")
    try:
        storage = torch.load(io.BytesIO(bytes(data)), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        name = refused_global(str(exc))
        if name is not None:
            raise UnsafePickleError(f"refused a storage record that names '{name}', which is not a tensor: the "
                                    "file may try to run code; weight files are read as data") from None
        raise UnknownFormatError(f"a damaged storage record ({first_line(exc)})") from None
    nbytes = _storage_bytes(storage)
    if nbytes is None or nbytes > len(data):
        raise UnsafePickleError(f"refused a storage of {nbytes} bytes from a {len(data)}-byte record")
    return storage


def _storage_bytes(storage: Any) -> int | None:
    """Bytes held by a (typed or untyped) storage, without TypedStorage's deprecation warning."""
    untyped = getattr(storage, "_untyped_storage", storage)
    return untyped.nbytes() if isinstance(untyped, torch.UntypedStorage) else None


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None, *rest: Any) -> Any:
    if not isinstance(data, torch.Tensor):
        raise UnsafePickleError("refused a parameter that is not a tensor")
    return data


def _rebuild_tensor(storage: Any, *args: Any) -> torch.Tensor:
    if not isinstance(storage, torch.storage.TypedStorage | torch.UntypedStorage):
        raise UnsafePickleError("refused to rebuild a tensor from something that is not a storage")
    offset = args[0] if args else 0
    size = args[1] if len(args) > 1 else ()
    if not isinstance(size, tuple | torch.Size) or not all(isinstance(n, int) and n >= 0 for n in size) \
            or not isinstance(offset, int) or offset < 0:
        raise UnsafePickleError(f"refused to rebuild a tensor of size {size!r} at offset {offset!r}")
    nbytes = _storage_bytes(storage) or 0
    held = nbytes // torch.empty((), dtype=storage.dtype).element_size() \
        if isinstance(storage, torch.storage.TypedStorage) else nbytes
    if offset + math.prod(size) > held:  # a tiny storage seen as a huge tensor (e.g. stride 0) is refused
        raise UnsafePickleError(f"refused a tensor of {math.prod(size)} elements over a storage of {held}")
    return torch._utils._rebuild_tensor_v2(storage, *args)


ALLOWED: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _record_persistent,
    ("torch.storage", "_load_from_bytes"): _load_storage,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}
#: class references that become inert stand-ins (never imported)
INERT_MODULES = ("torch_utils.", "training.", "dnnlib.", "torch.nn.modules.")


def _module_state(obj: Any) -> dict[str, Any]:
    if isinstance(obj, PersistentObject):
        return obj.state
    if isinstance(obj, InertObject):
        state = obj.__dict__.get("state")
        return state if isinstance(state, dict) else {}
    raise UnknownFormatError(f"expected a network module, found {type(obj).__name__}")


def flatten_module(obj: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """A pickled ``nn.Module`` tree (persistent records / inert stand-ins) → its ``state_dict``."""
    state = _module_state(obj)
    skip = set(state.get("_non_persistent_buffers_set") or ())
    tensors: dict[str, torch.Tensor] = {}
    for group in ("_parameters", "_buffers"):
        for name, value in (state.get(group) or {}).items():
            if isinstance(value, torch.Tensor) and not (group == "_buffers" and name in skip):
                tensors[prefix + name] = value.detach().to(torch.float32)
    for name, child in (state.get("_modules") or {}).items():
        if child is not None:
            tensors.update(flatten_module(child, f"{prefix}{name}."))
    return tensors


def _to_tf(weight: torch.Tensor, flip: bool = False) -> torch.Tensor:
    weight = weight.permute(2, 3, 1, 0)
    return (weight.flip(0, 1) if flip else weight).contiguous()


def _to_nv(weight: torch.Tensor, flip: bool = False) -> torch.Tensor:
    return (weight.flip(0, 1) if flip else weight).permute(3, 2, 0, 1).contiguous()


def _layer_names(resolution: int) -> list[tuple[str, str, bool]]:
    """``(nvlabs prefix, genforce prefix, flipped)`` for every synthesis layer."""
    names = []
    for b in range(int(math.log2(resolution)) - 1):
        res = 4 * 2**b
        if b > 0:
            names.append((f"synthesis.b{res}.conv0", f"synthesis.layer{2 * b - 1}", True))
        names.append((f"synthesis.b{res}.conv1", f"synthesis.layer{2 * b}", False))
        names.append((f"synthesis.b{res}.torgb", f"synthesis.output{b}", False))
    return names


def nvlabs_to_genforce(state: Mapping[str, torch.Tensor], source: str = "weights") -> dict[str, torch.Tensor]:
    """An NVlabs ``Generator`` state dict → genforce layout (see the module docstring for the rules)."""
    state = dict(state)
    if any(k.startswith("synthesis.input.") for k in state):
        raise UnknownFormatError(f"{source}: a StyleGAN3 generator, not StyleGAN2 (see nvlabs3_to_mgan)")
    if "mapping.embed.weight" in state:
        raise UnknownFormatError(f"{source}: a class-conditional generator (c_dim > 0) is not supported")
    try:
        resolution = max(int(k.split(".")[1][1:]) for k in state if k.startswith("synthesis.b"))
        out: dict[str, torch.Tensor] = {}
        num_mapping = sum(1 for k in state if k.startswith("mapping.fc") and k.endswith(".weight"))
        for i in range(num_mapping):
            out[f"mapping.dense{i}.fc.weight"] = state.pop(f"mapping.fc{i}.weight")
            out[f"mapping.dense{i}.bias"] = state.pop(f"mapping.fc{i}.bias")
        if "mapping.w_avg" in state:
            out["truncation.w_avg"] = state.pop("mapping.w_avg")
        out["synthesis.early_layer.const"] = state.pop("synthesis.b4.const")[None]
        for nv, gf, flip in _layer_names(resolution):
            out[f"{gf}.weight"] = _to_tf(state.pop(f"{nv}.weight"), flip)
            out[f"{gf}.bias"] = state.pop(f"{nv}.bias")
            out[f"{gf}.style.fc.weight"] = state.pop(f"{nv}.affine.weight")
            out[f"{gf}.style.bias"] = state.pop(f"{nv}.affine.bias") - 1.0
            if f"{nv}.noise_const" in state:
                noise = state.pop(f"{nv}.noise_const")
                out[f"{gf}.noise"] = noise.view(1, 1, *noise.shape)
                out[f"{gf}.noise_strength"] = state.pop(f"{nv}.noise_strength")
    except (KeyError, ValueError) as exc:
        raise UnknownFormatError(f"{source}: not an NVlabs StyleGAN2 generator (missing {exc})") from exc
    fir = sg2.fir_kernel()[0, 0] / 4.0
    for key in [k for k in state if k.endswith("resample_filter")]:
        if not torch.allclose(state.pop(key), fir):
            raise UnknownFormatError(f"{source}: {key} is not the [1,3,3,1] filter mgan implements")
    if state:
        raise UnknownFormatError(f"{source}: unexpected NVlabs tensors {sorted(state)[:4]}")
    out.update(sg2_layout.fixed_buffers(resolution))
    return out


def genforce_to_nvlabs(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of :func:`nvlabs_to_genforce` (``resample_filter`` buffers included), e.g. to export."""
    num_layers = 1 + max(int(k.split(".")[1][5:]) for k in state if k.startswith("synthesis.layer"))
    resolution = 2 ** ((num_layers + 3) // 2)
    fir = sg2.fir_kernel()[0, 0] / 4.0
    out: dict[str, torch.Tensor] = {"synthesis.b4.const": state["synthesis.early_layer.const"][0]}
    for b in range(int(math.log2(resolution)) - 1):
        out[f"synthesis.b{4 * 2**b}.resample_filter"] = fir.clone()
    for nv, gf, flip in _layer_names(resolution):
        out[f"{nv}.weight"] = _to_nv(state[f"{gf}.weight"], flip)
        out[f"{nv}.bias"] = state[f"{gf}.bias"]
        if f"{gf}.noise" in state:
            out[f"{nv}.noise_strength"] = state[f"{gf}.noise_strength"]
            out[f"{nv}.resample_filter"] = fir.clone()
            out[f"{nv}.noise_const"] = state[f"{gf}.noise"][0, 0]
        out[f"{nv}.affine.weight"] = state[f"{gf}.style.fc.weight"]
        out[f"{nv}.affine.bias"] = state[f"{gf}.style.bias"] + 1.0
    i = 0
    while f"mapping.dense{i}.fc.weight" in state:
        out[f"mapping.fc{i}.weight"] = state[f"mapping.dense{i}.fc.weight"]
        out[f"mapping.fc{i}.bias"] = state[f"mapping.dense{i}.bias"]
        i += 1
    out["mapping.w_avg"] = state["truncation.w_avg"]
    return out


@dataclass(frozen=True)
class InitKwarg:
    """One NVlabs constructor argument: the values mgan implements (``allowed``: exact values, or ``spec``: a
    range; neither = any value), and ``why`` for the refusal message or for what mgan does with it."""

    allowed: tuple[Any, ...] = ()
    spec: ValueSpec | None = None
    why: str = ""

    def refusal(self, value: Any) -> str | None:
        """``None`` if mgan implements ``value``, else what it implements."""
        if self.allowed:
            return None if any(_same(value, a) for a in self.allowed) \
                else f"mgan implements {' or '.join(repr(a) for a in self.allowed)}{self.why}"
        if self.spec is not None:
            try:
                self.spec.check(value)
            except SpecError as exc:
                return str(exc)
        return None


def _same(value: Any, allowed: Any) -> bool:
    """Equal and of the same kind (``True`` is not ``1``; lists and tuples compare as sequences)."""
    if isinstance(value, list | tuple) and isinstance(allowed, list | tuple):
        return len(value) == len(allowed) and all(_same(v, a) for v, a in zip(value, allowed, strict=True))
    return type(value) is type(allowed) and value == allowed


_INT = ValueSpec("int", minimum=1, maximum=65536)
_IGNORED = InitKwarg(why="; a training or speed setting with no effect on the images")

#: ``G_ema``'s ``_init_kwargs`` mgan's ``stylegan2`` implements, per block (``""`` = the Generator's own;
#: ``mapping_kwargs`` → MappingNetwork; ``synthesis_kwargs`` → SynthesisNetwork, SynthesisBlock and
#: SynthesisLayer, which all receive them). A key not listed here, or a value not allowed, is refused.
STYLEGAN2_INIT_KWARGS: dict[str, dict[str, InitKwarg]] = {
    "": {
        "z_dim": InitKwarg(spec=_INT), "w_dim": InitKwarg(spec=_INT),
        "c_dim": InitKwarg((0,), why=" (class-conditional generators are not supported)"),
        "img_resolution": InitKwarg(spec=ValueSpec("int", minimum=4, maximum=8192)),
        "img_channels": InitKwarg((3,), why=" (RGB; single-channel generators are refused at import: mgan's "
                                           "tasks, metrics and reports are RGB)"),
        "mapping_kwargs": InitKwarg(), "synthesis_kwargs": InitKwarg(),
    },
    "mapping_kwargs": {
        "num_layers": InitKwarg(spec=ValueSpec("int", minimum=1, maximum=64)),
        "layer_features": InitKwarg(spec=ValueSpec("int", minimum=1, maximum=65536, nullable=True)),
        "embed_features": InitKwarg((None,), why=" (an embedding exists only for c_dim > 0)"),
        "activation": InitKwarg(("lrelu",), why=" (leaky ReLU 0.2 with gain sqrt(2))"),
        "lr_multiplier": InitKwarg(spec=ValueSpec("float", minimum=0, min_open=True)),
        "w_avg_beta": _IGNORED,
    },
    "synthesis_kwargs": {
        "channel_base": InitKwarg(spec=ValueSpec("int", minimum=1, maximum=2**24)),
        "channel_max": InitKwarg(spec=_INT),
        "num_fp16_res": InitKwarg(spec=ValueSpec("int", minimum=0), why="; mgan computes in float32"),
        "conv_clamp": InitKwarg(spec=ValueSpec("float", minimum=0, min_open=True, nullable=True)),
        "architecture": InitKwarg(("skip",), why=" (the 'skip' generator of configs E and F; 'orig' and "
                                                 "'resnet' are not implemented)"),
        "resample_filter": InitKwarg(([1, 3, 3, 1],)),
        "use_noise": InitKwarg((True,), why=" (the stored noise_const buffers)"),
        "activation": InitKwarg(("lrelu",), why=" (leaky ReLU 0.2 with gain sqrt(2))"),
        "kernel_size": InitKwarg((3,)),
        "fp16_channels_last": _IGNORED, "channels_last": _IGNORED, "use_fp16": _IGNORED,
        "fused_modconv_default": _IGNORED,
    },
}
#: NVlabs init-kwarg tables per mgan architecture (a reader for another architecture adds its own)
INIT_KWARGS: dict[str, dict[str, dict[str, InitKwarg]]] = {"stylegan2": STYLEGAN2_INIT_KWARGS}


def check_init_kwargs(kwargs: Mapping[str, Any], table: Mapping[str, Mapping[str, InitKwarg]],
                      source: str = "weights") -> None:
    """Refuse (:class:`UnknownFormatError`) any init kwarg ``table`` does not list, or a value it does not allow.

    Sub-blocks given as ``mapping_kwargs`` / ``synthesis_kwargs`` are checked against their table; keys of a
    block that is not given as a dict (the stylegan3 repository passes ``**synthesis_kwargs`` flat) are looked
    up in it too.
    """
    nested = {name for name in table if name and isinstance(kwargs.get(name), Mapping)}
    flat = {k: v for k, v in kwargs.items() if k not in nested}
    blocks: list[tuple[str, Mapping[str, Any], dict[str, InitKwarg]]] = [
        ("", flat, {**table[""], **{k: v for name in table if name and name not in nested
                                    for k, v in table[name].items()}})]
    blocks += [(name, kwargs[name], dict(table[name])) for name in sorted(nested)]
    for block, values, known in blocks:
        for key, value in values.items():
            where = f"{block}.{key}" if block else key
            if key not in known:
                raise UnknownFormatError(f"{source}: NVlabs init kwarg {where}={value!r} is not one mgan knows, "
                                         "so it cannot say the generator would render the same; not imported")
            refusal = known[key].refusal(value)
            if refusal is not None:
                raise UnknownFormatError(f"{source}: NVlabs init kwarg {where}={value!r} is not supported: "
                                         f"{refusal}")


def config_from_init_kwargs(kwargs: Mapping[str, Any], source: str = "weights") -> dict[str, Any]:
    """``stylegan2`` constructor kwargs from an NVlabs ``Generator``'s ``init_kwargs`` (truncation off), after
    :func:`check_init_kwargs` against :data:`STYLEGAN2_INIT_KWARGS`."""
    check_init_kwargs(kwargs, STYLEGAN2_INIT_KWARGS, source)
    mapping = kwargs.get("mapping_kwargs") or {}
    synthesis = kwargs.get("synthesis_kwargs", kwargs) or {}
    try:
        w_dim = int(kwargs["w_dim"])
        clamp = synthesis.get("conv_clamp")
        return {
            "resolution": int(kwargs["img_resolution"]), "z_dim": int(kwargs["z_dim"]), "w_dim": w_dim,
            "image_channels": int(kwargs.get("img_channels", 3)),
            "fmaps_base": int(synthesis.get("channel_base", 32768)),
            "fmaps_max": int(synthesis.get("channel_max", 512)),
            "num_mapping_layers": int(mapping.get("num_layers", 8)),
            "mapping_hidden": int(mapping.get("layer_features") or w_dim),
            "mapping_lr_multiplier": float(mapping.get("lr_multiplier", 0.01)),
            "truncation_psi": None, "truncation_layers": None,
            "conv_clamp": None if clamp is None else float(clamp),
            "architecture": str(synthesis.get("architecture", "skip")),
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise UnknownFormatError(f"{source}: unreadable NVlabs init_kwargs ({exc})") from exc


# ---- StyleGAN3 (NVlabs/stylegan3 training/networks_stylegan3.py) ------------------------------------------

def nvlabs3_to_mgan(state: Mapping[str, torch.Tensor], source: str = "weights") -> dict[str, torch.Tensor]:
    """An NVlabs StyleGAN3 ``Generator`` state dict → mgan's ``stylegan3`` layout: the mapping is renamed
    as for StyleGAN2 (``mapping.fc{i}`` → ``mapping.dense{i}``, ``mapping.w_avg`` → ``truncation.w_avg``);
    the synthesis keys are NVlabs' own and pass through unchanged."""
    if "mapping.embed.weight" in state:
        raise UnknownFormatError(f"{source}: a class-conditional generator (c_dim > 0) is not supported")
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        if key == "mapping.w_avg":
            out["truncation.w_avg"] = value
        elif parts[0] == "mapping" and len(parts) == 3 and parts[1].startswith("fc") and parts[1][2:].isdigit():
            out[f"mapping.dense{parts[1][2:]}." + ("fc.weight" if parts[2] == "weight" else parts[2])] = value
        else:
            out[key] = value
    return out


def mgan_to_nvlabs3(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of :func:`nvlabs3_to_mgan` (e.g. to export, or to write official-layout test files)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        if key == "truncation.w_avg":
            out["mapping.w_avg"] = value
        elif parts[0] == "mapping" and parts[1].startswith("dense"):
            out[f"mapping.fc{parts[1][5:]}.{parts[-1]}"] = value
        else:
            out[key] = value
    return out


_FLOAT_POSITIVE = ValueSpec("float", minimum=0, min_open=True)

#: ``G_ema``'s ``_init_kwargs`` mgan's ``stylegan3`` implements (networks_stylegan3 passes the synthesis
#: kwargs flat: they are looked up in ``synthesis_kwargs``), and the ``stylegan3`` config key each one sets
#: (:data:`STYLEGAN3_CONFIG_KEYS`). A key not listed here, or a value not allowed, is refused.
STYLEGAN3_INIT_KWARGS: dict[str, dict[str, InitKwarg]] = {
    "": {
        "z_dim": InitKwarg(spec=_INT), "w_dim": InitKwarg(spec=_INT),
        "c_dim": InitKwarg((0,), why=" (class-conditional generators are not supported)"),
        "img_resolution": InitKwarg(spec=ValueSpec("int", minimum=4, maximum=8192)),
        "img_channels": InitKwarg((3,), why=" (RGB; mgan's tasks, metrics and reports are RGB)"),
        "mapping_kwargs": InitKwarg(),
    },
    "mapping_kwargs": {
        "num_layers": InitKwarg(spec=ValueSpec("int", minimum=1, maximum=64)),
        "lr_multiplier": InitKwarg(spec=_FLOAT_POSITIVE),
        "w_avg_beta": _IGNORED,
    },
    "synthesis_kwargs": {
        "channel_base": InitKwarg(spec=ValueSpec("int", minimum=1, maximum=2**24)),
        "channel_max": InitKwarg(spec=_INT),
        "num_layers": InitKwarg(spec=ValueSpec("int", minimum=2, maximum=64)),
        "num_critical": InitKwarg(spec=ValueSpec("int", minimum=0, maximum=64)),
        "first_cutoff": InitKwarg(spec=_FLOAT_POSITIVE), "first_stopband": InitKwarg(spec=_FLOAT_POSITIVE),
        "last_stopband_rel": InitKwarg(spec=_FLOAT_POSITIVE),
        "margin_size": InitKwarg(spec=ValueSpec("int", minimum=0, maximum=1024)),
        "output_scale": InitKwarg(spec=ValueSpec("float")),
        "filter_size": InitKwarg(spec=ValueSpec("int", minimum=1, maximum=64)),
        "lrelu_upsampling": InitKwarg(spec=ValueSpec("int", minimum=1, maximum=16)),
        "conv_kernel": InitKwarg(spec=ValueSpec("int", minimum=1, maximum=15)),
        "use_radial_filters": InitKwarg(spec=ValueSpec("bool")),
        "conv_clamp": InitKwarg(spec=ValueSpec("float", minimum=0, min_open=True, nullable=True)),
        "num_fp16_res": InitKwarg(spec=ValueSpec("int", minimum=0), why="; mgan computes in float32"),
        "magnitude_ema_beta": _IGNORED,  # rendering reads the stored magnitude_ema
    },
}
INIT_KWARGS["stylegan3"] = STYLEGAN3_INIT_KWARGS
#: NVlabs init kwarg (block, key) → ``stylegan3`` config key; the others are checked and have no effect
STYLEGAN3_CONFIG_KEYS: dict[tuple[str, str], str] = {
    ("", "z_dim"): "z_dim", ("", "w_dim"): "w_dim", ("", "img_resolution"): "resolution",
    ("", "img_channels"): "image_channels", ("mapping_kwargs", "num_layers"): "num_mapping_layers",
    ("mapping_kwargs", "lr_multiplier"): "mapping_lr_multiplier",
    **{("synthesis_kwargs", key): key for key in (
        "channel_base", "channel_max", "num_layers", "num_critical", "first_cutoff", "first_stopband",
        "last_stopband_rel", "margin_size", "output_scale", "filter_size", "lrelu_upsampling", "conv_kernel",
        "use_radial_filters", "conv_clamp")},
}


def config_from_sg3_kwargs(kwargs: Mapping[str, Any], source: str = "weights") -> dict[str, Any]:
    """``stylegan3`` constructor kwargs (truncation off) from an NVlabs StyleGAN3 ``Generator``'s ``init_kwargs``,
    after :func:`check_init_kwargs` against :data:`STYLEGAN3_INIT_KWARGS`."""
    check_init_kwargs(kwargs, STYLEGAN3_INIT_KWARGS, source)
    blocks = {"": kwargs, "mapping_kwargs": kwargs.get("mapping_kwargs") or {},
              "synthesis_kwargs": kwargs.get("synthesis_kwargs") or kwargs}
    config: dict[str, Any] = {"truncation_psi": None, "truncation_layers": None}
    for (block, key), target in STYLEGAN3_CONFIG_KEYS.items():
        if key in blocks[block]:
            spec = STYLEGAN3_INIT_KWARGS[block][key].spec
            value = blocks[block][key]
            config[target] = spec.check(value) if spec is not None else value
    missing = [name for name in ("z_dim", "w_dim", "resolution") if name not in config]
    if missing:
        raise UnknownFormatError(f"{source}: StyleGAN3 init kwargs lack {', '.join(missing)}")
    return config


def read_stylegan3(state: Mapping[str, torch.Tensor], kwargs: Any, source: str) -> tuple[dict[str, Any],
                                                                                         dict[str, torch.Tensor]]:
    """The ``stylegan3`` config and state dict of an NVlabs StyleGAN3 ``G_ema`` (keys and shapes checked)."""
    if not (isinstance(kwargs, dict) and kwargs):
        raise UnknownFormatError(f"{source}: a StyleGAN3 generator without its constructor record "
                                 "(_init_kwargs); its filters and cutoffs cannot be known from the tensors")
    config = config_from_sg3_kwargs(kwargs, source)
    converted = nvlabs3_to_mgan(state, source)
    require_fit("stylegan3", config, converted, source)
    return config, converted


def architecture_from_keys(state: Mapping[str, torch.Tensor], source: str = "weights") -> None:
    """For pickles without ``_init_kwargs``: refuse what the tensors show is not a 3-channel 'skip' StyleGAN2
    ('resnet' blocks have ``skip`` convolutions; 'orig' has a toRGB only in its last block)."""
    blocks = sorted({int(k.split(".")[1][1:]) for k in state if re.match(r"synthesis\.b\d+\.", k)})
    if any(re.match(r"synthesis\.b\d+\.skip\.", k) for k in state):
        raise UnknownFormatError(f"{source}: an NVlabs StyleGAN2 with the 'resnet' architecture (skip convolutions "
                                 "in its blocks); mgan implements only 'skip'")
    if blocks and len(blocks) > 1 and f"synthesis.b{blocks[0]}.torgb.weight" not in state \
            and f"synthesis.b{blocks[-1]}.torgb.weight" in state:
        raise UnknownFormatError(f"{source}: an NVlabs StyleGAN2 with the 'orig' architecture (a toRGB only in "
                                 "its last block); mgan implements only 'skip'")
    torgb = state.get(f"synthesis.b{blocks[-1]}.torgb.weight") if blocks else None
    if torgb is not None and torgb.shape[0] != 3:
        raise UnknownFormatError(f"{source}: a {torgb.shape[0]}-channel generator; mgan imports RGB generators "
                                 "only (its tasks, metrics and reports are RGB)")


@READERS.register("nvlabs-pickle")
def read_nvlabs_pickle(path: Path) -> GeneratorWeights:
    """An NVlabs stylegan2-ada-pytorch / stylegan3 ``.pkl``: ``G_ema`` → ``stylegan2``, or ``stylegan3`` for
    alias-free generators (recognised by their ``synthesis.input`` Fourier features)."""
    try:
        data = safe_load(path, allowed=ALLOWED, inert_modules=INERT_MODULES)
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"{path}: {exc}") from None
    except Exception as exc:  # truncated or non-pickle files raise many types
        raise UnknownFormatError(f"{path}: not an NVlabs network pickle ({first_line(exc)})") from exc
    if not isinstance(data, dict) or "G_ema" not in data:
        raise UnknownFormatError(f"{path}: expected a pickled dict with 'G_ema' (an NVlabs network snapshot)")
    g_ema = data["G_ema"]
    if isinstance(g_ema, PersistentObject) and g_ema.version != PERSISTENCE_VERSION:
        raise UnknownFormatError(f"{path}: torch_utils.persistence version {g_ema.version} is not supported")
    class_name = g_ema.class_name if isinstance(g_ema, PersistentObject) else type(g_ema).__name__
    module_state = _module_state(g_ema)
    if module_state.get("_init_args"):
        raise UnknownFormatError(f"{path}: G_ema was built with positional arguments "
                                 f"{plain_data(module_state['_init_args'])!r}, which mgan cannot interpret")
    tensors = flatten_module(g_ema)
    kwargs = plain_data(module_state.get("_init_kwargs"))
    if any(key.startswith("synthesis.input.") for key in tensors):
        config, state = read_stylegan3(tensors, kwargs, str(path))
        return GeneratorWeights("stylegan3", config, state, {"format": "nvlabs-pickle", "class_name": class_name})
    config = config_from_init_kwargs(kwargs, str(path)) if isinstance(kwargs, dict) and kwargs else None
    if config is None:
        architecture_from_keys(tensors, str(path))
    state = nvlabs_to_genforce(tensors, str(path))  # converted only once the config says mgan implements it
    if config is None:  # no constructor record: shapes give everything but conv_clamp
        config = {**sg2_layout.infer_config(state, str(path)), "truncation_psi": None, "truncation_layers": None}
    if "truncation.w_avg" not in state:
        state["truncation.w_avg"] = sg2_layout.mean_w(config, state)
    sg2_layout.check_shapes(config, state, str(path))
    return GeneratorWeights("stylegan2", config, state, {"format": "nvlabs-pickle", "class_name": class_name})
