"""The allow-list unpickler: numpy data loads, anything that could run code is refused before running."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from mgan_cli.errors import UnsafePickleError
from mgan_cli.weights.safe_pickle import InertObject, safe_load


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


# ---- what a tiny file can make the unpickler build is bounded --------------------------------------------

def _billion_laughs() -> bytes:
    level: list = ["lol"] * 10
    for _ in range(9):  # 10 ** 10 strings once the shared references are expanded
        level = [level] * 10
    return pickle.dumps({"G_ema": level}, protocol=2)


def _self_reference() -> bytes:
    loop: list = []
    loop.append(loop)
    return pickle.dumps(loop, protocol=2)


def _memo_bomb() -> bytes:
    # PROTO 2, NONE, LONG_BINPUT 0xFFFFFFF0, STOP: CPython's unpickler would size its memo for 4 G entries
    return b"\x80\x02Nr\xf0\xff\xff\xff."


def _huge_array() -> bytes:
    # numpy.core.multiarray._reconstruct(numpy.ndarray, (10**11,), b'b'): 100 GB claimed by 90 bytes
    return (b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n\x8a\x05\x00\xe8vH\x17\x85"
            b"C\x01b\x87R.")


def _ndarray_call() -> bytes:
    # numpy.ndarray((10**11,)) called directly
    return b"\x80\x02cnumpy\nndarray\n\x8a\x05\x00\xe8vH\x17\x85\x85R."


def _deep_nesting() -> bytes:
    # 500 EMPTY_LISTs then 499 APPENDs: a list nested 500 deep, which recursive code would crash on
    return b"\x80\x02" + b"]" * 500 + b"a" * 499 + b"."


HOSTILE = {"billion_laughs": (_billion_laughs, "billion laughs"),
           "self_reference": (_self_reference, "contains itself"),
           "memo_bomb": (_memo_bomb, "memo index 4294967280 out of order"),
           "huge_array": (_huge_array, "more than"), "ndarray_call": (_ndarray_call, "more than"),
           "deep_nesting": (_deep_nesting, "nested more than")}


def test_hostile_pickles_are_refused_in_bounded_memory_and_time(tmp_path) -> None:
    from tests.helpers import run_bounded

    for name, (make, _) in HOSTILE.items():
        data = make()
        assert len(data) < 1100, (name, len(data))
        (tmp_path / f"{name}.pkl").write_bytes(data)
    code = f"""
import time
from mgan_cli.errors import UnsafePickleError
from mgan_cli.weights.safe_pickle import plain_data, safe_load
for name in {sorted(HOSTILE)!r}:
    started = time.perf_counter()
    try:
        plain_data(safe_load({str(tmp_path)!r} + '/' + name + '.pkl'))  # plain_data would expand a bomb
        print(name, 'LOADED')
    except UnsafePickleError as exc:
        print(name, round(time.perf_counter() - started, 3), str(exc).replace(chr(10), '|'))
"""
    status, output, _, peak_mb = run_bounded(code, timeout=120, max_rss_mb=1200)
    assert status == 0, output
    lines = {line.split()[0]: line for line in output.splitlines() if line.split()[0] in HOSTILE}
    assert set(lines) == set(HOSTILE), output
    for name, (_, reason) in HOSTILE.items():
        assert "LOADED" not in lines[name] and reason in lines[name], lines[name]
        assert float(lines[name].split()[1]) < 2.0, lines[name]
    assert peak_mb < 1200


def test_legitimate_shared_references_still_load() -> None:
    shared = np.arange(4.0)
    data = {"a": shared, "b": shared, "config": {"sizes": (4, 4)}, "list": [1, 2, 3] * 100}
    loaded = safe_load(pickle.dumps(data, protocol=4))
    assert np.array_equal(loaded["a"], shared) and loaded["list"] == data["list"]
