"""Writers of the paper generators' official on-disk formats, for tests and benchmarks (no official file is
available here, and TensorFlow / the NVlabs code are not installed).

* TensorFlow network pickles: ``pickle.dump((G, D, Gs), protocol=4)`` of objects whose class is PGGAN's
  ``tfutil.Network`` or StyleGAN/StyleGAN2's ``dnnlib.tflib.network.Network`` (stand-in classes registered under
  those module names while writing) and whose ``__getstate__`` is the official state dict (``version``,
  ``name``, ``static_kwargs``, ``components``, ``build_module_src``, ``build_func_name``, ``variables``):
  :func:`write_tf_pggan`, :func:`write_tf_style`.
* NVlabs PyTorch network pickles (stylegan2-ada-pytorch / stylegan3 snapshots): a snapshot dict whose networks
  pickle as ``torch_utils.persistence._reconstruct_persistent_obj(meta)`` with ``module_src``, ``class_name``
  and an ``nn.Module``-like ``__dict__`` state, kwargs as ``dnnlib.util.EasyDict``:
  :func:`write_nvlabs_snapshot` (StyleGAN2), :func:`write_stylegan3_snapshot`; both need the stand-in modules
  of :func:`official_nvlabs_modules` registered while writing.

``build_module_src`` / ``module_src`` is data the readers must never execute; tests pass code that would
create a marker file, benchmarks a harmless comment. :func:`randomised` draws a generator's weights.
"""

from __future__ import annotations

import collections
import pickle
import sys
import types
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mgan_cli.generators import ARCHITECTURES

#: buffers :func:`randomised` keeps (fixed kernels and the progressive-growing level)
FIXED_BUFFERS = ("lod", "blur.kernel", "filter.kernel", "upsample.kernel")
#: the TF build functions of a StyleGAN / StyleGAN2 ``Gs`` (main, mapping, synthesis)
SG_FUNCS = ("G_style", "G_mapping", "G_synthesis")
SG2_FUNCS = ("G_main", "G_mapping", "G_synthesis_stylegan2")


def randomised(architecture: str, config: dict, seed: int) -> torch.nn.Module:
    """``ARCHITECTURES[architecture](**config)`` with every weight, bias and noise buffer redrawn (seeded)."""
    torch.manual_seed(seed)
    model = ARCHITECTURES.get(architecture)(**config)
    state = model.state_dict()
    gen = torch.Generator().manual_seed(seed)
    for key, value in state.items():
        if value.is_floating_point() and not key.endswith(FIXED_BUFFERS):
            scale = 0.1 if "bias" in key or key.endswith("noise_strength") else 1.0
            state[key] = torch.randn(value.shape, generator=gen) * scale
    model.load_state_dict(state)
    return model.freeze()


# ---- TensorFlow network pickles ------------------------------------------------------------------------------

class _Network:
    """Pickles like the official ``Network``: NEWOBJ of the class, then BUILD with ``__getstate__()``."""

    def __init__(self, state: dict[str, Any]) -> None:
        self._state = state

    def __getstate__(self) -> dict[str, Any]:
        return self._state


@contextmanager
def _official_tf_classes() -> Iterator[dict[str, type]]:
    """Stand-ins registered as ``tfutil.Network`` and ``dnnlib.tflib.network.Network`` while pickling."""
    tfutil_cls = type("Network", (_Network,), {"__module__": "tfutil", "__qualname__": "Network"})
    dnnlib_cls = type("Network", (_Network,), {"__module__": "dnnlib.tflib.network", "__qualname__": "Network"})
    modules = {name: types.ModuleType(name) for name in ("tfutil", "dnnlib", "dnnlib.tflib", "dnnlib.tflib.network")}
    modules["tfutil"].Network = tfutil_cls  # type: ignore[attr-defined]
    modules["dnnlib.tflib.network"].Network = dnnlib_cls  # type: ignore[attr-defined]
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    try:
        yield {"tfutil": tfutil_cls, "dnnlib": dnnlib_cls}
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def _build_source(marker: Path | None, func: str) -> str:
    """The network's ``build_module_src``: with ``marker``, code that creates it if it were ever executed."""
    if marker is None:
        return f"# the official networks module would be here\n\ndef {func}(*args, **kwargs):\n    pass\n"
    return f"import os\nos.system('touch {marker}')\n\ndef {func}(*args, **kwargs):\n    pass\n"


def _state(version: int, name: str, func: str, kwargs: dict, variables: Mapping[str, Any], marker: Path | None,
           components: dict | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {"version": version, "name": name, "static_kwargs": dict(kwargs)}
    if components is not None:
        state["components"] = components
    state.update(build_module_src=_build_source(marker, func), build_func_name=func,
                 variables=list(variables.items()))
    return state


def _discriminator(cls: type, version: int, func: str, marker: Path | None) -> _Network:
    weight = np.random.default_rng(0).standard_normal((4, 1), np.float32)
    return cls(_state(version, "D", func, {"resolution": 32}, {"4x4/Dense1/weight": weight}, marker))


def write_tf_pggan(path: Path, variables: Mapping[str, Any], kwargs: dict, marker: Path | None = None) -> None:
    """``(G, D, Gs)`` of version-2 ``tfutil.Network`` states (G_paper)."""
    with _official_tf_classes() as classes:
        cls = classes["tfutil"]
        nets = tuple(cls(_state(2, name, "G_paper", kwargs, variables, marker)) for name in ("G", "Gs"))
        data = (nets[0], _discriminator(cls, 2, "D_paper", marker), nets[1])
        path.write_bytes(pickle.dumps(data, protocol=4))


def write_tf_style(path: Path, variables: Mapping[str, Any], kwargs: dict, marker: Path | None, version: int,
                   funcs: tuple[str, str, str], num_layers: int) -> None:
    """``(G, D, Gs)`` of ``dnnlib.tflib.network.Network`` states: Gs with ``mapping`` / ``synthesis`` components
    (version 3 and :data:`SG_FUNCS` for StyleGAN, 4 and :data:`SG2_FUNCS` for StyleGAN2)."""
    main_func, mapping_func, synthesis_func = funcs
    own = {k: v for k, v in variables.items() if "/" not in k or k.split("/", 1)[0] not in ("mapping", "synthesis")}
    parts = {c: {k.split("/", 1)[1]: v for k, v in variables.items() if k.startswith(c + "/")}
             for c in ("mapping", "synthesis")}
    with _official_tf_classes() as classes:
        cls = classes["dnnlib"]

        def generator(name: str) -> _Network:
            components = {
                "synthesis": cls(_state(version, "G_synthesis", synthesis_func, kwargs, parts["synthesis"], marker)),
                "mapping": cls(_state(version, "G_mapping", mapping_func, {**kwargs, "dlatent_broadcast": num_layers},
                                      parts["mapping"], marker)),
            }
            return cls(_state(version, name, main_func, kwargs, own, marker, components))

        data = (generator("G"), _discriminator(cls, version, "D_basic", marker), generator("Gs"))
        path.write_bytes(pickle.dumps(data, protocol=4))


# ---- NVlabs PyTorch network pickles --------------------------------------------------------------------------

@contextmanager
def official_nvlabs_modules() -> Iterator[types.SimpleNamespace]:
    """Stand-ins registered under the official module paths (``torch_utils.persistence``, ``dnnlib.util``) while
    the block runs, so pickle writes the official global names; ``reconstruct`` raises if ever called."""
    persistence = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta: dict) -> None:
        raise AssertionError("mgan must never call the real reconstruct function")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj  # type: ignore[attr-defined]
    util = types.ModuleType("dnnlib.util")
    easy_dict = type("EasyDict", (dict,), {"__module__": "dnnlib.util", "__qualname__": "EasyDict"})
    util.EasyDict = easy_dict  # type: ignore[attr-defined]
    torch_utils, dnnlib = types.ModuleType("torch_utils"), types.ModuleType("dnnlib")
    torch_utils.persistence = persistence  # type: ignore[attr-defined]
    dnnlib.util, dnnlib.EasyDict = util, easy_dict  # type: ignore[attr-defined]
    modules = {"torch_utils": torch_utils, "torch_utils.persistence": persistence, "dnnlib": dnnlib,
               "dnnlib.util": util}
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    try:
        yield types.SimpleNamespace(reconstruct=_reconstruct_persistent_obj, EasyDict=easy_dict)
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


class Persistent:
    """Pickles exactly like a ``@persistence.persistent_class`` nn.Module instance."""

    def __init__(self, reconstruct: object, class_name: str, state: dict, module_src: str) -> None:
        self.reconstruct, self.class_name, self.state, self.module_src = reconstruct, class_name, state, module_src

    def __reduce__(self) -> tuple:
        meta = {"type": "class", "version": 6, "module_src": self.module_src, "class_name": self.class_name,
                "state": self.state}
        return (self.reconstruct, (meta,))


def _module_node(class_name: str, backward_hooks: bool = True) -> dict:
    node = {"training": False, "_parameters": collections.OrderedDict(), "_buffers": collections.OrderedDict(),
            "_non_persistent_buffers_set": set(), "_forward_hooks": collections.OrderedDict(),
            "_modules": collections.OrderedDict(), "_init_args": (), "_init_kwargs": {}, "class_name": class_name}
    if backward_hooks:
        node["_backward_hooks"] = collections.OrderedDict()
    return node


def _wrap(env: types.SimpleNamespace, tree: dict, module_src: str) -> Persistent:
    tree["_modules"] = collections.OrderedDict((k, _wrap(env, v, module_src)) for k, v in tree["_modules"].items())
    return Persistent(env.reconstruct, tree.pop("class_name"), tree, module_src)


#: StyleGAN2 (stylegan2-ada-pytorch ``training/networks.py``) class names by module name
NV_CLASSES = {"conv0": "SynthesisLayer", "conv1": "SynthesisLayer", "torgb": "ToRGBLayer",
              "affine": "FullyConnectedLayer", "synthesis": "SynthesisNetwork", "mapping": "MappingNetwork"}


def persistent_tree(env: types.SimpleNamespace, state: dict[str, torch.Tensor], init_kwargs: dict,
                    module_src: str) -> Persistent:
    """Nest a flat NVlabs StyleGAN2 state dict into persistent modules with nn.Module-like ``__dict__`` states."""
    root = _module_node("Generator")
    root["_init_kwargs"] = init_kwargs
    root.update({k: v for k, v in init_kwargs.items() if k in ("z_dim", "c_dim", "w_dim", "img_resolution")})
    for key, value in state.items():
        *path, leaf = key.split(".")
        current = root
        for part in path:
            if part not in current["_modules"]:
                cls = NV_CLASSES.get(part, "SynthesisBlock" if part.startswith("b") else "FullyConnectedLayer")
                current["_modules"][part] = _module_node(cls)
                current["_modules"][part]["weight_gain"] = np.float64(0.125)  # numpy scalars appear in states
            current = current["_modules"][part]
        is_buffer = leaf in ("w_avg", "noise_const", "resample_filter")
        current["_buffers" if is_buffer else "_parameters"][leaf] = (
            value.clone() if is_buffer else torch.nn.Parameter(value.clone(), requires_grad=False))
    return _wrap(env, root, module_src)


def nv_kwargs(env: types.SimpleNamespace, conv_clamp: float | None, flat: bool = False, *, z_dim: int = 64,
              w_dim: int = 64, resolution: int = 32, channel_base: int = 1024, channel_max: int = 64,
              mapping_layers: int = 8) -> dict:
    """A StyleGAN2 ``Generator``'s init kwargs as the snapshot records them (the defaults: a small test net;
    config-f 1024 is ``z_dim=w_dim=512, resolution=1024, channel_base=32768, channel_max=512``)."""
    synthesis = {"channel_base": channel_base, "channel_max": channel_max, "num_fp16_res": 0,
                 "conv_clamp": conv_clamp, "architecture": "skip", "resample_filter": [1, 3, 3, 1],
                 "use_noise": True}
    kwargs = {"z_dim": z_dim, "c_dim": 0, "w_dim": w_dim, "img_resolution": resolution, "img_channels": 3,
              "mapping_kwargs": env.EasyDict(num_layers=mapping_layers, layer_features=None, lr_multiplier=0.01)}
    if flat:  # the stylegan3 repository's networks_stylegan2.Generator takes **synthesis_kwargs
        return {**kwargs, **synthesis}
    return {**kwargs, "synthesis_kwargs": env.EasyDict(synthesis)}


def write_nvlabs_snapshot(path: Path, env: types.SimpleNamespace, nv_state: dict[str, torch.Tensor], kwargs: dict,
                          module_src: str = "# training/networks.py source would be here\n") -> None:
    """A stylegan2-ada-pytorch ``network-snapshot-*.pkl``: ``G``, ``D``, ``G_ema``, ``augment_pipe``."""
    g_ema = persistent_tree(env, nv_state, kwargs, module_src)
    discriminator = persistent_tree(env, {"b32.fromrgb.weight": torch.randn(8, 3, 1, 1)}, {"c_dim": 0}, module_src)
    augment = persistent_tree(env, {"Hz_geom": torch.randn(12)}, {"xflip": 1}, module_src)
    snapshot = {"training_set_kwargs": {"path": "ffhq.zip", "resolution": 32}, "G": g_ema, "D": discriminator,
                "G_ema": g_ema, "augment_pipe": augment}
    with open(path, "wb") as handle:
        pickle.dump(snapshot, handle)


#: StyleGAN3 (``training/networks_stylegan3.py``) buffers and class names by module name
SG3_BUFFERS = ("w_avg", "transform", "freqs", "phases", "magnitude_ema", "up_filter", "down_filter")
SG3_CLASSES = {"mapping": "MappingNetwork", "synthesis": "SynthesisNetwork", "input": "SynthesisInput",
               "affine": "FullyConnectedLayer"}


def stylegan3_kwargs(config: Mapping[str, Any], conv_clamp: float | None = 256) -> dict[str, Any]:
    """``train.py --cfg=stylegan3-t/-r``'s Generator kwargs (batch 32) for an mgan ``stylegan3`` config
    (``resolution``, ``z_dim``, ``w_dim``, ``channel_base``, ``channel_max``, ``conv_kernel``,
    ``use_radial_filters``); the rest are the official constructor defaults. ``mapping_kwargs`` is a plain
    dict: :func:`write_stylegan3_snapshot` makes it an ``EasyDict``."""
    return {"z_dim": int(config.get("z_dim", 512)), "c_dim": 0, "w_dim": int(config.get("w_dim", 512)),
            "img_resolution": int(config["resolution"]), "img_channels": 3,
            "mapping_kwargs": {"num_layers": 2, "lr_multiplier": 0.01, "w_avg_beta": 0.998},
            "channel_base": int(config.get("channel_base", 32768)), "channel_max": int(config.get("channel_max", 512)),
            "magnitude_ema_beta": 0.5 ** (32 / 20000), "num_layers": 14, "num_critical": 2, "first_cutoff": 2,
            "first_stopband": 2 ** 2.1, "last_stopband_rel": 2 ** 0.3, "margin_size": 10, "output_scale": 0.25,
            "num_fp16_res": 4, "filter_size": 6, "lrelu_upsampling": 2, "conv_clamp": conv_clamp,
            "conv_kernel": int(config.get("conv_kernel", 3)),
            "use_radial_filters": bool(config.get("use_radial_filters", False))}


def write_stylegan3_snapshot(path: Path, env: types.SimpleNamespace, state: dict[str, torch.Tensor],
                             kwargs: dict | None, module_src: str = "# networks_stylegan3.py would be here\n") -> None:
    """A stylegan3 ``network-snapshot-*.pkl`` of the NVlabs StyleGAN3 state dict ``state`` (``kwargs``: the
    Generator's init kwargs; ``None`` writes one without its constructor record)."""
    root = _module_node("Generator", backward_hooks=False)
    if kwargs is not None:
        root["_init_kwargs"] = {**kwargs, "mapping_kwargs": env.EasyDict(kwargs.get("mapping_kwargs") or {})}
    for key, value in state.items():
        *path_parts, leaf = key.split(".")
        current = root
        for part in path_parts:
            if part not in current["_modules"]:
                current["_modules"][part] = _module_node(
                    SG3_CLASSES.get(part, "SynthesisLayer" if part.startswith("L") else "FullyConnectedLayer"),
                    backward_hooks=False)
            current = current["_modules"][part]
        if leaf in SG3_BUFFERS:
            current["_buffers"][leaf] = value.clone()
        else:
            current["_parameters"][leaf] = torch.nn.Parameter(value.clone(), requires_grad=False)
    synthesis = root["_modules"]["synthesis"]["_modules"]
    torgb = synthesis[next(reversed(synthesis))]
    torgb["_buffers"]["up_filter"] = torgb["_buffers"]["down_filter"] = None  # as register_buffer(name, None)
    g_ema = _wrap(env, root, module_src)
    with open(path, "wb") as handle:
        pickle.dump({"G": g_ema, "D": None, "G_ema": g_ema, "augment_pipe": None,
                     "training_set_kwargs": {"resolution": int(kwargs["img_resolution"]) if kwargs else 32}},
                    handle)
