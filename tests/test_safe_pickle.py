"""The allow-list unpickler: numpy data loads, anything that could run code is refused before running."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from mgan_cli.errors import UnsafePickleError
from mgan_cli.safe_pickle import InertObject, safe_load


class _Exploit:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_numpy_containers_load() -> None:
    data = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": [1, 2.5, "x"], "c": (np.float64(3.0),)}
    for protocol in (2, 3, 4, 5):
        loaded = safe_load(pickle.dumps(data, protocol=protocol))
        assert np.array_equal(loaded["a"], data["a"]) and loaded["b"] == data["b"] and loaded["c"][0] == 3.0


def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"weights": _Exploit(str(marker))})
    with pytest.raises(UnsafePickleError, match=r"(posix|os|nt)\.system"):
        safe_load(payload)
    assert not marker.exists()


def test_inert_modules_become_stand_ins() -> None:
    class Network:  # pickled under a foreign module name, as official checkpoints are
        def __init__(self) -> None:
            self.weights = np.ones(3)

    Network.__module__ = "dnnlib.tflib.network"
    Network.__qualname__ = "Network"
    import sys
    import types

    names = ("dnnlib", "dnnlib.tflib", "dnnlib.tflib.network")
    for name in names:
        sys.modules[name] = types.ModuleType(name)
    sys.modules["dnnlib.tflib.network"].Network = Network
    try:
        payload = pickle.dumps(Network())
    finally:
        for name in names:
            del sys.modules[name]
    with pytest.raises(UnsafePickleError):
        safe_load(payload)
    loaded = safe_load(payload, inert_modules=("dnnlib.",))
    assert isinstance(loaded, InertObject) and np.array_equal(loaded.state["weights"], np.ones(3))
