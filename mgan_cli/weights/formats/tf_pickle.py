"""The official TensorFlow network pickles (PGGAN, StyleGAN, StyleGAN2), read as data — no TensorFlow.

An official ``*.pkl`` is ``pickle.dump((G, D, Gs))`` of ``tfutil.Network`` (PGGAN) or
``dnnlib.tflib.network.Network`` (StyleGAN, StyleGAN2) objects. Each pickles its ``__getstate__`` dict:

* ``version`` (tfutil: 2; dnnlib: 2, 3 for StyleGAN, 4 for StyleGAN2), ``name``, ``build_func_name``,
* ``static_kwargs`` — the build function's keyword arguments (a plain dict),
* ``components`` (dnnlib only) — nested networks, e.g. ``Gs.components.mapping`` / ``.synthesis``,
* ``build_module_src`` — the *Python source* of the module that builds the graph. Unpickling normally
  ``exec``\\ s it; here it is kept as an inert string and **never compiled or run**,
* ``variables`` — ``[(local name, numpy array or numpy scalar), ...]``, the network's own variables.

:func:`read_tf_networks` unpickles with :class:`~mgan_cli.weights.safe_pickle.SafeUnpickler`: ``tfutil.*`` and
``dnnlib.*`` classes become inert stand-ins that only record the state given to ``__setstate__``, numpy
arrays come through the base allow-list, and every other name is refused with
:class:`~mgan_cli.errors.UnsafePickleError`. The family readers (``tf_pggan``, ``tf_stylegan``,
``tf_stylegan2``) then map the moving-average generator ``Gs`` (the third element) onto mgan's canonical
(genforce) state dict with :func:`convert_variables`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mgan_cli.errors import UnknownFormatError, UnsafePickleError
from mgan_cli.weights.safe_pickle import InertObject, plain_data, safe_load

#: ``module.class`` of the pickled networks and the state versions each wrote
NETWORK_CLASSES: dict[str, tuple[int, ...]] = {
    "tfutil.Network": (2,),
    "dnnlib.tflib.network.Network": (2, 3, 4),
}
INERT_MODULES = ("tfutil", "dnnlib")


@dataclass
class TFNetwork:
    """One pickled TF network: its own variables (numpy) and its components (nested networks)."""

    class_name: str
    version: int
    name: str
    build_func_name: str
    static_kwargs: dict[str, Any]
    variables: dict[str, np.ndarray]
    components: dict[str, TFNetwork] = field(default_factory=dict)

    def all_variables(self, prefix: str = "") -> dict[str, np.ndarray]:
        """Own variables plus every component's, the latter named ``"<component key>/<local name>"``."""
        out = {prefix + k: v for k, v in self.variables.items()}
        for key, comp in self.components.items():
            out.update(comp.all_variables(f"{prefix}{key}/"))
        return out

    def merged_kwargs(self, component: str | None = None) -> dict[str, Any]:
        """``static_kwargs`` of this network overlaid with those of ``component`` (what its build saw)."""
        kwargs = dict(self.static_kwargs)
        if component is not None and component in self.components:
            kwargs.update(self.components[component].static_kwargs)
        return kwargs


def network_from_pickled(obj: Any, source: str = "weights") -> TFNetwork:
    """A ``Network`` stand-in from the unpickler → :class:`TFNetwork` (validates class, version and fields)."""
    class_name = getattr(obj, "_pickled_name", type(obj).__name__)
    if not isinstance(obj, InertObject) or class_name not in NETWORK_CLASSES:
        raise UnknownFormatError(f"{source}: expected a TF network ({' or '.join(NETWORK_CLASSES)}), "
                                 f"found {class_name}")
    state = obj.__dict__.get("state")
    if not isinstance(state, dict):
        raise UnknownFormatError(f"{source}: {class_name} without a pickled state (not an official network pickle)")
    version = state.get("version")
    if version not in NETWORK_CLASSES[class_name]:
        raise UnknownFormatError(f"{source}: {class_name} state version {version!r} is not supported "
                                 f"(known: {NETWORK_CLASSES[class_name]}; Theano-era pickles are not)")
    if not isinstance(state.get("build_module_src", ""), str):
        raise UnknownFormatError(f"{source}: build_module_src is not a string")
    variables: dict[str, np.ndarray] = {}
    for item in state.get("variables") or []:
        if not isinstance(item, list | tuple) or len(item) != 2 or not isinstance(item[0], str):
            raise UnknownFormatError(f"{source}: malformed variable entry in network {state.get('name')!r}")
        name, value = item
        if not isinstance(value, np.ndarray | np.generic | float | int):
            raise UnknownFormatError(f"{source}: variable {name!r} is a {type(value).__name__}, not a numpy array")
        variables[name] = np.asarray(value)
    components = {str(k): network_from_pickled(v, source) for k, v in plain_components(state, source).items()}
    kwargs = plain_data(state.get("static_kwargs") or {})
    if not isinstance(kwargs, dict):
        raise UnknownFormatError(f"{source}: static_kwargs is not a dict")
    return TFNetwork(class_name, int(version), str(state.get("name")), str(state.get("build_func_name")),
                     kwargs, variables, components)


def plain_components(state: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The ``components`` of a network state (a dict, or an inert ``EasyDict``), still as stand-ins."""
    comps = state.get("components") or {}
    if isinstance(comps, InertObject):
        items = dict(comps.__dict__.get("items", {}))
        inner = comps.__dict__.get("state")
        comps = {**items, **(inner if isinstance(inner, dict) else {})}
    if not isinstance(comps, dict):
        raise UnknownFormatError(f"{source}: network components are not a dict")
    return comps


def read_tf_networks(path: Path) -> tuple[TFNetwork, ...]:
    """Unpickle an official TF network pickle as data: the tuple of networks, usually ``(G, D, Gs)``.

    Raises :class:`UnsafePickleError` when the file names anything beyond numpy, containers and the
    network classes, and :class:`UnknownFormatError` when it is not a tuple of TF networks.
    """
    try:
        data = safe_load(path, inert_modules=INERT_MODULES, encoding="latin1")
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"{path}: {exc}") from exc
    except Exception as exc:  # truncated or non-pickle files raise many types
        raise UnknownFormatError(f"{path}: not a TF network pickle ({exc.__class__.__name__}: {exc})") from exc
    if not isinstance(data, tuple) or not data:
        raise UnknownFormatError(f"{path}: expected a pickled tuple (G, D, Gs) of TF networks, "
                                 f"got {type(data).__name__}")
    return tuple(network_from_pickled(item, str(path)) for item in data)


def read_gs(path: Path, build_func_names: Iterable[str]) -> TFNetwork:
    """The moving-average generator ``Gs`` (last of ``(G, D, Gs)``) of a TF pickle, checked by build function."""
    networks = read_tf_networks(path)
    if len(networks) != 3:
        raise UnknownFormatError(f"{path}: expected (G, D, Gs), found {len(networks)} networks")
    gs = networks[2]
    allowed = tuple(build_func_names)
    if gs.build_func_name not in allowed:
        raise UnknownFormatError(f"{path}: Gs is built by {gs.build_func_name!r}, this reader expects {allowed}")
    return gs


def check_static_kwargs(kwargs: Mapping[str, Any], supported: Mapping[str, Any], what: str) -> None:
    """Raise :class:`UnknownFormatError` if a recorded option differs from the value mgan implements."""
    for key, value in supported.items():
        if key in kwargs and kwargs[key] != value and not (
                isinstance(value, float) and isinstance(kwargs[key], int | float) and float(kwargs[key]) == value):
            raise UnknownFormatError(f"{what}: static kwarg {key}={kwargs[key]!r} is not supported "
                                     f"(mgan implements {key}={value!r})")


# ---- variable layouts ---------------------------------------------------------------------------------------

def _dense(a: torch.Tensor) -> torch.Tensor:
    return a.t().contiguous()


def _conv(a: torch.Tensor) -> torch.Tensor:
    return a.permute(3, 2, 0, 1).contiguous()


def _conv_back(a: torch.Tensor) -> torch.Tensor:
    return a.permute(2, 3, 1, 0).contiguous()


def _swap_io(a: torch.Tensor) -> torch.Tensor:
    return a.permute(0, 1, 3, 2).contiguous()


def _same(a: torch.Tensor) -> torch.Tensor:
    return a.clone()


#: layout kinds: ``kind -> (TF → canonical, canonical → TF)``
LAYOUTS: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]] = {
    "same": (_same, _same),  # biases, consts, noise, TF-layout kernels genforce keeps
    "dense": (_dense, _dense),  # TF [in, out] ↔ torch [out, in]
    "conv": (_conv, _conv_back),  # TF HWIO [k, k, in, out] ↔ torch OIHW [out, in, k, k]
    "swap_io": (_swap_io, _swap_io),  # PGGAN fused up-conv: TF [k, k, out, in] ↔ genforce [k, k, in, out]
}


@dataclass(frozen=True)
class VarSpec:
    """Canonical key ``key`` ↔ TF variable ``tf_name`` (``"<component>/<local>"``) with a layout ``kind``."""

    key: str
    tf_name: str
    kind: str = "same"


def convert_variables(variables: Mapping[str, np.ndarray], specs: Iterable[VarSpec], ignored: Iterable[str],
                      source: str, custom: Mapping[str, Callable[[torch.Tensor], torch.Tensor]] | None = None,
                      ) -> dict[str, torch.Tensor]:
    """TF variables → canonical float32 tensors following ``specs``.

    Every spec must find its variable and every variable must be used by a spec or listed in ``ignored``;
    otherwise :class:`UnknownFormatError` names the variable. ``custom`` adds layout kinds (TF → canonical).
    """
    forward = {k: fwd for k, (fwd, _) in LAYOUTS.items()} | dict(custom or {})
    remaining = dict(variables)
    out: dict[str, torch.Tensor] = {}
    for spec in specs:
        if spec.tf_name not in remaining:
            raise UnknownFormatError(f"{source}: TF variable {spec.tf_name!r} (for {spec.key}) is missing")
        value = torch.from_numpy(np.array(remaining.pop(spec.tf_name), dtype=np.float32))
        out[spec.key] = forward[spec.kind](value)
    for name in ignored:
        remaining.pop(name, None)
    if remaining:
        raise UnknownFormatError(f"{source}: unknown TF variable {sorted(remaining)[0]!r} "
                                 f"({len(remaining)} unmatched: {sorted(remaining)[:4]})")
    return out


def export_variables(state: Mapping[str, torch.Tensor], specs: Iterable[VarSpec],
                     custom: Mapping[str, Callable[[torch.Tensor], torch.Tensor]] | None = None,
                     ) -> dict[str, np.ndarray]:
    """The inverse of :func:`convert_variables`: canonical tensors → ``{"<component>/<local>": array}``."""
    backward = {k: back for k, (_, back) in LAYOUTS.items()} | dict(custom or {})
    return {spec.tf_name: backward[spec.kind](state[spec.key].detach().cpu().float()).numpy()
            for spec in specs}


def split_components(variables: Mapping[str, np.ndarray], components: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``{"mapping/Dense0/weight": a, "lod": b}`` → ``{"": {"lod": b}, "mapping": {"Dense0/weight": a}}``."""
    names = tuple(components)
    out: dict[str, dict[str, Any]] = {"": {}, **{c: {} for c in names}}
    for name, value in variables.items():
        head, _, tail = name.partition("/")
        if head in names and tail:
            out[head][tail] = value
        else:
            out[""][name] = value
    return out


def check_lod(variables: Mapping[str, np.ndarray], names: Iterable[str], source: str) -> None:
    """Only finished generators (``lod`` 0) are supported."""
    for name in names:
        if name in variables and float(np.asarray(variables[name])) != 0.0:
            raise UnknownFormatError(f"{source}: {name} = {float(np.asarray(variables[name]))} is a "
                                     f"progressive-growing snapshot; only finished generators (lod 0) are supported")


__all__ = ["INERT_MODULES", "LAYOUTS", "NETWORK_CLASSES", "TFNetwork", "VarSpec", "check_lod",
           "check_static_kwargs", "convert_variables", "export_variables", "network_from_pickled",
           "read_gs", "read_tf_networks", "split_components"]
