"""SeFa and GANSpace directions: unit-norm, orthogonal, and equal to a direct eigendecomposition written here."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mgan_cli.edit import directions
from mgan_cli.errors import ConfigurationError, DirectionCountError
from mgan_cli.generators import ARCHITECTURES
from mgan_cli.weights.loading import load_generator


def _tiny(name: str, **config):
    torch.manual_seed(3)
    return ARCHITECTURES.get(name)(**config).freeze()


@pytest.fixture(scope="module")
def dcgan():
    return load_generator("dcgan64-digiface")


def _stylegan():
    return _tiny("stylegan", resolution=16, z_dim=24, w_dim=24, fmaps_base=128, fmaps_max=16, mapping_layers=2,
                 truncation_psi=None, truncation_layers=None)


def _stylegan2():
    return _tiny("stylegan2", resolution=16, z_dim=24, w_dim=24, fmaps_base=128, fmaps_max=16, num_mapping_layers=2,
                 truncation_psi=None, truncation_layers=None)


def _top_eigenvectors(rows: np.ndarray, count: int) -> np.ndarray:
    """SeFa written directly: unit-norm rows, eigenvectors of AᵀA by decreasing eigenvalue, as rows."""
    rows = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    values, vectors = np.linalg.eigh(rows.T @ rows)
    return vectors[:, np.argsort(values)[::-1][:count]].T


def _assert_orthonormal(vectors: torch.Tensor) -> None:
    gram = vectors.double() @ vectors.double().T
    assert torch.allclose(gram, torch.eye(len(vectors), dtype=torch.float64), atol=1e-5)


def _assert_same_up_to_sign(ours: torch.Tensor, expected: np.ndarray) -> None:
    cosines = np.abs(np.sum(ours.double().numpy() * expected, axis=1))
    assert np.allclose(cosines, 1.0, atol=1e-4), cosines


def test_sefa_on_the_dcgan_matches_a_direct_eigendecomposition(dcgan) -> None:
    found = directions.sefa(dcgan, 8)
    assert found.vectors.shape == (8, 100) and found.space == "z"
    _assert_orthonormal(found.vectors)
    weight = dict(dcgan.named_parameters())["blocks.0.0.weight"].numpy()  # ConvT weight [z, C, 4, 4]
    _assert_same_up_to_sign(found.vectors, _top_eigenvectors(weight.reshape(100, -1).T, 8))
    assert torch.all(found.values[:-1] >= found.values[1:])


def test_the_first_sefa_direction_moves_the_first_layer_most(dcgan) -> None:
    """What SeFa promises: no unit direction changes the (row-normalised) first-layer response more."""
    weight = dict(dcgan.named_parameters())["blocks.0.0.weight"].reshape(100, -1).T
    weight = weight / weight.norm(dim=1, keepdim=True)
    top = directions.sefa(dcgan, 1).vectors[0]
    others = torch.nn.functional.normalize(torch.randn(200, 100, generator=torch.Generator().manual_seed(0)), dim=1)
    assert (weight @ top).norm() >= (others @ weight.T).norm(dim=1).max()


def test_sefa_on_pggan_reads_the_dense_first_layer() -> None:
    pggan = _tiny("pggan", resolution=8, z_dim=20, fmaps_base=256, fmaps_max=16)
    found = directions.sefa(pggan, 5)
    _assert_orthonormal(found.vectors)
    weight = pggan.state_dict()["layer0.conv.weight"].numpy()  # [C, z, 4, 4]
    _assert_same_up_to_sign(found.vectors, _top_eigenvectors(weight.transpose(0, 2, 3, 1).reshape(-1, 20), 5))


@pytest.mark.parametrize("build, suffix", [(_stylegan, "style_mod.dense.fc.weight"), (_stylegan2, "style.fc.weight")])
def test_sefa_on_stylegans_stacks_every_style_affine(build, suffix) -> None:
    generator = build()
    found = directions.sefa(generator, 6)
    assert found.space == "w"
    _assert_orthonormal(found.vectors)
    affines = [v.numpy() for k, v in generator.state_dict().items() if k.endswith(suffix)]
    assert len(affines) >= generator.num_layers
    _assert_same_up_to_sign(found.vectors, _top_eigenvectors(np.concatenate(affines), 6))


def test_sefa_rows_limit_the_affines() -> None:
    generator = _stylegan()
    found = directions.sefa(generator, 4, rows=range(2, 4))
    affines = [generator.state_dict()[f"synthesis.layer{r}.epilogue.style_mod.dense.fc.weight"].numpy() for r in (2, 3)]
    _assert_same_up_to_sign(found.vectors, _top_eigenvectors(np.concatenate(affines), 4))
    with pytest.raises(ConfigurationError):
        directions.sefa(generator, 4, rows=range(0, generator.num_layers + 1))
    with pytest.raises(ConfigurationError):
        directions.sefa(load_generator("dcgan32-celeba"), 4, rows=range(0, 2))


def test_pca_of_w_matches_the_covariance_eigenvectors() -> None:
    generator = _stylegan()
    found = directions.pca(generator, 5, samples=3000)
    _assert_orthonormal(found.vectors)
    w = directions.sample_codes(generator, 3000).double().numpy()
    values, vectors = np.linalg.eigh(np.cov(w, rowvar=False))
    order = np.argsort(values)[::-1][:5]
    _assert_same_up_to_sign(found.vectors, vectors[:, order].T)
    assert np.allclose(found.values.numpy(), values[order], rtol=1e-3)


def test_feature_pca_regresses_back_to_orthonormal_codes(dcgan) -> None:
    found = directions.pca(dcgan, 4, layer=1, samples=300)
    assert found.vectors.shape == (4, 100) and found.layer == 1
    _assert_orthonormal(found.vectors)
    # direction 0 is the least-squares map from the first principal coordinate of the features back to z
    z = directions.sample_codes(dcgan, 300).double().numpy()
    with torch.no_grad():
        lower, _ = dcgan.split(1)
        features = torch.cat([lower(c) for c in torch.from_numpy(z).float().split(100)]).flatten(1).double().numpy()
    centred = features - features.mean(axis=0)
    values, left = np.linalg.eigh(centred @ centred.T)  # the first right singular vector, via the Gram matrix
    first = centred.T @ left[:, np.argmax(values)]
    first /= np.linalg.norm(first)
    coordinate = centred @ first
    slope = np.linalg.lstsq(coordinate[:, None], z - z.mean(axis=0), rcond=None)[0][0]
    _assert_same_up_to_sign(found.vectors[:1], (slope / np.linalg.norm(slope))[None])


def test_pca_of_z_alone_is_refused(dcgan) -> None:
    with pytest.raises(ConfigurationError, match="--layer"):
        directions.pca(dcgan, 4)
    with pytest.raises(DirectionCountError) as info:  # each command words it for its own option
        directions.sefa(dcgan, 101)
    assert (info.value.asked, info.value.available) == (101, 100)
