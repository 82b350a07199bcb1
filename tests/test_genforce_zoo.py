"""genforce/genforce model-zoo and InterFaceGAN StyleGAN readers against the official modules' outputs.

``tests/fixtures/official_layouts.pt`` was made once (outside this repository) by building each official
module from its published source (genforce/genforce ``models/{pggan,stylegan,stylegan2}_generator.py``,
genforce/interfacegan ``models/stylegan_generator_model.py``), filling its state dict by the rule of
:func:`official_state` below, and recording its outputs for fixed codes. It holds, per fixture, the official
state-dict keys and shapes, the fixed buffers (blur/FIR kernels, lod, truncation), the seed, the codes and the
outputs; no official code. The tests rebuild the same state dict, write it in the official container and
check mgan's reader + architecture reproduce the official outputs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mgan_cli.errors import UnknownFormatError, UnsafePickleError
from mgan_cli.weights.formats import READERS, build
from mgan_cli.weights.formats.genforce_zoo import load_zoo_generator_state, zoo_weights
from mgan_cli.weights.importing import import_generator, sniff_format
from mgan_cli.weights.store import WeightStore, load_registry

FIXTURES = Path(__file__).parent / "fixtures" / "official_layouts.pt"


@pytest.fixture(scope="module")
def fixtures() -> dict:
    return torch.load(FIXTURES, weights_only=True)


def official_state(fixture: dict) -> dict[str, torch.Tensor]:
    """The official-layout state dict: fixed buffers as recorded, every other tensor seeded N(0, 1) in key order,
    scaled 0.2 for biases/noise strengths/w_avg and 100 for the mapping (equalised lr 0.01: the official init)."""
    generator = torch.Generator().manual_seed(fixture["seed"])
    state = {}
    for name, shape in fixture["shapes"]:
        if name in fixture["fixed"]:
            state[name] = fixture["fixed"][name].clone()
            continue
        small = name.endswith(("bias", "w_avg", "noise_strength")) or "apply_noise.weight" in name
        scale = (0.2 if small else 1.0) * (100.0 if name.startswith("mapping.") else 1.0)
        state[name] = torch.randn(shape, generator=generator) * scale
    return state


def _zoo_file(tmp_path: Path, fixture: dict, container: str = "converter") -> Path:
    state = official_state(fixture)
    path = tmp_path / "zoo.pth"
    other = {k: v + 1.0 for k, v in state.items()}  # the non-averaged generator: must not be the one read
    if container == "converter":  # genforce's converters: {'generator', 'discriminator', 'generator_smooth'}
        torch.save({"generator": other, "discriminator": {"layer0.weight": torch.zeros(1)},
                    "generator_smooth": state}, path)
    elif container == "runner":  # genforce's runner checkpoints nest the models
        torch.save({"models": {"generator": other, "generator_smooth": state}, "meta": {"iter": 3}}, path)
    else:
        torch.save(state, path)
    return path


def _close(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float((actual - expected).abs().max() / expected.abs().max().clamp(min=1e-12))


@pytest.mark.parametrize("name", ["zoo_pggan16", "zoo_pggan16_fused"])
def test_zoo_pggan_matches_the_official_module(tmp_path: Path, fixtures: dict, name: str) -> None:
    fixture = fixtures[name]
    path = _zoo_file(tmp_path, fixture)
    assert sniff_format(path) == "genforce-zoo"
    weights = READERS.get("genforce-zoo")(path)
    assert weights.metadata["entry"] == "generator_smooth"
    assert weights.config["fused_scale"] is fixture["config"]["fused_scale"]
    model = build(weights)
    with torch.no_grad():
        image = model(fixture["z"])
    assert _close(image, fixture["outputs"]["image"]) < 1e-5


def _assert_matches_official(model: torch.nn.Module, fixture: dict, psi: float, rows: int) -> None:
    """The official module's image and w for the fixture's z, and its image truncated to ``w_avg`` by ``psi``
    in the first ``rows`` w+ rows (the truncation done by hand here, as the official forward does it)."""
    z, outputs = fixture["z"], fixture["outputs"]
    with torch.no_grad():
        assert _close(model(z), outputs["image"]) < 1e-5
        assert _close(model.to_wplus(z, "z")[:, 0], outputs["w"]) < 1e-5
        wp = model.to_wplus(z, "z")
        w_avg = model.state_dict()["truncation.w_avg"]
        row = torch.arange(wp.shape[1]).view(1, -1, 1)
        truncated = torch.where(row < rows, w_avg + (wp - w_avg) * psi, wp)
        assert _close(model.render(truncated, "w+"), outputs["image_trunc"]) < 1e-5


@pytest.mark.parametrize("name", ["zoo_stylegan16", "zoo_stylegan16_fused"])
def test_zoo_stylegan_matches_the_official_module(tmp_path: Path, fixtures: dict, name: str) -> None:
    fixture = fixtures[name]
    fused = fixture["config"]["fused_scale"]
    path = _zoo_file(tmp_path, fixture, container="runner")
    state, entry = load_zoo_generator_state(path)
    assert entry == "generator_smooth"
    weights = zoo_weights(state, path, stylegan_fused_scale=fused if fused else "auto")
    assert weights.config["truncation_psi"] is None  # the zoo's forward does not truncate unless asked
    _assert_matches_official(build(weights), fixture, psi=0.7, rows=4)  # the official trunc_psi 0.7, 4 rows


def test_zoo_stylegan2_matches_the_official_module(tmp_path: Path, fixtures: dict) -> None:
    fixture = fixtures["zoo_stylegan2_16"]
    path = _zoo_file(tmp_path, fixture, container="bare")
    assert sniff_format(path) == "genforce-zoo"
    weights = READERS.get("genforce-zoo")(path)
    assert weights.architecture == "stylegan2" and weights.metadata["entry"] == "state_dict"
    _assert_matches_official(build(weights), fixture, psi=0.5, rows=6)


def test_interfacegan_stylegan_matches_the_official_module(tmp_path: Path, fixtures: dict) -> None:
    fixture = fixtures["interfacegan_stylegan8"]
    path = tmp_path / "stylegan_ffhq.pth"
    torch.save(official_state(fixture), path)
    assert sniff_format(path) == "interfacegan-stylegan"
    weights = READERS.get("interfacegan-stylegan")(path)
    assert (weights.config["truncation_psi"], weights.config["truncation_layers"]) == (0.7, 8)
    model = build(weights)
    with torch.no_grad():
        assert _close(model(fixture["z"]), fixture["outputs"]["image"]) < 1e-5  # its forward truncates
        assert _close(model.mapping(fixture["z"]), fixture["outputs"]["w"]) < 1e-5  # before truncation


def test_import_command_reads_zoo_files(tmp_path: Path, fixtures: dict) -> None:
    store = WeightStore(home=tmp_path / "home", entries=load_registry(), allow_download=False)
    imported = import_generator(_zoo_file(tmp_path, fixtures["zoo_pggan16"]), "zoo-pggan", store=store)
    assert imported.info["source_format"] == "genforce-zoo" and imported.info["resolution"] == 16


def test_zoo_reader_refuses_other_files(tmp_path: Path) -> None:
    empty = tmp_path / "d.pth"
    torch.save({"discriminator": {"layer0.weight": torch.zeros(1)}}, empty)
    with pytest.raises(UnknownFormatError, match="no generator state dict"):
        READERS.get("genforce-zoo")(empty)
    text = tmp_path / "t.pth"
    text.write_text("hello")
    with pytest.raises(UnknownFormatError):
        READERS.get("genforce-zoo")(text)

    class Evil:
        def __reduce__(self):
            return (print, ("ran",))

    evil = tmp_path / "e.pth"
    torch.save({"generator_smooth": Evil()}, evil)
    with pytest.raises(UnsafePickleError):
        READERS.get("genforce-zoo")(evil)


def test_interfacegan_pggan_is_read_by_the_genforce_pggan_reader(tmp_path: Path, fixtures: dict) -> None:
    fixture = fixtures["interfacegan_pggan8"]
    path = tmp_path / "pggan_celebahq.pth"
    torch.save(official_state(fixture), path)
    assert sniff_format(path) == "genforce-pggan"
    model = build(READERS.get("genforce-pggan")(path))
    with torch.no_grad():
        assert _close(model(fixture["z"]), fixture["outputs"]["image"]) < 1e-5
