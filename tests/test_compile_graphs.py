"""Every generator's forward pass and the engine's step trace into one graph (``torch.compile(fullgraph=True)``
raises at a graph break: a host sync or a branch on data), so CUDA graphs are possible on the GPU. The
``aot_eager`` backend traces forward and backward like inductor does but generates no code, so this stays
fast on the CPU; tiny random generators."""

from __future__ import annotations

import pytest
import torch

from mgan_cli.core.degradations import Downsample
from mgan_cli.core.engine import EngineOptions, InversionSettings, MultiCodeModel, _Stepper, initial_state
from mgan_cli.core.losses import ReconstructionLoss
from mgan_cli.generators import ARCHITECTURES

TINY = {
    "dcgan64": dict(latent_size=8, width=4),
    "pggan": dict(resolution=16, z_dim=8, fmaps_base=64, fmaps_max=8),
    "stylegan": dict(resolution=16, z_dim=8, w_dim=8, fmaps_base=64, fmaps_max=8, mapping_layers=2,
                     truncation_psi=None, truncation_layers=None),
    "stylegan2": dict(resolution=16, z_dim=8, w_dim=8, fmaps_base=64, fmaps_max=8, num_mapping_layers=2,
                      truncation_psi=None, truncation_layers=None),
    "stylegan3": dict(resolution=16, z_dim=8, w_dim=8, channel_base=128, channel_max=8, num_layers=4,
                      num_critical=1, margin_size=2),
}


def tiny(name: str):
    torch.manual_seed(0)
    return ARCHITECTURES.get(name)(**TINY[name]).freeze().eval()


@pytest.mark.parametrize("name", sorted(TINY))
def test_every_generator_forward_compiles_to_one_graph(name: str) -> None:
    torch._dynamo.reset()
    generator = tiny(name)
    codes = torch.randn(2, generator.latent_size)
    compiled = torch.compile(generator, fullgraph=True, backend="aot_eager")
    with torch.no_grad():
        torch.testing.assert_close(compiled(codes), generator(codes), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["stylegan2", "stylegan3"])
def test_the_engine_step_compiles_to_one_graph(name: str) -> None:
    """The render-and-loss function the engine compiles, forward and backward, with a clamp in every layer."""
    torch._dynamo.reset()
    generator = tiny(name)
    settings = InversionSettings(codes=2, layer=2, space="w+", iterations=1)
    model = MultiCodeModel(generator, settings.layer, settings.space, settings.composition)
    degradation, loss = Downsample(2, "area"), ReconstructionLoss(perceptual_weight=0.0)
    stepper = _Stepper(model, degradation, loss, EngineOptions(), torch.device("cpu"), None)
    codes, alphas, upper = initial_state(generator, settings, [0, 1], torch.device("cpu"))
    params = [p.requires_grad_() for p in (codes, alphas, upper) if p is not None]
    observed = torch.rand(2, 3, 8, 8) * 2 - 1
    args = (codes, alphas, upper, observed, None, None)
    compiled = torch.compile(stepper.eager, fullgraph=True, backend="aot_eager")
    losses = compiled(*args)
    losses.sum().backward()
    grads = [p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    stepper.eager(*args).sum().backward()
    for grad, p in zip(grads, params, strict=True):
        torch.testing.assert_close(grad, p.grad, atol=1e-5, rtol=1e-4)


def test_off_the_cpu_the_clamp_never_reads_a_value_back() -> None:
    """On a device other than the CPU (``meta`` stands in for CUDA here: it has no values to read back) the
    clamp is unconditional; deciding whether it is needed would sync with the host in every layer."""
    from mgan_cli.generators.filtered_lrelu import activate

    out = activate(torch.empty(2, 3, 8, 8, device="meta"), 1.0, 0.2, 256.0)
    assert out.device.type == "meta" and out.shape == (2, 3, 8, 8)


def test_stylegan3_layers_build_their_filter_matrices_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from mgan_cli.generators import filtered_lrelu as flr
    from mgan_cli.generators.stylegan3 import SynthesisLayer

    generator = tiny("stylegan3")
    layers = [m for m in generator.modules() if isinstance(m, SynthesisLayer)]
    assert any(layer.filter_matrices() for layer in layers)
    codes = torch.randn(2, generator.latent_size)
    with monkeypatch.context() as patch:  # the uncached path, for reference
        patch.setattr(SynthesisLayer, "filter_matrices", lambda self: None)
        with torch.no_grad():
            expected = generator(codes)

    def rebuilt(*args, **kwargs):
        raise AssertionError("a filter matrix was rebuilt during a forward pass")

    monkeypatch.setattr(flr, "upsampling_matrix", rebuilt)
    monkeypatch.setattr(flr, "downsampling_matrix", rebuilt)
    with torch.no_grad():
        torch.testing.assert_close(generator(codes), expected, atol=1e-6, rtol=1e-5)


def test_loading_filters_rebuilds_the_matrices() -> None:
    generator = tiny("stylegan3")
    state = generator.state_dict()
    name = next(n for n, m in generator.named_modules() if "matrix_up_width" in dict(m.named_buffers()))
    layer = generator.get_submodule(name)
    before = layer.matrix_up_width.clone()
    state[f"{name}.up_filter"] = state[f"{name}.up_filter"] * 2
    generator.load_state_dict(state)
    torch.testing.assert_close(layer.matrix_up_width, before * 2)
    assert not any("matrix_" in key for key in generator.state_dict())  # never saved
