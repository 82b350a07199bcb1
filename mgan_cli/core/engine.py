"""The multi-code inversion engine: optimise N codes and their channel importances per image.

For a batch of B observed images ``y`` ``[B, 3, r, r]`` in [-1, 1] (r = the degradation's observed size),
the engine keeps, per image, N codes ``[B, N, *code_shape]`` and importances α ``[B, N, C]``. Each step
renders all B·N codes through the generator's lower part in one pass, composes the feature maps per
image (:func:`mgan_cli.core.composition.compose`), renders the upper part, applies the task's degradation A
and minimises ``Σ_b L(A(x̂_b), y_b)``. Images never interact: each one's loss depends only on its own
parameters, and the optimisers (Adam, SGD) are element-wise, so a batch gives the same result as
running the images one by one. The generator's weights never receive gradients.

**Where "a batch = one image at a time" does not hold exactly (fp16).** Under ``precision="fp16"`` the
backward pass runs with one loss scale shared by the batch (:class:`RowLossScaler`). A gradient that
overflows float16 skips the optimiser step of *that image only* (its codes and Adam moments are restored;
the others step normally), but (a) the shared scale is halved for every image, which changes the rounding
of the other images' float16 gradients (not their step), and (b) Adam's step counter is one per parameter
tensor, so the skipping image's bias correction afterwards counts the skipped step. With bf16, fp32 and
with fp16 steps that do not overflow, the promise holds. A loss that is already non-finite in the forward
pass under fp16 is a float16 overflow of the generator's activations (not a learning rate that is too
high): :func:`nonfinite_reason` says which.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from mgan_cli.core.composition import COMPOSITIONS, compose, initial_alphas
from mgan_cli.core.degradations import Degradation
from mgan_cli.core.losses import ReconstructionLoss
from mgan_cli.errors import ConfigurationError
from mgan_cli.generators.base import Generator
from mgan_cli.utils.registry import Registry
from mgan_cli.utils.settings_schema import ValueSpec, check_fields, setting
from mgan_cli.utils.shapes import check_shape

#: optimisers by name: ``OPTIMIZERS.get(name)(param_groups, lr=...)``
OPTIMIZERS: Registry[type[torch.optim.Optimizer]] = Registry("optimizer")
OPTIMIZERS.register("adam")(torch.optim.Adam)
OPTIMIZERS.register("sgd")(torch.optim.SGD)


def make_optimizer(name: str, groups: list[dict], lr: float, device: torch.device) -> torch.optim.Optimizer:
    """The optimiser ``name`` over ``groups``; Adam on CUDA is the fused (one-kernel) implementation, which
    computes the same element-wise update as the default one."""
    kind = OPTIMIZERS.get(name)
    if kind is torch.optim.Adam and device.type == "cuda":
        return kind(groups, lr=lr, fused=True)
    return kind(groups, lr=lr)

#: learning-rate schedules by name: ``SCHEDULES.get(name)(t)`` is the multiplier at progress ``t`` in [0, 1)
SCHEDULES: Registry[Callable[[float], float]] = Registry("learning-rate schedule")


@SCHEDULES.register("constant")
def constant_schedule(progress: float) -> float:
    """The base rate throughout."""
    return 1.0


@SCHEDULES.register("cosine")
def cosine_schedule(progress: float) -> float:
    """Half a cosine from the base rate down to 0 at the end of the run."""
    return 0.5 * (1.0 + math.cos(math.pi * progress))

#: every latent space some generator has (each generator says which of these it has: ``latent_spaces``)
LATENT_SPACES = ("z", "w", "w+")
#: bounds of the settings whose size is memory or time: N codes per image (the paper uses up to 30), steps; and
#: the step size, which must stay a float32 (1e308 overflows in the optimiser; up to 1e30 a divergence is
#: detected and fails the image)
MAX_CODES = 1024
MAX_ITERATIONS = 1_000_000
MAX_LR = 1e30


#: how codes start: ``random`` (seeded draws), ``encoder`` (a warm start handed in as ``initial_codes``), or
#: ``auto`` (the encoder where one is trained for the generator, else random: resolved before the engine runs, by
#: :func:`mgan_cli.encoder.resolve_start`)
INITS = ("auto", "random", "encoder")


@dataclass(frozen=True)
class InversionSettings:
    """Everything the optimisation needs besides the data (one-to-one with a preset's ``inversion`` block).

    codes: N, the number of latent codes per image. layer: ℓ, the composing layer (from 1).
    space: the latent space codes live in (``z`` for DCGAN/PGGAN; ``z``/``w``/``w+`` for StyleGANs).
    composition: ``sum`` or ``mean`` (see :mod:`mgan_cli.core.composition`).
    iterations, optimizer (``adam``/``sgd``), lr: the optimisation. schedule: ``constant`` or ``cosine``
    (decay to 0 over the run after a linear warm-up over ``warmup`` × iterations steps).
    early_stop_window, early_stop_tolerance: every ``window`` steps (0 = never), an image whose loss fell by
    less than ``tolerance`` × its value since the last check stops early.
    alpha_lr: learning rate of the importances α; ``None`` (default) means ``lr / codes``, so that with
    Adam, whose steps are about ``lr`` in size whatever the gradient's scale, α moves by amounts relative
    to its 1/N starting value (the codes, ~N(0, 1), move by ``lr``). The reference uses one rate for both.
    """

    codes: int = setting(20, ValueSpec("int", minimum=1, maximum=MAX_CODES), "Number of latent codes N per image.")
    layer: int = setting(2, ValueSpec("int", minimum=1, maximum=128), "Composing layer ℓ (see `mgan presets show`).")
    space: str = setting("z", ValueSpec("choice", choices=LATENT_SPACES))
    composition: str = setting("sum", ValueSpec("choice", choices=COMPOSITIONS))
    iterations: int = setting(500, ValueSpec("int", minimum=0, maximum=MAX_ITERATIONS), "Optimisation steps per image.")
    optimizer: str = setting("adam", ValueSpec("choice", choices=tuple(OPTIMIZERS.names())), "Optimiser.")
    lr: float = setting(0.05, ValueSpec("float", minimum=0, maximum=MAX_LR, min_open=True), "Learning rate.")
    schedule: str = setting("cosine", ValueSpec("choice", choices=tuple(SCHEDULES.names())))
    warmup: float = setting(0.0, ValueSpec("float", minimum=0, maximum=1, max_open=True))
    alpha_lr: float | None = setting(None, ValueSpec("float", minimum=0, maximum=MAX_LR, min_open=True,
                                                     nullable=True))
    early_stop_window: int = setting(0, ValueSpec("int", minimum=0, maximum=MAX_ITERATIONS))
    early_stop_tolerance: float = setting(1e-3, ValueSpec("float", minimum=0, maximum=1e6))
    init: str = setting("random", ValueSpec("choice", choices=INITS),
                        "How each image's codes start: random (seeded), or encoder (a warm start predicted by the "
                        "generator's encoder, `mgan encoder train`; the caller passes it as initial_codes), or auto "
                        "(encoder where one is trained, else random).")
    init_noise: float = setting(0.5, ValueSpec("float", minimum=0, maximum=10),
                                "Encoder start: scale of each code's seeded random draw around the prediction.")
    encoder_iterations: int | None = setting(
        None, ValueSpec("int", minimum=0, maximum=MAX_ITERATIONS, nullable=True),
        "Iterations when the codes start from the encoder (null: iterations; an --iterations flag wins).")
    encoder_tune_steps: int | None = setting(
        None, ValueSpec("int", minimum=0, maximum=MAX_ITERATIONS, nullable=True),
        "Pivotal-tuning steps above the layer ℓ after an encoder-start inversion (null: none; a --tune-generator "
        "flag wins).")

    def __post_init__(self) -> None:
        check_fields(self)


def check_settings(generator: Generator, settings: InversionSettings) -> None:
    """Raise :class:`ConfigurationError` unless ``generator`` has ``settings.layer`` and ``settings.space``
    (the checks that need the generator; call before any work, so a bad setting costs nothing)."""
    generator.layer(settings.layer)
    if settings.space not in generator.latent_spaces:
        raise ConfigurationError(f"space: {settings.space!r} is not allowed for {type(generator).__name__}: "
                                 f"must be one of {', '.join(generator.latent_spaces)}")


def lr_factor(step: int, total: int, schedule: str, warmup: float) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based) of ``total``.

    >>> lr_factor(0, 100, "constant", 0.0), lr_factor(50, 100, "cosine", 0.0)
    (1.0, 0.5)
    """
    if total <= 0:
        return 1.0
    warm_steps = int(warmup * total)
    ramp = min(1.0, (step + 1) / warm_steps) if warm_steps else 1.0
    return ramp * SCHEDULES.get(schedule)(step / total)


@dataclass
class InversionResult:
    """Per image: the restored x̂ ``[B, 3, R, R]`` (unclamped, ~[-1, 1]), the final loss ``[B]``, the
    optimised codes ``[B, N, *code_shape]``, importances ``[B, N, C]`` and upper latent (or ``None``)."""

    images: torch.Tensor
    losses: torch.Tensor
    codes: torch.Tensor
    alphas: torch.Tensor
    upper_latent: torch.Tensor | None
    steps: torch.Tensor | None = None  # [B] optimisation steps each image took (fewer if it stopped early)
    diverged_at: torch.Tensor | None = None  # [B] first step whose loss was not finite, -1 where none was
    overflow_skips: torch.Tensor | None = None  # fp16: [B] steps skipped because that image's gradient overflowed


#: ``progress(step, losses)`` is called every few steps with the steps done and the per-image losses.
ProgressCallback = Callable[[int, torch.Tensor], None]


class MultiCodeModel(torch.nn.Module):
    """Renders B images from their N codes each: lower part (all B·N codes at once), compose, upper part."""

    def __init__(self, generator: Generator, layer: int, space: str, composition: str) -> None:
        super().__init__()
        self.lower, self.upper = generator.split(layer, space)
        self.composition = composition

    def forward(self, codes: torch.Tensor, alphas: torch.Tensor,
                upper_latent: torch.Tensor | None = None) -> torch.Tensor:
        batch, count = codes.shape[:2]
        features = self.lower(codes.flatten(0, 1))
        features = features.unflatten(0, (batch, count))
        return self.upper(compose(features, alphas, self.composition), upper_latent)


def initial_state(generator: Generator, settings: InversionSettings, seeds: Sequence[int],
                  device: torch.device, initial_codes: torch.Tensor | None = None,
                  initial_upper: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Seeded starting codes, α = 1/N and upper latents; image b's values depend only on ``seeds[b]``.

    A warm start (e.g. :func:`mgan_cli.encoder.encoder_initial_state`) replaces the seeded codes with
    ``initial_codes`` ``[B, N, *code_shape]`` and/or the upper latents with ``initial_upper``
    ``[B, *upper_latent_shape]`` (``ValueError`` for another shape, or an upper latent the generator does not read).
    """
    channels = generator.layer(settings.layer).shape[0]
    codes, uppers = [], []
    for seed in seeds:
        rng = torch.Generator().manual_seed(int(seed))
        codes.append(generator.sample_codes(settings.codes, rng, settings.space))
        uppers.append(generator.initial_upper_latent(settings.layer, 1, rng))
    code_tensor = torch.stack(codes).to(device)
    alphas = initial_alphas(len(seeds), settings.codes, channels, device)
    upper = torch.cat(uppers).to(device) if uppers and uppers[0] is not None else None
    if initial_codes is not None:
        check_shape(initial_codes, " ".join(map(str, code_tensor.shape)), "initial_codes")
        code_tensor = initial_codes.detach().to(device, code_tensor.dtype).clone()
    if initial_upper is not None:
        if upper is None:
            raise ValueError(f"initial_upper given, but {type(generator).__name__} reads no upper latent")
        check_shape(initial_upper, " ".join(map(str, upper.shape)), "initial_upper")
        upper = initial_upper.detach().to(device, upper.dtype).clone()
    return code_tensor, alphas, upper


PRECISIONS = ("fp32", "bf16", "fp16")
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")


@dataclass(frozen=True)
class EngineOptions:
    """How to run the optimisation (speed only; the mathematics are the preset's).

    precision: ``fp32``, or ``bf16``/``fp16`` autocast of the generator and VGG (codes, importances, the
    loss and the optimiser state stay fp32; fp16 uses a gradient scaler). channels_last: NHWC memory
    layout for the convolutions (faster on tensor-core GPUs). compile: ``torch.compile`` mode of the
    render-and-loss function (``reduce-overhead`` also captures CUDA graphs); if compilation fails the
    engine warns once and runs eagerly.
    """

    precision: str = "fp32"
    channels_last: bool = False
    compile: str = "off"
    #: on CUDA: let cuDNN time its convolution algorithms once per shape (the shapes of a run are fixed but
    #: for the batch shrinking when images stop early)
    cudnn_benchmark: bool = True

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigurationError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.compile not in COMPILE_MODES:
            raise ConfigurationError(f"--compile must be one of {', '.join(COMPILE_MODES)}, got {self.compile!r}")

    @staticmethod
    def for_device(device: torch.device, precision: str = "auto", compile_mode: str = "off",
                   channels_last: bool | None = None) -> EngineOptions:
        """``auto`` precision is bf16 on CUDA devices that support it and on CPUs with native bf16 (AVX512-BF16,
        AMX), fp32 elsewhere; channels-last is on by default everywhere (NHWC convolutions are faster with cuDNN
        and with oneDNN on CPUs). Measured on a 2-core AVX512-BF16 CPU, DCGAN-64 with VGG at 256²: NHWC made
        a step 1.6× faster, bf16 another 2.3×, with the same PSNR to 0.001 dB after 50 steps."""
        cuda = device.type == "cuda"
        if precision == "auto":
            native = cuda_has_native_bf16(device) if cuda else cpu_has_native_bf16()
            precision = "bf16" if native else "fp32"
        if precision == "fp16" and not cuda:
            raise ConfigurationError("--precision fp16 needs a CUDA device (use bf16 or fp32 on CPU)")
        return EngineOptions(precision, True if channels_last is None else channels_last, compile_mode)


_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def cuda_has_native_bf16(device: torch.device) -> bool:
    """Whether CUDA ``device`` (not whichever device is current) computes bf16 natively (Ampere and later;
    emulated bf16 on older GPUs is slower than fp32)."""
    with torch.cuda.device(device):
        return torch.cuda.is_bf16_supported(including_emulation=False)


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX512-BF16 or AMX), where bf16 autocast pays off."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _caused_by_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is, or was raised from, an out-of-memory error (torch.compile wraps errors)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, torch.OutOfMemoryError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


class _Stepper:
    """Renders, degrades and scores the active images and back-propagates; optionally compiled, with an
    eager fallback.

    :meth:`forward_backward` is the one place the compiled function runs: its forward pass *and* its
    backward pass (compiled lazily, at the first backward) are inside the fallback's ``try``, so a failure
    of either switches to eager mode and redoes the step. An out-of-memory error is never a compile
    failure: it propagates (the caller halves the batch). The per-image losses it returns are a copy, never
    a compiled function's output buffer (CUDA graphs overwrite those at the next replay).
    """

    def __init__(self, model: MultiCodeModel, degradation: Degradation, loss: ReconstructionLoss,
                 options: EngineOptions, device: torch.device, warn: Callable[[str], None] | None) -> None:
        self.model, self.degradation, self.loss = model, degradation, loss
        self.device_type = device.type
        self.autocast_dtype = _AUTOCAST_DTYPES.get(options.precision)
        self.channels_last = options.channels_last
        self.warn = warn
        self.cuda_graphs = options.compile == "reduce-overhead"
        self.compiled: Callable[..., torch.Tensor] | None = None
        if options.compile != "off":
            self.compiled = torch.compile(self.eager, mode=None if options.compile == "default" else options.compile,
                                          dynamic=True)

    def eager(self, codes: torch.Tensor, alphas: torch.Tensor, upper: torch.Tensor | None, observed: torch.Tensor,
              mask: torch.Tensor | None, target_features: torch.Tensor | None) -> torch.Tensor:
        with torch.autocast(self.device_type, dtype=self.autocast_dtype or torch.float32,
                            enabled=self.autocast_dtype is not None):
            images = self.model(codes, alphas, upper)
            if self.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            return self.loss(self.degradation(images.float(), mask), observed, target_features).float()

    def forward_backward(self, args: tuple[torch.Tensor | None, ...], params: Sequence[torch.Tensor],
                         loss_scale: float | None = None) -> torch.Tensor:
        """Per-image losses ``[B]`` (a detached copy); the gradient of their sum (× ``loss_scale``) is in
        ``params``' ``.grad`` (which this sets afresh)."""
        if self.compiled is not None:
            try:
                if self.cuda_graphs:
                    torch.compiler.cudagraph_mark_step_begin()
                return self._run(self.compiled, args, params, loss_scale)
            except Exception as exc:  # torch.compile raises many kinds of errors; eager always works
                if _caused_by_out_of_memory(exc):
                    raise
                if self.warn is not None:
                    self.warn(f"torch.compile failed ({exc.__class__.__name__}); running eagerly")
                self.compiled = None
        return self._run(self.eager, args, params, loss_scale)

    @staticmethod
    def _run(function: Callable[..., torch.Tensor], args: tuple[torch.Tensor | None, ...],
             params: Sequence[torch.Tensor], loss_scale: float | None) -> torch.Tensor:
        for param in params:
            param.grad = None
        per_image = function(*args)
        total = per_image.sum()
        (total if loss_scale is None else total * loss_scale).backward()
        return per_image.detach().clone()


class RowLossScaler:
    """fp16 loss scaling that skips the step of each overflowing image only (see the module docstring).

    The policy of ``torch.amp.GradScaler`` (start 2¹⁶, halve on overflow, double after 2000 clean steps),
    with the overflow decided per image (row): the rows whose unscaled gradient is not finite get a zero
    gradient and, after the optimiser's step, their parameters and optimiser state back.
    """

    def __init__(self, scale: float = 2.0**16, growth_interval: int = 2000) -> None:
        self.scale, self.growth_interval, self.clean_steps = scale, growth_interval, 0

    def step(self, optimizer: torch.optim.Optimizer, params: Sequence[torch.Tensor]) -> torch.Tensor:
        """Unscale, step every row whose gradient is finite; the ``[B]`` mask of rows that overflowed."""
        overflow = torch.zeros(params[0].shape[0], dtype=torch.bool, device=params[0].device)
        for param in params:
            if param.grad is not None:
                param.grad.div_(self.scale)
                overflow |= ~torch.isfinite(param.grad).flatten(1).all(dim=1)
        if not bool(overflow.any()):  # one sync per step, as GradScaler's
            optimizer.step()
            self.clean_steps += 1
            if self.clean_steps >= self.growth_interval:
                self.scale, self.clean_steps = self.scale * 2.0, 0
            return overflow
        rows = overflow.nonzero().flatten()
        saved = []
        for param in params:
            if param.grad is not None:
                param.grad[rows] = 0.0
            state = optimizer.state.get(param, {})
            saved.append((param.detach()[rows].clone(),
                           {k: v[rows].clone() for k, v in state.items() if torch.is_tensor(v) and v.dim() > 0}))
        optimizer.step()
        with torch.no_grad():
            for param, (values, state) in zip(params, saved, strict=True):
                param[rows] = values
                for key, value in state.items():
                    optimizer.state[param][key][rows] = value
        self.scale, self.clean_steps = self.scale / 2.0, 0
        return overflow


def nonfinite_reason(step: int, precision: str) -> str:
    """Why an image's loss became inf/NaN at ``step``: under fp16 a float16 overflow of the generator's
    activations (a learning rate is not to blame), otherwise a divergence."""
    if precision == "fp16":
        return (f"the loss overflowed float16 at step {step} (activations beyond ±65504); "
                "use --precision bf16 or fp32")
    return f"the optimisation diverged at step {step}; lower --lr"


def _keep_rows(optimizer: torch.optim.Optimizer, keep: torch.Tensor) -> list[torch.Tensor]:
    """Shrink every parameter (first dimension = image) and its optimiser state to the rows in ``keep``."""
    kept = []
    for group in optimizer.param_groups:
        new_params = []
        for param in group["params"]:
            new = param.detach()[keep].clone().requires_grad_()
            state = optimizer.state.pop(param, {})
            optimizer.state[new] = {k: (v[keep].clone() if torch.is_tensor(v) and v.dim() > 0 else v)
                                    for k, v in state.items()}
            new_params.append(new)
            kept.append(new)
        group["params"] = new_params
    return kept


def invert(
    generator: Generator,
    observed: torch.Tensor,
    degradation: Degradation,
    loss: ReconstructionLoss,
    settings: InversionSettings,
    seeds: Sequence[int],
    *,
    mask: torch.Tensor | None = None,
    progress: ProgressCallback | None = None,
    progress_every: int = 10,
    options: EngineOptions | None = None,
    warn: Callable[[str], None] | None = None,
    initial_codes: torch.Tensor | None = None,
    initial_upper: torch.Tensor | None = None,
) -> InversionResult:
    """Restore ``observed`` ``[B, 3, r, r]`` in [-1, 1] with the multi-code prior (see the module docstring).

    ``mask`` ``[B, 1, R, R]`` (1 = missing) is passed to the degradation; ``seeds`` (one per image)
    make the initial codes reproducible and independent of how images are batched. With
    ``settings.early_stop_window`` > 0, an image whose loss improved by less than
    ``early_stop_tolerance`` (relative) over the last window stops there, and the batch shrinks.
    An image whose loss becomes inf or NaN (a learning rate far too high; under fp16 a float16 overflow, see
    :func:`nonfinite_reason`) is taken out of the batch at the next check (with ``progress``: every
    ``progress_every`` steps; always at the last step; every step under fp16) and its first non-finite step
    is reported in ``diverged_at``; the others go on, unaffected (rows never interact). Under fp16 a
    gradient overflow skips only that image's step (``overflow_skips``; see the module docstring).
    ``initial_codes`` / ``initial_upper``: a warm start instead of the seeded codes / upper latents (see
    :func:`initial_state`). ``settings.init == "encoder"`` requires ``initial_codes``; ``auto`` without them is
    the random start (the file pipeline and :class:`mgan_cli.api.Restorer` resolve it first:
    :func:`mgan_cli.encoder.resolve_start`).
    """
    batch = check_shape(observed, "B 3 H W", "observed")["B"]
    if settings.init == "encoder" and initial_codes is None:
        raise ConfigurationError("init 'encoder' needs the warm start as initial_codes "
                                 "(mgan_cli.encoder.encoder_initial_state)")
    if mask is not None:
        check_shape(mask, "B 1 R R", "mask", B=batch, R=generator.resolution)
    if len(seeds) != batch:
        raise ValueError(f"need one seed per image: {len(seeds)} seeds for {batch} images")
    options = options or EngineOptions()
    device = observed.device
    model = MultiCodeModel(generator, settings.layer, settings.space, settings.composition)
    if options.channels_last:
        model = model.to(memory_format=torch.channels_last)
        loss = loss.to(memory_format=torch.channels_last)
    stepper = _Stepper(model, degradation, loss, options, device, warn)
    codes, alphas, upper = initial_state(generator, settings, seeds, device, initial_codes, initial_upper)
    final_codes, final_alphas = codes.clone(), alphas.clone()
    final_upper = None if upper is None else upper.clone()
    steps = torch.full((observed.shape[0],), settings.iterations, dtype=torch.long)
    diverged_at = torch.full((observed.shape[0],), -1, dtype=torch.long)

    alpha_lr = settings.alpha_lr if settings.alpha_lr is not None else settings.lr / settings.codes
    groups = [{"params": [codes.requires_grad_()], "base_lr": settings.lr},
              {"params": [alphas.requires_grad_()], "base_lr": alpha_lr}]
    if upper is not None:
        groups.append({"params": [upper.requires_grad_()], "base_lr": settings.lr})
    optimizer = make_optimizer(settings.optimizer, groups, settings.lr, device)
    scaler = RowLossScaler() if options.precision == "fp16" else None
    if device.type == "cuda" and options.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True  # main thread, before any convolution of this run

    active = torch.arange(observed.shape[0], device=device)
    active_observed, active_mask = observed, mask
    with torch.no_grad():
        target_features = loss.prepare(observed)
    active_targets = target_features
    last_check: torch.Tensor | None = None

    def store(rows: torch.Tensor, params: list[torch.Tensor]) -> None:
        final_codes[active[rows]] = params[0].detach()[rows]
        final_alphas[active[rows]] = params[1].detach()[rows]
        if final_upper is not None:
            final_upper[active[rows]] = params[2].detach()[rows]

    params = [g["params"][0] for g in optimizer.param_groups]
    bad_since = torch.full((observed.shape[0],), -1, dtype=torch.long, device=device)  # per active row

    def keep_only(keep: torch.Tensor) -> None:
        nonlocal params, active, active_observed, active_mask, active_targets, bad_since, last_check
        params = _keep_rows(optimizer, keep)
        active, bad_since = active[keep], bad_since[keep]
        active_observed = active_observed[keep]
        active_mask = None if active_mask is None else active_mask[keep]
        active_targets = None if active_targets is None else active_targets[keep]
        last_check = None if last_check is None else last_check[keep]

    def retire(leaving: torch.Tensor) -> torch.Tensor | None:
        """Take the active rows where ``leaving`` is true out of the batch: the kept rows' indices, or
        ``None`` when no row is left."""
        nonlocal active
        keep = (~leaving).nonzero().flatten()
        if keep.numel() == 0:
            active = active[:0]
            return None
        keep_only(keep)
        return keep

    # divergence checks cost a device sync: every step under fp16's scaler (which syncs anyway), with the
    # progress callback (which syncs anyway), else only at the end
    overflowed = torch.zeros(observed.shape[0], dtype=torch.long)  # fp16: skipped steps per image
    check_every = 1 if scaler is not None else max(1, progress_every) if progress is not None \
        else max(1, settings.iterations)
    for step in range(settings.iterations):
        factor = lr_factor(step, settings.iterations, settings.schedule, settings.warmup)
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * factor
        upper_param = params[2] if len(params) > 2 else None
        per_image = stepper.forward_backward(
            (params[0], params[1], upper_param, active_observed, active_mask, active_targets), params,
            None if scaler is None else scaler.scale)
        bad_since = torch.where((bad_since < 0) & ~torch.isfinite(per_image), step + 1, bad_since)
        if scaler is not None:
            skipped = scaler.step(optimizer, params)
            overflowed[active[skipped].cpu()] += 1
        else:
            optimizer.step()
        done = step + 1
        if progress is not None and (done % progress_every == 0 or done == settings.iterations):
            progress(done, per_image)
        if done % check_every == 0 or done == settings.iterations:
            diverged = bad_since >= 0
            if bool(diverged.any()):  # take them out: rows are independent, the others go on
                diverged_at[active[diverged].cpu()] = bad_since[diverged].cpu()
                steps[active[diverged].cpu()] = bad_since[diverged].cpu()
                kept = retire(diverged)
                if kept is None:
                    break
                per_image = per_image[kept]
        window = settings.early_stop_window
        if window and done % window == 0 and done < settings.iterations:
            current = per_image  # a copy (see _Stepper): a CUDA graph replay cannot overwrite it
            if last_check is not None:
                stopped = (last_check - current) <= settings.early_stop_tolerance * last_check.abs()
                if stopped.any():
                    store(stopped.nonzero().flatten(), params)
                    steps[active[stopped].cpu()] = done
                    kept = retire(stopped)
                    if kept is None:
                        break
                    current = current[kept]
            last_check = current
    if active.numel():
        store(torch.arange(active.numel(), device=params[0].device), params)
    with torch.no_grad():
        images = model(final_codes, final_alphas, final_upper).float()
        final = loss(degradation(images, mask), observed, target_features)
    return InversionResult(images=images, losses=final, codes=final_codes, alphas=final_alphas,
                           upper_latent=final_upper, steps=steps, diverged_at=diverged_at,
                           overflow_skips=overflowed if scaler is not None else None)
