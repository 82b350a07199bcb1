"""The inversion engine: batching is exact, seeds reproduce, the generator stays frozen, the loss falls, the
degradation is applied to the estimates. Runs on a tiny random generator (real weights: the end-to-end tests)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mgan_cli.core.degradations import Downsample, Identity, Mask
from mgan_cli.core.engine import OPTIMIZERS, InversionSettings, invert, lr_factor
from mgan_cli.core.losses import ReconstructionLoss
from mgan_cli.errors import ConfigurationError
from tests.helpers import tiny_generator, vgg16_weights


@pytest.fixture(scope="module")
def generator():
    return tiny_generator()


@pytest.fixture(scope="module")
def targets(generator) -> torch.Tensor:
    with torch.no_grad():
        return generator(torch.randn(3, 16, generator=torch.Generator().manual_seed(11))).clamp(-1, 1)


def _settings(**changes) -> InversionSettings:
    base = dict(codes=4, layer=2, iterations=6, optimizer="adam", lr=0.05)
    return InversionSettings(**{**base, **changes})


def test_a_batch_gives_the_same_result_as_one_image_at_a_time(generator, targets) -> None:
    loss = ReconstructionLoss(perceptual_weight=1.0, vgg_weights=vgg16_weights())
    together = invert(generator, targets, Identity(), loss, _settings(), seeds=[1, 2, 3])
    for index, seed in enumerate([1, 2, 3]):
        alone = invert(generator, targets[index:index + 1], Identity(), loss, _settings(), seeds=[seed])
        assert torch.allclose(together.images[index], alone.images[0], atol=1e-4)


def test_seeds_reproduce_and_differ(generator, targets) -> None:
    loss = ReconstructionLoss(perceptual_weight=0.0)
    first = invert(generator, targets[:1], Identity(), loss, _settings(), seeds=[5])
    again = invert(generator, targets[:1], Identity(), loss, _settings(), seeds=[5])
    other = invert(generator, targets[:1], Identity(), loss, _settings(), seeds=[6])
    assert torch.equal(first.images, again.images)
    assert not torch.allclose(first.images, other.images)


def test_generator_weights_receive_no_gradients(generator, targets) -> None:
    before = {k: v.clone() for k, v in generator.state_dict().items()}
    invert(generator, targets[:1], Identity(), ReconstructionLoss(1.0, vgg_weights=vgg16_weights()),
           _settings(optimizer="sgd", lr=1.0), seeds=[0])
    assert all(p.grad is None and not p.requires_grad for p in generator.parameters())
    assert all(torch.equal(before[k], v) for k, v in generator.state_dict().items())


@pytest.fixture(scope="module")
def trained():
    """The one real generator here: whether the loss falls is a property of a trained generator."""
    from mgan_cli.weights.loading import load_generator

    generator = load_generator("dcgan32-celeba")
    with torch.no_grad():
        images = generator(torch.randn(2, 100, generator=torch.Generator().manual_seed(11))).clamp(-1, 1)
    return generator, images


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_loss_decreases(trained, optimizer: str) -> None:
    generator, targets = trained
    loss = ReconstructionLoss(perceptual_weight=1.0, vgg_weights=vgg16_weights())
    lr = 0.05 if optimizer == "adam" else 1.0
    start = invert(generator, targets[:2], Identity(), loss, _settings(iterations=0, optimizer=optimizer, lr=lr),
                   seeds=[0, 1])
    end = invert(generator, targets[:2], Identity(), loss, _settings(iterations=40, optimizer=optimizer, lr=lr),
                 seeds=[0, 1])
    assert (end.losses < start.losses * 0.8).all()


def test_the_downsampling_is_applied_to_the_estimates(generator, targets) -> None:
    """The loss the engine reports is the MSE between the *downsampled* estimate and the low-res input."""
    low = Downsample(2, "area")(targets)
    result = invert(generator, low, Downsample(2, "area"), ReconstructionLoss(0.0), _settings(), seeds=[0, 1, 2])
    assert result.images.shape == targets.shape
    by_hand = (F.avg_pool2d(result.images, 2) - low).square().flatten(1).mean(dim=1)
    torch.testing.assert_close(result.losses, by_hand)


def test_the_mask_hides_the_missing_pixels_from_the_optimisation(generator, targets) -> None:
    """Whatever the input holds inside the hole, inpainting ends with the same codes and images; a mask
    degradation that returned its input would let those pixels pull the estimate."""
    mask = torch.zeros(3, 1, 32, 32)
    mask[..., 8:24, 8:24] = 1
    scribbled = targets * (1 - mask) + torch.rand(targets.shape, generator=torch.Generator().manual_seed(2)) * mask
    loss = ReconstructionLoss(perceptual_weight=0.0)
    clean = invert(generator, targets, Mask(), loss, _settings(), seeds=[0, 1, 2], mask=mask)
    noisy = invert(generator, scribbled, Mask(), loss, _settings(), seeds=[0, 1, 2], mask=mask)
    assert result_moved(clean, generator)
    torch.testing.assert_close(noisy.codes, clean.codes)
    torch.testing.assert_close(noisy.images, clean.images)
    assert clean.alphas.shape == (3, 4, 16) and clean.codes.shape == (3, 4, 16)


def result_moved(result, generator) -> bool:
    """Whether the optimisation changed the codes from their seeded start (so a comparison is not vacuous)."""
    from mgan_cli.core.engine import initial_state

    start, _, _ = initial_state(generator, _settings(), [0, 1, 2], torch.device("cpu"))
    return bool((result.codes - start).abs().max() > 1e-3)


def test_progress_is_reported(generator, targets) -> None:
    seen: list[tuple[int, int]] = []
    invert(generator, targets[:2], Identity(), ReconstructionLoss(0.0), _settings(iterations=25), seeds=[0, 1],
           progress=lambda step, losses: seen.append((step, losses.shape[0])), progress_every=10)
    assert seen == [(10, 2), (20, 2), (25, 2)]


def test_learning_rate_schedule() -> None:
    assert lr_factor(0, 100, "cosine", 0.0) == 1.0
    assert lr_factor(50, 100, "cosine", 0.0) == pytest.approx(0.5)
    assert lr_factor(99, 100, "cosine", 0.0) < 0.01
    assert lr_factor(0, 100, "constant", 0.1) == pytest.approx(0.1)
    assert lr_factor(9, 100, "constant", 0.1) == 1.0
    assert lr_factor(99, 100, "constant", 0.0) == 1.0
    with pytest.raises(KeyError, match="schedule 'step'"):  # an unknown name is an error, not a cosine
        lr_factor(10, 100, "step", 0.0)


def test_optimisers_are_looked_up_by_name() -> None:
    assert OPTIMIZERS.get("adam") is torch.optim.Adam and OPTIMIZERS.get("sgd") is torch.optim.SGD
    with pytest.raises(KeyError, match="rmsprop"):
        OPTIMIZERS.get("rmsprop")


@pytest.mark.parametrize("bad", [dict(codes=0), dict(optimizer="rmsprop"), dict(lr=0.0), dict(schedule="step"),
                                 dict(warmup=1.0), dict(alpha_lr=-1.0)])
def test_settings_are_validated(bad: dict) -> None:
    with pytest.raises(ConfigurationError):
        InversionSettings(**bad)


def test_fast_paths_match_the_plain_path(generator, targets) -> None:
    from mgan_cli.core.engine import EngineOptions

    loss = ReconstructionLoss(perceptual_weight=1.0, vgg_weights=vgg16_weights())
    plain = invert(generator, targets, Identity(), loss, _settings(), seeds=[1, 2, 3])
    nhwc = invert(generator, targets, Identity(), loss, _settings(), seeds=[1, 2, 3],
                  options=EngineOptions(channels_last=True))
    assert torch.allclose(nhwc.images, plain.images, atol=1e-4)
    bf16 = invert(generator, targets, Identity(), loss, _settings(), seeds=[1, 2, 3],
                  options=EngineOptions(precision="bf16"))
    assert (bf16.images - plain.images).abs().mean() < 0.02  # bf16 autocast: same reconstruction, coarser


def test_early_stopping_freezes_finished_images_and_shrinks_the_batch(generator) -> None:
    from mgan_cli.core.engine import MultiCodeModel, initial_state

    settings = _settings(iterations=40, schedule="constant", early_stop_window=10, early_stop_tolerance=1e-9)
    codes, alphas, _ = initial_state(generator, settings, [0, 1], torch.device("cpu"))
    with torch.no_grad():  # image 0 is exactly what its initial codes render (in a batch of 2, as in the run)
        solved = MultiCodeModel(generator, settings.layer, settings.space, settings.composition)(codes, alphas)[:1]
    other = generator(torch.randn(1, 16, generator=torch.Generator().manual_seed(4))).detach().clamp(-1, 1)
    loss = ReconstructionLoss(perceptual_weight=0.0)
    result = invert(generator, torch.cat([solved, other]), Identity(), loss, settings, seeds=[0, 1])
    assert result.steps.tolist() == [20, 40]
    assert torch.allclose(result.images[0], solved[0], atol=1e-6)
    alone = invert(generator, other, Identity(), loss, settings, seeds=[1])
    assert torch.allclose(result.images[1], alone.images[0], atol=1e-5)


def _compile_options(mode: str = "default"):
    from mgan_cli.core.engine import EngineOptions

    return EngineOptions(compile=mode)


@pytest.mark.slow
def test_compile_default_matches_eager_on_the_cpu(generator, targets) -> None:
    """A real ``--compile default`` run (inductor, CPU): no fallback, and the images match eager within
    1e-3 (max abs, images in [-1, 1]; inductor fuses and reorders float32 sums, so bits differ)."""
    warnings: list[str] = []
    loss = ReconstructionLoss(perceptual_weight=0.0)
    settings = _settings(iterations=3)
    compiled = invert(generator, targets[:2], Identity(), loss, settings, seeds=[3, 4],
                      options=_compile_options(), warn=warnings.append)
    eager = invert(generator, targets[:2], Identity(), loss, settings, seeds=[3, 4])
    assert warnings == []
    assert result_moved_from(eager, generator, settings, [3, 4])
    assert (compiled.images - eager.images).abs().max() < 1e-3


def result_moved_from(result, generator, settings, seeds) -> bool:
    from mgan_cli.core.engine import initial_state

    start, _, _ = initial_state(generator, settings, seeds, torch.device("cpu"))
    return bool((result.codes - start).abs().max() > 1e-3)


class _FailingBackward(torch.autograd.Function):
    """Identity forward; its backward raises (as a compiled backward that fails to compile does)."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("backward failed to compile")


def _patch_compiled(monkeypatch, compiled_factory) -> None:
    """Make ``torch.compile`` return ``compiled_factory(eager_function)``."""
    monkeypatch.setattr(torch, "compile", lambda function, **kwargs: compiled_factory(function))


def test_a_compiled_backward_that_fails_falls_back_to_eager(generator, targets, monkeypatch) -> None:
    _patch_compiled(monkeypatch, lambda eager: (lambda *args: _FailingBackward.apply(eager(*args))))
    warnings: list[str] = []
    loss = ReconstructionLoss(perceptual_weight=0.0)
    compiled = invert(generator, targets[:1], Identity(), loss, _settings(), seeds=[3],
                      options=_compile_options(), warn=warnings.append)
    eager = invert(generator, targets[:1], Identity(), loss, _settings(), seeds=[3])
    assert torch.equal(compiled.images, eager.images)
    assert len(warnings) == 1 and "running eagerly" in warnings[0]


def test_out_of_memory_is_not_taken_for_a_compile_failure(generator, targets, monkeypatch) -> None:
    def compiled_factory(eager):
        def compiled(*args):
            try:
                raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
            except torch.OutOfMemoryError as exc:  # as torch.compile re-raises it, wrapped
                raise RuntimeError("backend compiler failed") from exc
        return compiled

    _patch_compiled(monkeypatch, compiled_factory)
    warnings: list[str] = []
    with pytest.raises(RuntimeError, match="backend compiler failed") as raised:
        invert(generator, targets[:1], Identity(), ReconstructionLoss(0.0), _settings(), seeds=[3],
               options=_compile_options(), warn=warnings.append)
    assert isinstance(raised.value.__cause__, torch.OutOfMemoryError) and warnings == []


class _StaticOutput(torch.autograd.Function):
    """Returns its input copied into one buffer that every call overwrites, as a CUDA graph replay does."""

    buffer: torch.Tensor | None = None

    @staticmethod
    def forward(ctx, x):
        if _StaticOutput.buffer is None or _StaticOutput.buffer.shape != x.shape:
            _StaticOutput.buffer = torch.empty_like(x)
        return _StaticOutput.buffer.copy_(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


def test_early_stopping_holds_no_reference_to_a_step_output(generator, targets, monkeypatch) -> None:
    """``--compile reduce-overhead``: the next replay overwrites a step's output; early stopping compares
    against the loss of the last check, which therefore has to be a copy (else every image 'stops')."""
    _patch_compiled(monkeypatch, lambda eager: (lambda *args: _StaticOutput.apply(eager(*args))))
    settings = _settings(iterations=20, schedule="constant", early_stop_window=5, early_stop_tolerance=1e-4)
    loss = ReconstructionLoss(perceptual_weight=0.0)
    plain = invert(generator, targets[:2], Identity(), loss, settings, seeds=[0, 1])
    graphs = invert(generator, targets[:2], Identity(), loss, settings, seeds=[0, 1], options=_compile_options())
    assert plain.steps.tolist() == [20, 20]  # nothing stops early in the plain run
    assert graphs.steps.tolist() == plain.steps.tolist()
    assert torch.equal(graphs.images, plain.images)


def _fp16_options():
    from mgan_cli.core.engine import EngineOptions

    return EngineOptions(precision="fp16")


def test_fp16_overflow_of_one_image_skips_only_its_steps(generator, targets) -> None:
    """An image whose float16 gradient overflows (a target far outside [-1, 1]) does not hold back the
    others: image 0 ends (nearly: the loss scale is shared, see the engine's docstring) as it does alone."""
    loss = ReconstructionLoss(perceptual_weight=0.0)
    wild = targets[1:2] * 0 + 1e4
    settings = _settings(iterations=6)
    together = invert(generator, torch.cat([targets[:1], wild]), Identity(), loss, settings, seeds=[1, 2],
                      options=_fp16_options())
    alone = invert(generator, targets[:1], Identity(), loss, settings, seeds=[1], options=_fp16_options())
    assert together.overflow_skips.tolist()[0] == 0 and together.overflow_skips.tolist()[1] >= 2
    assert alone.overflow_skips.tolist() == [0]
    assert result_moved_from(alone, generator, settings, [1])
    assert (together.images[0] - alone.images[0]).abs().max() < 2e-3
    assert together.diverged_at.tolist() == [-1, -1]


def test_a_nonfinite_loss_under_fp16_blames_float16_not_the_learning_rate() -> None:
    from mgan_cli.core.engine import nonfinite_reason

    assert "lower --lr" in nonfinite_reason(7, "fp32") and "step 7" in nonfinite_reason(7, "bf16")
    fp16 = nonfinite_reason(7, "fp16")
    assert "float16" in fp16 and "--precision bf16" in fp16 and "--lr" not in fp16


def test_adam_is_fused_on_cuda_only() -> None:
    from mgan_cli.core.engine import make_optimizer

    params = [{"params": [torch.zeros(2, 3, requires_grad=True)]}]
    assert make_optimizer("adam", params, 0.1, torch.device("cuda")).defaults["fused"] is True
    assert not make_optimizer("adam", params, 0.1, torch.device("cpu")).defaults["fused"]
    assert isinstance(make_optimizer("sgd", params, 0.1, torch.device("cuda")), torch.optim.SGD)


def test_bf16_support_is_asked_of_the_run_device(monkeypatch) -> None:
    """``precision auto`` on ``cuda:1`` asks GPU 1 (``is_bf16_supported`` answers for the current device)."""
    from contextlib import contextmanager

    from mgan_cli.core.engine import EngineOptions

    current = [torch.device("cuda", 0)]

    @contextmanager
    def use_device(device):
        previous, current[0] = current[0], torch.device(device)
        yield
        current[0] = previous

    monkeypatch.setattr(torch.cuda, "device", use_device)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                        lambda including_emulation=True: current[0].index == 1 and not including_emulation)
    assert EngineOptions.for_device(torch.device("cuda", 1)).precision == "bf16"
    assert EngineOptions.for_device(torch.device("cuda", 0)).precision == "fp32"
