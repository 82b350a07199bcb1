"""``mgan weights import``: format sniffing (without unpickling), the one-time conversion into the cache, the
``mgan-safetensors`` reader, and imported names working like registry names."""

from __future__ import annotations

import json
import os
import pickle
import sys
import types
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors import safe_open

from mgan_cli.cli import main
from mgan_cli.errors import (
    ChecksumError,
    ConfigurationError,
    UnknownFormatError,
    UnsafePickleError,
    WeightsError,
)
from mgan_cli.generators import ARCHITECTURES
from mgan_cli.weights import store as weight_store
from mgan_cli.weights.formats import READERS
from mgan_cli.weights.formats.rosinality import genforce_to_rosinality
from mgan_cli.weights.importing import import_generator, list_imported, sniff_format
from mgan_cli.weights.loading import load_generator, read_generator
from mgan_cli.weights.store import WeightStore, load_registry, sha256_of

PGGAN_SMALL = {"resolution": 32, "z_dim": 96, "fmaps_base": 1024, "fmaps_max": 64}
STYLEGAN_SMALL = {"resolution": 32, "z_dim": 64, "w_dim": 64, "fmaps_base": 1024, "fmaps_max": 64}
STYLEGAN2_SMALL = {"resolution": 32, "z_dim": 64, "w_dim": 64, "fmaps_base": 1024, "fmaps_max": 64}


def _random(architecture: str, seed: int, **config: object) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = ARCHITECTURES.get(architecture)(**config)
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0.0, 0.5)
        for name, buffer in model.named_buffers():
            if name.endswith("noise") or name.endswith("w_avg"):
                buffer.normal_()
    return model.freeze()


def _store(tmp_path: Path) -> WeightStore:
    return WeightStore(home=tmp_path / "home", entries=load_registry(), allow_download=False)


@pytest.fixture()
def cli_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> WeightStore:
    store = _store(tmp_path)
    monkeypatch.setattr(weight_store, "_default_store", store)
    return store


def test_import_genforce_pggan_round_trip(tmp_path: Path) -> None:
    model = _random("pggan", 1, **PGGAN_SMALL)
    source = tmp_path / "pggan_small_generator.pth"
    torch.save(model.state_dict(), source)
    store = _store(tmp_path)

    assert sniff_format(source) == "genforce-pggan"
    imported = import_generator(source, "my-pggan", store=store)

    folder = store.home / "imported" / "my-pggan"
    assert imported.folder == folder and sorted(p.name for p in folder.iterdir()) == ["mgan.json",
                                                                                     "weights.safetensors"]
    info = json.loads((folder / "mgan.json").read_text())
    assert info["architecture"] == "pggan" and info["config"]["resolution"] == 32
    assert (info["resolution"], info["latent_size"]) == (32, 96)
    assert info["source_file"] == source.name and info["source_sha256"] == sha256_of(source)
    assert info["source_format"] == "genforce-pggan"
    assert info["parameters"] == sum(p.numel() for p in model.parameters())
    assert info["weights_sha256"] == sha256_of(folder / "weights.safetensors") and info["imported"]
    with safe_open(str(folder / "weights.safetensors"), framework="pt") as handle:
        assert set(handle.keys()) == set(model.state_dict())

    loaded = load_generator("my-pggan", store)
    z = torch.randn(3, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(loaded(z), model(z))
    assert [g.name for g in list_imported(store)] == ["my-pggan"]
    assert not any(p.name.startswith(".") for p in (store.home / "imported").iterdir())  # no staging left


def test_import_legacy_torch_stylegan_and_rosinality(tmp_path: Path) -> None:
    store = _store(tmp_path)
    style = _random("stylegan", 2, **STYLEGAN_SMALL)
    legacy = tmp_path / "stylegan_small.pth"
    torch.save(style.state_dict(), legacy, _use_new_zipfile_serialization=False)
    assert legacy.read_bytes()[:1] == b"\x80"  # the pre-1.6 format: a sequence of pickles
    assert sniff_format(legacy) == "genforce-stylegan"
    import_generator(legacy, "style-small", store=store)
    z = torch.randn(2, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(load_generator("style-small", store)(z), style(z))

    sg2 = _random("stylegan2", 3, **STYLEGAN2_SMALL, truncation_psi=None, truncation_layers=None)
    ros = tmp_path / "ros.pt"
    torch.save({"g_ema": genforce_to_rosinality(sg2.state_dict()),
                "latent_avg": sg2.state_dict()["truncation.w_avg"]}, ros)
    assert sniff_format(ros) == "rosinality"
    import_generator(ros, "sg2-small", format_name="auto", store=store)
    with torch.no_grad():
        assert torch.allclose(load_generator("sg2-small", store)(z), sg2(z), atol=1e-5)


def _fake_class(monkeypatch: pytest.MonkeyPatch, module: str, name: str, attrs: dict) -> object:
    """An instance of a class that pickles as ``module.name`` (the module exists only during the test)."""
    parts = module.split(".")
    for i in range(1, len(parts)):  # parent packages, so that pickle can import the module
        monkeypatch.setitem(sys.modules, ".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))
    fake = types.ModuleType(module)
    cls = type(name, (), {"__module__": module})
    setattr(fake, name, cls)
    monkeypatch.setitem(sys.modules, module, fake)
    obj = cls()
    obj.__dict__.update(attrs)
    return obj


@pytest.mark.parametrize(("module", "func", "expected"), [
    ("tfutil", "G_paper", "tf-pggan"),
    ("dnnlib.tflib.network", "G_style", "tf-stylegan"),
    ("dnnlib.tflib.network", "G_main", "tf-stylegan2"),
])
@pytest.mark.parametrize("protocol", [2, 4])
def test_sniff_tensorflow_pickles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str, func: str,
                                  expected: str, protocol: int) -> None:
    nets = []
    for name, build_func in (("G", func), ("D", "D_basic"), ("Gs", func)):
        net = _fake_class(monkeypatch, module, "Network", {}) if not nets else type(nets[0])()
        net.__dict__.update({"version": 4, "name": name, "build_module_src": "def G_main(): pass\n" * 20,
                             "build_func_name": build_func, "variables": []})
        nets.append(net)
    path = tmp_path / "net.pkl"
    path.write_bytes(pickle.dumps(tuple(nets), protocol=protocol))
    assert sniff_format(path) == expected


def test_sniff_nvlabs_pickle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch_utils", types.ModuleType("torch_utils"))
    fake = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta: dict) -> dict:
        return meta

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    fake._reconstruct_persistent_obj = _reconstruct_persistent_obj  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch_utils.persistence", fake)

    class Persistent:
        def __reduce__(self) -> tuple:
            return fake._reconstruct_persistent_obj, ({"type": "class", "class_name": "training.networks.Generator",
                                                       "version": 6, "module_src": "x = 1", "state": {}},)

    path = tmp_path / "network-snapshot.pkl"
    path.write_bytes(pickle.dumps({"G": Persistent(), "G_ema": Persistent(), "augment_pipe": None}, protocol=4))
    assert sniff_format(path) == "nvlabs-pickle"


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        import os

        return os.system, (f"touch {self.marker}",)


def test_malicious_pickle_is_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"G_ema": _Exploit(marker)}, protocol=4))
    with pytest.raises(UnknownFormatError, match="unknown kind"):
        sniff_format(evil)
    store = _store(tmp_path)
    system = f"{os.system.__module__}.system"  # posix.system on Linux: what the pickle asks to call
    with pytest.raises(UnknownFormatError, match=rf"unknown kind \(it names {system}\)"):
        import_generator(evil, "evil", store=store)
    with pytest.raises(UnsafePickleError, match=rf"refused to load '{system}'"):
        import_generator(evil, "evil", format_name="nvlabs-pickle", store=store)
    # a legacy (pre-zip) torch file whose state dict smuggles the same call
    legacy = tmp_path / "evil_legacy.pth"
    legacy.write_bytes(pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + pickle.dumps(1001, protocol=2)
                       + pickle.dumps({}, protocol=2) + pickle.dumps({"layer0.conv.weight": _Exploit(marker)},
                                                                     protocol=2))
    assert sniff_format(legacy) == "genforce-pggan"  # sniffing reads opcodes only
    with pytest.raises(UnsafePickleError, match=rf"refused to (unpickle|load).*{system}"):
        import_generator(legacy, "evil2", store=store)
    assert not marker.exists()
    assert list_imported(store) == []


def test_import_names_and_overwrite(tmp_path: Path) -> None:
    store = _store(tmp_path)
    first, second = _random("pggan", 4, **PGGAN_SMALL), _random("pggan", 5, **PGGAN_SMALL)
    a, b = tmp_path / "a.pth", tmp_path / "b.pth"
    torch.save(first.state_dict(), a)
    torch.save(second.state_dict(), b)
    with pytest.raises(ConfigurationError, match="registry"):
        import_generator(a, "dcgan64-digiface", store=store)
    for bad in ("../escape", ".hidden", "a b", ""):
        with pytest.raises(ConfigurationError):
            import_generator(a, bad, store=store)
    import_generator(a, "g", store=store)
    with pytest.raises(ConfigurationError, match="overwrite"):
        import_generator(b, "g", store=store)
    import_generator(b, "g", store=store, overwrite=True)
    z = torch.randn(1, 96, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(load_generator("g", store)(z), second(z))
    assert sorted(p.name for p in (store.home / "imported").iterdir()) == ["g"]


def test_safetensors_reader_and_tamper_detection(tmp_path: Path) -> None:
    store = _store(tmp_path)
    model = _random("pggan", 6, **PGGAN_SMALL)
    torch.save(model.state_dict(), tmp_path / "p.pth")
    imported = import_generator(tmp_path / "p.pth", "p", store=store)
    z = torch.randn(2, 96, generator=torch.Generator().manual_seed(3))

    lone = tmp_path / "copy.safetensors"  # the file alone: architecture/config come from its header
    lone.write_bytes(imported.weights_file.read_bytes())
    assert sniff_format(lone) == "mgan-safetensors" and sniff_format(imported.folder) == "mgan-safetensors"
    with torch.no_grad():
        assert torch.equal(read_generator(lone, "mgan-safetensors")(z), model(z))

    data = bytearray(imported.weights_file.read_bytes())
    data[-4:] = b"\x00\x00\x80\x7f"  # change one stored value
    imported.weights_file.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="import it again"):
        load_generator("p", store)
    assert not list_imported(store)[0].verified()


def test_cli_import_list_and_preset_name(tmp_path: Path, cli_store: WeightStore) -> None:
    model = _random("stylegan", 7, **STYLEGAN_SMALL)
    source = tmp_path / "stylegan_small_generator.pth"
    torch.save(model.state_dict(), source)
    runner = CliRunner()
    result = runner.invoke(main, ["weights", "import", str(source), "--name", "tiny-style", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert record["source_format"] == "genforce-stylegan" and record["architecture"] == "stylegan"

    listed = runner.invoke(main, ["weights", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = {row["name"]: row for row in map(json.loads, listed.output.splitlines())}
    row = rows["tiny-style"]
    assert (row["location"], row["available"], row["resolution"], row["latent_size"]) == ("imported", True, 32, 64)
    assert row["parameters"] == sum(p.numel() for p in model.parameters())
    assert "dcgan64-digiface" in rows  # registry entries are still listed

    again = runner.invoke(main, ["weights", "import", str(source), "--name", "tiny-style"])
    assert again.exit_code == 2 and "already exists" in again.output
    unknown = runner.invoke(main, ["weights", "import", str(source), "--name", "x", "--format", "nope"])
    assert unknown.exit_code == 2 and "no reader" in unknown.output
    verify = runner.invoke(main, ["weights", "verify"])
    assert "ok       tiny-style" in verify.output
    # what a preset naming the imported generator gets
    with torch.no_grad():
        z = torch.randn(1, 64, generator=torch.Generator().manual_seed(4))
        assert torch.equal(load_generator("tiny-style")(z), model(z))


def test_tf_pickle_import_uses_the_tf_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A (fake, weightless) TF StyleGAN2 pickle goes to the tf-stylegan2 reader, or to a clear error naming it
    while that reader is not installed; either way nothing is imported."""
    net = _fake_class(monkeypatch, "dnnlib.tflib.network", "Network", {"build_func_name": "G_main"})
    path = tmp_path / "stylegan2-ffhq-config-f.pkl"
    path.write_bytes(pickle.dumps((net, net, net)))
    store = _store(tmp_path)
    if "tf-stylegan2" not in READERS:
        with pytest.raises(UnknownFormatError, match="tf-stylegan2"):
            import_generator(path, "sg2", store=store)
    else:
        with pytest.raises(WeightsError):
            import_generator(path, "sg2", store=store)
    assert list_imported(store) == []


# ---- configs from files are validated before any model is built -----------------------------------------

def _tiny_safetensors(path: Path, architecture: object, config: object) -> Path:
    from safetensors.torch import save_file

    save_file({}, str(path), metadata={"mgan": json.dumps({"architecture": architecture, "config": config})})
    return path


@pytest.mark.parametrize(("architecture", "config", "message"), [
    ("dcgan64", {"latent_size": 30000, "width": 64}, "latent_size: 30000 is not allowed: must be an integer ≥ 1 "
                                                     "and ≤ 4096"),
    ("dcgan64", {"latent_size": "100"}, "latent_size = '100' is text, not a number"),
    ("dcgan64", {"latent_size": -3}, "latent_size: -3 is not allowed"),
    ("dcgan64", {"latent_size": 100, "depth": 9}, "config key 'depth' is not an argument of dcgan64"),
    ("stylegan2", {"resolution": 48}, "resolution = 48 is not allowed for stylegan2"),
    ("stylegan2", {"image_channels": 1}, "a 1-channel generator"),
    ("stylegan2", {"architecture": "resnet"}, "architecture = 'resnet' is not allowed"),
    ("stylegan9", {}, "architecture 'stylegan9' is not one mgan has"),
    ("dcgan64", [1, 2], "no architecture/config"),
    ("dcgan64", {"latent_size": 100, "width": 64}, "does not fit dcgan64"),  # valid config, no tensors
])
def test_safetensors_config_is_validated_before_building(tmp_path: Path, architecture, config, message) -> None:
    path = _tiny_safetensors(tmp_path / "tiny.safetensors", architecture, config)
    assert path.stat().st_size < 400
    with pytest.raises(UnknownFormatError, match=message):
        READERS.get("mgan-safetensors")(path)


def test_oversized_safetensors_config_costs_no_memory(tmp_path: Path) -> None:
    from tests.helpers import run_bounded

    # within every range, but describes a 1 GB model: refused from the header before any allocation
    path = _tiny_safetensors(tmp_path / "big.safetensors", "dcgan64", {"latent_size": 4096, "width": 1024})
    code = f"""
from mgan_cli.weights.formats import READERS
from mgan_cli.errors import UnknownFormatError
try:
    READERS.get('mgan-safetensors')({str(path)!r})
except UnknownFormatError as exc:
    print('refused', str(exc)[:200])
"""
    status, output, _, peak_mb = run_bounded(code, timeout=120, max_rss_mb=1200)
    assert status == 0 and "refused" in output and "does not fit dcgan64" in output, output
    assert peak_mb < 1200


def _genforce_stylegan2_state(**config: object) -> dict[str, torch.Tensor]:
    return dict(_random("stylegan2", 8, **{**STYLEGAN2_SMALL, **config}).state_dict())


@pytest.mark.parametrize(("edit", "message"), [
    (lambda s: {**s, "synthesis.skip1.weight": torch.zeros(64, 64, 1, 1)}, "'resnet' architecture"),
    (lambda s: {k: v for k, v in s.items() if not k.startswith("synthesis.output") or "output3" in k},
     "'origin' architecture"),
])
def test_genforce_stylegan2_other_architectures_say_so(tmp_path: Path, edit, message: str) -> None:
    path = tmp_path / "g.pth"
    torch.save(edit(_genforce_stylegan2_state()), path)
    with pytest.raises(UnknownFormatError, match=message):
        READERS.get("genforce-stylegan2")(path)


def test_single_channel_generators_are_refused_at_import(tmp_path: Path) -> None:
    store = _store(tmp_path)
    path = tmp_path / "grey.pth"
    torch.save(_genforce_stylegan2_state(image_channels=1), path)
    with pytest.raises(UnknownFormatError, match="1-channel generator; mgan imports RGB generators only"):
        import_generator(path, "grey", store=store)
    grey_pggan = tmp_path / "grey_pggan.pth"
    torch.save(_random("pggan", 9, **PGGAN_SMALL, image_channels=1).state_dict(), grey_pggan)
    with pytest.raises(UnknownFormatError, match="1-channel generator"):
        import_generator(grey_pggan, "grey-pggan", store=store)
    assert not list_imported(store)


class _RunsCode:
    def __reduce__(self) -> tuple:
        import os

        return os.system, ("true",)


@pytest.mark.parametrize("reader", ["genforce-stylegan2", "genforce-pggan", "rosinality", "dcgan32-state-dict"])
def test_torch_refusals_are_in_mgans_words(tmp_path: Path, reader: str) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"g_ema": {"w": _RunsCode()}}, path)
    with pytest.raises(UnsafePickleError) as info:
        READERS.get(reader)(path)
    message = str(info.value)
    assert "refused to load: the file names 'posix.system'" in message or "'nt.system'" in message
    assert "weights_only" not in message and "\n" not in message


def test_torch_file_tensor_larger_than_its_storage_is_refused(tmp_path: Path) -> None:
    from tests.helpers import run_bounded

    state = dict(_random("pggan", 10, **PGGAN_SMALL).state_dict())
    state["layer0.conv.weight"] = torch.zeros(1).expand(64, 2_000_000, 4, 4)  # 2 GB seen through 4 bytes
    path = tmp_path / "stride0.pth"
    torch.save(state, path)
    assert path.stat().st_size < 2_000_000
    code = f"""
from mgan_cli.weights.formats import READERS
from mgan_cli.errors import UnsafePickleError
try:
    READERS.get('genforce-pggan')({str(path)!r})
except UnsafePickleError as exc:
    print('refused', exc)
"""
    status, output, _, _ = run_bounded(code, timeout=120, max_rss_mb=1500)
    assert status == 0 and "refused" in output and "claims more elements than its storage" in output, output


def test_hostile_mgan_json_and_header_are_one_line(tmp_path: Path) -> None:
    from mgan_cli.weights.formats.safetensors_format import read_info

    deep = tmp_path / "deep" / "mgan.json"
    deep.parent.mkdir()
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(UnknownFormatError, match=r"mgan\.json: unreadable"):
        read_info(deep)
    huge = tmp_path / "huge" / "mgan.json"
    huge.parent.mkdir()
    huge.write_text(" " * (2 << 20) + "{}")
    with pytest.raises(UnknownFormatError, match=r"too large for an mgan\.json"):
        read_info(huge)
    nested = _tiny_safetensors(tmp_path / "nested.safetensors", "dcgan64", {})
    from safetensors.torch import save_file

    save_file({}, str(nested), metadata={"mgan": "[" * 100_000 + "]" * 100_000})
    with pytest.raises(UnknownFormatError, match="bad 'mgan' header metadata"):
        READERS.get("mgan-safetensors")(nested)
