"""The paper's generators in the weight registry (parameter counts, unknown checksums verified by structure,
offline fetch messages) and every built-in preset (valid against the registry and the architectures)."""

from __future__ import annotations

import json
import pickle
import urllib.error
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from click.testing import CliRunner

from mgan_cli.cli import main
from mgan_cli.config.presets import load_preset, preset_files
from mgan_cli.config.tasks import TASKS
from mgan_cli.core.degradations import build_degradation
from mgan_cli.errors import ChecksumError, WeightsError, WeightsNotFoundError
from mgan_cli.generators import ARCHITECTURES
from mgan_cli.weights import store as weight_store
from mgan_cli.weights.formats import READERS
from mgan_cli.weights.loading import load_generator
from mgan_cli.weights.store import WeightStore, load_registry

#: official learnable-parameter counts (shared/golden/README.md, from the official code)
OFFICIAL_PARAMETERS = {
    "pggan-celebahq1024": 23_079_115,
    "pggan-bedroom256": 23_044_309,
    "pggan-churchoutdoor256": 23_044_309,
    "pggan-conferenceroom256": 23_044_309,
    "stylegan-ffhq1024": 26_219_627,
    "stylegan-celebahq1024": 26_219_627,
    "stylegan-bedroom256": 26_086_229,
    "stylegan2-ffhq1024": 30_370_060,
    "stylegan2-ffhq1024-nvlabs": 30_370_060,
    "stylegan3-t-ffhq1024": 22_313_167,
    "stylegan3-r-ffhq1024": 15_093_151,
    "stylegan3-t-afhqv2-512": 24_873_519,
    "stylegan3-t-metfaces1024": 22_313_167,
    "stylegan3-r-metfaces1024": 15_093_151,
}
#: docs/PAPER.md, "Reference implementation defaults": (task, generator, layer, N, iterations, lambda)
REFERENCE_TABLE = {
    "pggan-bedroom256-invert-reference": ("invert", "pggan-bedroom256", 8, 20, 3000, 1.0),
    "pggan-bedroom256-colorize-reference": ("colorize", "pggan-bedroom256", 6, 20, 1500, 1.0),
    "pggan-celebahq1024-superres-reference": ("superres", "pggan-celebahq1024", 6, 20, 2000, 1.0),
    "pggan-churchoutdoor256-inpaint-reference": ("inpaint", "pggan-churchoutdoor256", 4, 30, 3000, 0.1),
}


def _meta_model(architecture: str, config: dict[str, Any]) -> torch.nn.Module:
    with torch.device("meta"):
        return ARCHITECTURES.get(architecture)(**config)


def test_list_json_parameter_counts_match_the_official_ones(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    store = WeightStore(home=tmp_path, mirror=tmp_path / "mirror", entries=load_registry(), allow_download=False)
    monkeypatch.setattr(weight_store, "_default_store", store)
    result = CliRunner().invoke(main, ["weights", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in map(json.loads, result.output.splitlines())}
    for name, count in OFFICIAL_PARAMETERS.items():
        row = rows[name]
        assert row["parameters"] == count, name
        assert row["available"] is False and row["sha256"] is None
        assert {"architecture", "resolution", "latent_size"} <= set(row)


def test_generator_entries_are_consistent() -> None:
    entries = load_registry()
    assert set(OFFICIAL_PARAMETERS) <= set(entries)
    for name, entry in entries.items():
        if entry.kind != "generator":
            continue
        model = _meta_model(entry.architecture or "", entry.config)
        assert (model.resolution, model.latent_size) == (entry.resolution, entry.latent_size), name
        assert entry.format in READERS, name
        assert entry.sources, name
        if entry.sha256 is None:
            assert entry.verify == "structure", name


def test_registry_refuses_unknown_checksum_without_structure_check(tmp_path: Path) -> None:
    spec = {"kind": "generator", "architecture": "pggan", "format": "genforce-pggan", "file": "x.pth", "sha256": None}
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump({"x": spec}))
    with pytest.raises(WeightsError, match="verify: structure"):
        load_registry(path)
    path.write_text(yaml.safe_dump({"x": {**spec, "kind": "backbone", "verify": "structure"}}))
    with pytest.raises(WeightsError):
        load_registry(path)
    path.write_text(yaml.safe_dump({"x": {**spec, "verify": "structure"}}))
    assert load_registry(path)["x"].sha256 is None


def test_offline_fetch_says_where_to_get_and_put_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []

    def unreachable(url: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(getattr(url, "full_url", str(url)))
        raise urllib.error.URLError("network unreachable (test)")

    monkeypatch.setattr(torch.hub, "urlopen", unreachable)  # the downloader mgan uses
    mirror = tmp_path / "mirror"
    store = WeightStore(home=tmp_path / "home", mirror=mirror, entries=load_registry(), allow_download=True)

    with pytest.raises(WeightsNotFoundError) as caught:
        store.path("stylegan2-ffhq1024")
    message = str(caught.value)
    assert opened == ["https://nvlabs-fi-cdn.nvidia.com/stylegan2/networks/stylegan2-ffhq-config-f.pkl"]
    assert "network unreachable" in message
    assert str(tmp_path / "home" / "weights" / "gan/stylegan2_ffhq1024/stylegan2-ffhq-config-f.pkl") in message
    assert str(mirror / "gan/stylegan2_ffhq1024/stylegan2-ffhq-config-f.pkl") in message
    assert "mgan weights import" in message and "no published sha256" in message

    opened.clear()
    with pytest.raises(WeightsNotFoundError) as caught:  # Google Drive pages are named, never downloaded
        store.path("pggan-celebahq1024")
    assert opened == []
    assert "https://drive.google.com/file/d/188K19ucknC6wg1R6jbuPEhTq9zoufOx4" in str(caught.value)
    assert "download by hand" in str(caught.value)


def test_offline_cli_fetch_with_a_file_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = {"kind": "generator", "architecture": "pggan", "config": {"resolution": 32}, "resolution": 32,
            "latent_size": 512, "format": "genforce-pggan", "file": "gan/x/x.pth", "sha256": None,
            "verify": "structure", "sources": [{"url": f"file://{tmp_path}/nonexistent/x.pth"}]}
    registry = tmp_path / "registry.yaml"
    registry.write_text(yaml.safe_dump({"paper-x": spec}))
    store = WeightStore(home=tmp_path / "home", entries=load_registry(registry), allow_download=True)
    monkeypatch.setattr(weight_store, "_default_store", store)
    result = CliRunner().invoke(main, ["weights", "fetch", "paper-x"])
    assert result.exit_code == 2
    assert "nonexistent/x.pth" in result.output and "mgan weights import" in result.output
    assert not (tmp_path / "home" / "weights" / "gan/x/x.pth").exists()


def _structure_store(tmp_path: Path) -> WeightStore:
    spec = {"kind": "generator", "architecture": "pggan",
            "config": {"resolution": 32, "z_dim": 96, "fmaps_base": 1024, "fmaps_max": 64}, "resolution": 32,
            "latent_size": 96, "format": "genforce-pggan", "file": "gan/small/pggan_small.pth", "sha256": None,
            "verify": "structure", "sources": [{"page": "https://example.invalid/manual"}]}
    registry = tmp_path / "registry.yaml"
    registry.write_text(yaml.safe_dump({"small-pggan": spec}))
    return WeightStore(home=tmp_path / "home", entries=load_registry(registry), allow_download=False)


def _small_pggan(**overrides: Any) -> torch.nn.Module:
    torch.manual_seed(0)
    config = {"resolution": 32, "z_dim": 96, "fmaps_base": 1024, "fmaps_max": 64, **overrides}
    return ARCHITECTURES.get("pggan")(**config).freeze()


def test_unknown_checksum_file_is_used_only_if_it_loads_through_the_safe_reader(tmp_path: Path) -> None:
    store = _structure_store(tmp_path)
    target = store.cache_path(store.entry("small-pggan"))
    target.parent.mkdir(parents=True)

    model = _small_pggan()
    torch.save(model.state_dict(), target)
    assert store.status("small-pggan").verified
    z = torch.randn(2, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(load_generator("small-pggan", store)(z), model(z))

    torch.save(_small_pggan(fmaps_max=32).state_dict(), target)  # a well-formed PGGAN, but not this one
    status = store.status("small-pggan")
    assert not status.verified and "not the expected" in (status.problem or "")
    with pytest.raises(WeightsNotFoundError, match="not the expected"):
        store.path("small-pggan")

    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self) -> tuple:
            import os

            return os.system, (f"touch {marker}",)

    target.write_bytes(pickle.dumps({"layer0.conv.weight": Exploit()}, protocol=2))
    with pytest.raises(WeightsNotFoundError, match="safe genforce-pggan reader"):
        store.path("small-pggan")
    assert not marker.exists()


def test_structure_check_rejects_a_non_generator(tmp_path: Path) -> None:
    store = _structure_store(tmp_path)
    target = store.cache_path(store.entry("small-pggan"))
    target.parent.mkdir(parents=True)
    target.write_bytes(b"<html>Google Drive can't scan this file for viruses</html>")
    with pytest.raises(ChecksumError):
        store._check(store.entry("small-pggan"), target)


@pytest.mark.parametrize("name", sorted(preset_files()))
def test_every_preset_is_valid(name: str) -> None:
    preset = load_preset(name)
    entry = load_registry()[preset.generator]
    assert entry.kind == "generator"
    model = _meta_model(entry.architecture or "", entry.config)
    assert 1 <= preset.inversion.layer <= len(model.layers())
    assert preset.inversion.space in model.latent_spaces
    assert preset.task in TASKS
    build_degradation(preset.degradation).observed_size(model.resolution)
    expected_degradation = {"invert": "identity", "colorize": "luma", "superres": "downsample", "inpaint": "mask",
                            "denoise": "identity"}[preset.task]
    assert preset.degradation["type"] == expected_degradation


@pytest.mark.parametrize("name", sorted(REFERENCE_TABLE))
def test_reference_presets_follow_the_paper_table(name: str) -> None:
    task, generator, layer, codes, iterations, weight = REFERENCE_TABLE[name]
    preset = load_preset(name)
    settings = preset.inversion
    assert (preset.task, preset.generator) == (task, generator)
    assert (settings.layer, settings.codes, settings.iterations) == (layer, codes, iterations)
    assert (settings.optimizer, settings.lr, settings.schedule, settings.warmup) == ("sgd", 1.0, "constant", 0.0)
    assert settings.composition == "mean" and settings.space == "z"
    assert getattr(settings, "alpha_lr", 1.0) == 1.0  # one rate for codes and importances, as the reference
    assert (preset.loss.perceptual_weight, preset.loss.vgg_layer, preset.loss.perceptual_resolution) == (weight, 16,
                                                                                                        256)
    if task == "superres":
        assert preset.degradation == {"type": "downsample", "scale": 16, "mode": "bilinear"}
    if task == "inpaint":
        assert preset.degradation == {"type": "mask", "paste_known": False}
