"""Direction specs: InterFaceGAN boundaries from the registry (refused for other generators and spaces),
.npy files, computed directions, and conditional manipulation (checked against InterFaceGAN's own)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mgan_cli.edit import boundaries
from mgan_cli.edit.frames import Direction, check_compatible
from mgan_cli.errors import ConfigurationError, WeightsError
from mgan_cli.weights.loading import load_generator
from mgan_cli.weights.store import default_store, load_registry


def _shared_boundary(shared_dir: Path, stem: str) -> np.ndarray:
    return np.load(shared_dir / "weights" / "boundaries" / "interfacegan" / f"{stem}_boundary.npy")[0]


def test_every_boundary_entry_is_complete_and_in_the_mirror() -> None:
    entries = load_registry()
    found = {name: e for name, e in entries.items() if e.kind == "boundary"}
    assert len(found) == 39
    store = default_store()
    for name, entry in found.items():
        assert entry.extra["space"] in ("z", "w"), name
        assert entry.extra["generators"] and all(entries[g].kind == "generator" for g in entry.extra["generators"])
        assert entry.extra["attribute"] in name and entry.sources and entry.sha256, name
        assert store.status(name).verified, name
        for other in entry.extra.get("conditioned_on", []):
            assert other in name
    assert found["stylegan-ffhq1024-smile-w"].extra["space"] == "w"
    pggan_smile = found["pggan-celebahq1024-smile"].extra["generators"]
    assert pggan_smile == ["pggan-celebahq1024", "pggan-celebahq1024-genforce"]


def test_a_boundary_loads_as_a_unit_vector_of_its_space(shared_dir) -> None:
    direction = boundaries.load_boundary("pggan-celebahq1024-smile", "pggan-celebahq1024-genforce")
    assert direction.space == "z" and direction.vector.shape == (512,)
    expected = _shared_boundary(shared_dir, "pggan_celebahq_smile")
    assert np.allclose(direction.vector.numpy(), expected / np.linalg.norm(expected), atol=1e-7)


def test_a_boundary_for_another_generator_or_space_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="made for pggan-celebahq1024"):
        boundaries.load_boundary("pggan-celebahq1024-smile", "dcgan64-digiface")
    with pytest.raises(ConfigurationError, match="made for stylegan-ffhq1024"):
        boundaries.load_boundary("stylegan-ffhq1024-smile", "stylegan-celebahq1024")
    w_smile = boundaries.load_boundary("stylegan-ffhq1024-smile-w", "stylegan-ffhq1024")
    with pytest.raises(ConfigurationError, match="W space but the codes are in z"):
        check_compatible(w_smile, "z", 512)
    check_compatible(w_smile, "w+", 512)
    z_smile = boundaries.load_boundary("stylegan-ffhq1024-smile", "stylegan-ffhq1024")
    with pytest.raises(ConfigurationError, match="Z space but the codes are in w"):
        check_compatible(z_smile, "w", 512)
    with pytest.raises(WeightsError, match="not a boundary"):
        boundaries.load_boundary("vgg16-imagenet", "pggan-celebahq1024")


def test_conditioning_reproduces_interfacegan_conditional_boundaries(shared_dir) -> None:
    def load(name: str) -> Direction:
        return boundaries.load_boundary(name, "pggan-celebahq1024")

    for primal, conditions, shipped in [("age", ["gender"], "age_c_gender"),
                                        ("eyeglasses", ["age", "gender"], "eyeglasses_c_age_gender")]:
        result = boundaries.condition(load(f"pggan-celebahq1024-{primal}"),
                                      [load(f"pggan-celebahq1024-{c}") for c in conditions])
        assert abs(float(result.vector.norm()) - 1) < 1e-6
        for c in conditions:
            assert abs(float(result.vector @ load(f"pggan-celebahq1024-{c}").vector)) < 1e-6
        expected = _shared_boundary(shared_dir, f"pggan_celebahq_{shipped}")
        assert float(result.vector.double() @ torch.from_numpy(expected)) > 0.99999


def test_npy_files_and_their_sidecar(tmp_path: Path) -> None:
    dcgan = load_generator("dcgan32-celeba")
    single = tmp_path / "one.npy"
    np.save(single, np.full((1, 100), 3.0))
    direction = boundaries.resolve(str(single), "dcgan32-celeba", "z", lambda: dcgan)
    assert torch.allclose(direction.vector, torch.full((100,), 0.1)) and direction.space == "z"
    many = tmp_path / "sefa.npy"
    rows = np.eye(4, 100)
    np.save(many, rows)
    assert torch.equal(boundaries.resolve(f"{many}:2", "dcgan32-celeba", "z", lambda: dcgan).vector, torch.eye(100)[2])
    with pytest.raises(ConfigurationError, match=r"FILE\.npy:K"):
        boundaries.resolve(str(many), "dcgan32-celeba", "z", lambda: dcgan)
    (tmp_path / "sefa.json").write_text(json.dumps({"generator": "dcgan64-digiface", "space": "z"}))
    with pytest.raises(ConfigurationError, match="made for dcgan64-digiface"):
        boundaries.resolve(f"{many}:1", "dcgan32-celeba", "z", lambda: dcgan)


def test_computed_directions_are_the_kth_of_their_method() -> None:
    from mgan_cli.edit import directions

    dcgan = load_generator("dcgan32-celeba")
    direction = boundaries.resolve("sefa:3", "dcgan32-celeba", "z", lambda: dcgan)
    assert torch.equal(direction.vector, directions.sefa(dcgan, 4).vectors[3])
    with pytest.raises(ConfigurationError, match="sefa:K"):
        boundaries.resolve("sefa:x", "dcgan32-celeba", "z", lambda: dcgan)
