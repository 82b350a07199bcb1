"""Measure mgan's engine against the reference loop (:mod:`bench.reference_loop`) on the same inputs.

For one :class:`BenchConfig` (a generator, its composing layer ℓ, N codes, targets) :func:`run_config`
runs, in this process and on one device:

* ``reference``: the reference's loop, one image at a time, fp32, SGD lr 1, mean composition;
* ``reference as shipped``: the same plus the shipped script's per-step ``copy.deepcopy`` of the latents
  (first image only: it costs the same per step whatever the image);
* ``mgan same maths``: mgan's engine with the reference's settings (SGD lr 1 for codes and α, mean
  composition, constant lr; mgan's memory layout and automatic precision, i.e. bf16 autocast where the
  device multiplies bf16 natively), all images in one batch — batching does not change the maths, so the
  per-image PSNR must agree with the reference's (within 0.1 dB with bf16);
* ``mgan default``: mgan's preset (Adam + cosine, ``sum`` composition; bf16 + channels-last on CUDA)
  with its cosine schedule spread over the same number of steps, recording the PSNR of the estimate every
  ``k`` steps (an identity wrapper keeps the last rendered batch; the progress callback scores it), which
  gives the steps it needs to reach the reference's final PSNR in a single run.

Each side is warmed up (``warmup`` steps on the same inputs, untimed) and then timed end to end (setup,
``iterations`` steps, final render); seconds per step = time / iterations. Peak memory: CUDA
``max_memory_allocated`` (absolute, weights included); CPU: the peak resident set size sampled every
5 ms from ``/proc/self/statm`` during the timed run, minus the resident size before it, measured right
after glibc's ``malloc_trim(0)`` has returned the allocator's cached free memory to the OS (a sampled
approximation of the working memory; ``ru_maxrss`` deltas where ``/proc`` is missing, which only see new
process-wide highs).
FLOPs: one real step counted by :func:`bench.flops.count_flops`, per image.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import resource
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from bench.flops import Peak, count_flops, device_peak
from bench.reference_loop import ReferenceLoop
from mgan_cli.config.presets import LossSettings, load_preset
from mgan_cli.core.degradations import Degradation, Identity
from mgan_cli.core.engine import EngineOptions, InversionSettings, MultiCodeModel, initial_state, invert
from mgan_cli.core.losses import ReconstructionLoss
from mgan_cli.generators import ARCHITECTURES, Generator
from mgan_cli.metrics.fidelity import psnr
from mgan_cli.utils.imageio import to_tensor, to_uint8
from mgan_cli.weights.loading import load_generator

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
#: The reference script's defaults (``multi_code_inversion.py``): 3000 SGD steps, VGG input resized to 256.
REFERENCE_ITERATIONS = 3000
REFERENCE_LOSS = LossSettings(perceptual_weight=1.0, vgg_layer=16, perceptual_resolution=256, distance="l1")
#: Seeds of the hidden codes that render in-domain targets (disjoint from the inversion seeds 0, 1, ...).
TARGET_SEED = 10_000


@dataclass(frozen=True)
class BenchConfig:
    """One benchmark configuration.

    weights: a registry entry with real weights, or ``None`` for a random ``architecture(**arch_config)``
    (channel widths scaled by ``--width-scale``). reference_preset: the preset holding the reference's
    settings (``None``: the reference script's defaults, :data:`REFERENCE_ITERATIONS` and
    :data:`REFERENCE_LOSS`); layer/space/codes are the reference's and ``mgan_preset``'s own are used for
    mgan's defaults. gpu_sized: skipped on the CPU unless named.
    """

    name: str
    mgan_preset: str
    layer: int
    space: str = "z"
    codes: int = 20
    weights: str | None = None
    architecture: str | None = None
    arch_config: dict[str, Any] = field(default_factory=dict)
    reference_preset: str | None = None
    gpu_sized: bool = True
    notes: str = ""


CONFIGS: dict[str, BenchConfig] = {
    "dcgan64": BenchConfig("dcgan64", "dcgan64-invert", layer=load_preset("dcgan64-invert").inversion.layer,
                           weights="dcgan64-digiface", gpu_sized=False,
                           notes="real DCGAN-64 weights, CelebA photos"),
    "pggan256": BenchConfig("pggan256", "pggan-bedroom256-invert", layer=8, architecture="pggan",
                            arch_config={"resolution": 256}, reference_preset="pggan-bedroom256-invert-reference",
                            notes="random weights, in-domain targets"),
    "pggan1024": BenchConfig("pggan1024", "pggan-celebahq1024-superres", layer=6, architecture="pggan",
                             arch_config={"resolution": 1024},
                             reference_preset="pggan-celebahq1024-superres-reference",
                             notes="random weights, in-domain targets, identity degradation"),
    "stylegan2-1024": BenchConfig("stylegan2-1024", "stylegan2-ffhq1024-invert", layer=7, space="w",
                                  architecture="stylegan2", arch_config={"resolution": 1024},
                                  notes="random weights, in-domain targets; the reference never supported "
                                        "StyleGAN2: its loop with mgan's split (w+ tail optimised too)"),
}
#: Full-size channel defaults of the random architectures (scaled by ``--width-scale``).
_WIDTHS = {"pggan": (16384, 512), "stylegan2": (32768, 512)}


@dataclass
class SideResult:
    """One side's measurements (per-image lists follow the image order)."""

    side: str
    precision: str
    images: int
    iterations: int
    preset_iterations: int
    seconds: float
    peak_memory: int | None
    flops_per_image_step: int | None
    psnr: list[float]
    trajectory: list[tuple[int, float]] = field(default_factory=list)
    peak: Peak | None = None

    @property
    def s_per_step(self) -> float:
        """Seconds per optimisation step of the whole batch (one image for the reference)."""
        return self.seconds / max(self.iterations, 1) / (self.images if self.side.startswith("reference") else 1)

    @property
    def s_per_image_step(self) -> float:
        return self.seconds / max(self.iterations, 1) / self.images

    @property
    def images_per_hour(self) -> float:
        return 3600.0 / (self.s_per_image_step * self.preset_iterations)

    @property
    def achieved_flops(self) -> float | None:
        return None if self.flops_per_image_step is None else self.flops_per_image_step / self.s_per_image_step

    @property
    def peak_fraction(self) -> float | None:
        achieved = self.achieved_flops
        if achieved is None or self.peak is None or not self.peak.flops:
            return None
        return achieved / self.peak.flops

    @property
    def mean_psnr(self) -> float:
        return sum(self.psnr) / len(self.psnr)

    def as_dict(self) -> dict[str, Any]:
        return {"side": self.side, "precision": self.precision, "images": self.images,
                "iterations": self.iterations, "preset_iterations": self.preset_iterations,
                "seconds": self.seconds, "s_per_step": self.s_per_step, "s_per_image_step": self.s_per_image_step,
                "images_per_hour": self.images_per_hour, "peak_memory_bytes": self.peak_memory,
                "flops_per_image_step": self.flops_per_image_step, "achieved_flops": self.achieved_flops,
                "peak_flops": None if self.peak is None else self.peak.flops,
                "peak_fraction": self.peak_fraction, "psnr": self.psnr, "mean_psnr": self.mean_psnr,
                "trajectory": self.trajectory}


@dataclass
class ConfigResult:
    """All sides of one configuration, plus what was run."""

    config: str
    description: str
    sides: dict[str, SideResult]
    steps_to_reference: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"config": self.config, "description": self.description,
                "sides": {k: v.as_dict() for k, v in self.sides.items()},
                "steps_to_reference": self.steps_to_reference}


# --------------------------------------------------------------------------------------------- inputs

def build_generator(config: BenchConfig, device: torch.device, width_scale: float = 1.0) -> tuple[Generator, str]:
    """The frozen generator on ``device`` and a short description of it."""
    if config.weights is not None:
        return load_generator(config.weights).to(device), config.weights
    assert config.architecture is not None
    arch_config = dict(config.arch_config)
    base, top = _WIDTHS[config.architecture]
    if width_scale != 1.0:
        arch_config.update(fmaps_base=max(1, int(base * width_scale)), fmaps_max=max(1, int(top * width_scale)))
    try:
        from bench.in_domain import random_generator  # TF-like init with sane image statistics
        generator = random_generator(config.architecture, arch_config, seed=0)
    except (ImportError, KeyError):
        generator = ARCHITECTURES.get(config.architecture)(**arch_config).freeze()
    described = ", ".join(f"{k}={v}" for k, v in arch_config.items())
    return generator.to(device), f"random {config.architecture}({described})"


def celeba_face(path: Path, size: int) -> Image.Image:
    """The CelebA dataset's framing of an aligned photo: centre square crop, then bicubic resize."""
    image = Image.open(path).convert("RGB")
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BICUBIC)


def build_targets(config: BenchConfig, generator: Generator, count: int, device: torch.device) -> torch.Tensor:
    """``[count, 3, R, R]`` in [-1, 1]: CelebA photos for real weights, else images rendered from hidden codes."""
    if config.weights is not None:
        files = sorted((SHARED / "data" / "celeba64").glob("*.jpg"))
        if not files:
            raise FileNotFoundError(f"no CelebA photos in {SHARED / 'data' / 'celeba64'}")
        faces = [to_tensor(celeba_face(files[i % len(files)], generator.resolution)) for i in range(count)]
        return torch.stack(faces).to(device)
    z = torch.stack([torch.randn(generator.latent_size, generator=torch.Generator().manual_seed(TARGET_SEED + i))
                     for i in range(count)]).to(device)
    with torch.no_grad():
        return generator(z).float().clamp(-1.0, 1.0)


def make_loss(settings: LossSettings, device: torch.device, override_resolution: int | None = None
              ) -> ReconstructionLoss:
    resolution = override_resolution if override_resolution is not None else settings.perceptual_resolution
    return replace(settings, perceptual_resolution=resolution).build().to(device)


def reference_settings(config: BenchConfig) -> tuple[InversionSettings, LossSettings]:
    """The reference's inversion settings (at its iteration count) and loss for ``config``."""
    if config.reference_preset is not None:
        preset = load_preset(config.reference_preset)
        return replace(preset.inversion, layer=config.layer, codes=config.codes, space=config.space), preset.loss
    settings = InversionSettings(codes=config.codes, layer=config.layer, space=config.space, composition="mean",
                                 iterations=REFERENCE_ITERATIONS, optimizer="sgd", lr=1.0, alpha_lr=1.0,
                                 schedule="constant")
    return settings, REFERENCE_LOSS


# ---------------------------------------------------------------------------------------- measurement

def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _trim_heap() -> None:
    """Give the allocator's free memory back to the OS (glibc ``malloc_trim``) so RSS starts from live data."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _rss_bytes() -> int | None:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


class MemoryTracker:
    """Peak memory of a block: CUDA ``max_memory_allocated``; CPU sampled peak RSS − RSS before (bytes)."""

    def __init__(self, device: torch.device, interval: float = 0.005) -> None:
        self.device, self.interval = device, interval
        self.peak: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._base = 0
        self._max = 0
        self._maxrss = 0

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._max = max(self._max, _rss_bytes() or 0)

    def __enter__(self) -> MemoryTracker:
        if self.device.type == "cuda":
            _sync(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return self
        _trim_heap()
        base = _rss_bytes()
        if base is None:
            self._maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        else:
            self._base = self._max = base
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            _sync(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device)
            return
        if self._thread is None:
            self.peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - self._maxrss) * 1024
            return
        self._stop.set()
        self._thread.join()
        self._max = max(self._max, _rss_bytes() or 0)
        self.peak = self._max - self._base


def _psnr_list(images: torch.Tensor, targets: torch.Tensor) -> list[float]:
    return [float(v) for v in psnr(to_uint8(images), to_uint8(targets))]


class _Recorder(Degradation):
    """Applies ``inner`` and keeps the last (detached) batch it saw, for scoring from a progress callback."""

    name = "recorder"

    def __init__(self, inner: Degradation) -> None:
        super().__init__()
        self.inner = inner
        self.last: torch.Tensor | None = None

    def forward(self, images: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        self.last = images.detach()
        return self.inner(images, mask)


def run_reference(generator: Generator, targets: torch.Tensor, loss: ReconstructionLoss,
                  settings: InversionSettings, seeds: Sequence[int], iterations: int, warmup: int,
                  history: bool = False) -> tuple[float, int | None, list[float]]:
    """The reference loop over the images one at a time: (seconds, peak memory, per-image PSNR)."""
    device = targets.device

    def loop(index: int) -> ReferenceLoop:
        return ReferenceLoop(generator, targets[index:index + 1], loss, layer=settings.layer, codes=settings.codes,
                             space=settings.space, lr=settings.lr, seed=seeds[index], history=history)

    if warmup:
        loop(0).run(warmup)
    scores: list[float] = []
    with MemoryTracker(device) as memory:
        _sync(device)
        start = time.perf_counter()
        for index in range(targets.shape[0]):
            result = loop(index).run(iterations)
            scores += _psnr_list(result.image, targets[index:index + 1])
        _sync(device)
        seconds = time.perf_counter() - start
    return seconds, memory.peak, scores


def run_mgan(generator: Generator, targets: torch.Tensor, loss: ReconstructionLoss, settings: InversionSettings,
             seeds: Sequence[int], options: EngineOptions, warmup: int, record_every: int = 0
             ) -> tuple[float, int | None, list[float], list[tuple[int, float]]]:
    """mgan's engine on the whole batch: (seconds, peak memory, per-image PSNR, [(step, mean PSNR)])."""
    device = targets.device
    if warmup:
        invert(generator, targets, Identity(), loss, replace(settings, iterations=warmup), seeds, options=options)
    degradation: Degradation = Identity()
    trajectory: list[tuple[int, float]] = []
    progress: Callable[[int, torch.Tensor], None] | None = None
    if record_every:
        recorder = _Recorder(degradation)
        degradation = recorder

        def progress(done: int, _losses: torch.Tensor) -> None:
            if recorder.last is not None:
                scores = _psnr_list(recorder.last, targets)
                trajectory.append((done, sum(scores) / len(scores)))

    with MemoryTracker(device) as memory:
        _sync(device)
        start = time.perf_counter()
        result = invert(generator, targets, degradation, loss, settings, seeds, options=options, progress=progress,
                        progress_every=max(record_every, 1))
        _sync(device)
        seconds = time.perf_counter() - start
    return seconds, memory.peak, _psnr_list(result.images, targets), trajectory


def reference_step_flops(generator: Generator, targets: torch.Tensor, loss: ReconstructionLoss,
                         settings: InversionSettings) -> int:
    """FLOPs of one reference step on one image (N lower passes, upper, loss with the target's VGG pass)."""
    loop = ReferenceLoop(generator, targets[:1], loss, layer=settings.layer, codes=settings.codes,
                         space=settings.space, lr=settings.lr)
    return count_flops(loop.step)


def mgan_step_flops(generator: Generator, targets: torch.Tensor, loss: ReconstructionLoss,
                    settings: InversionSettings, seeds: Sequence[int]) -> int:
    """FLOPs of one engine step per image: the engine's render (:class:`MultiCodeModel`) and loss, backward."""
    model = MultiCodeModel(generator, settings.layer, settings.space, settings.composition)
    codes, alphas, upper = initial_state(generator, settings, seeds, targets.device)
    params = [codes.requires_grad_(), alphas.requires_grad_()] + ([] if upper is None else [upper.requires_grad_()])
    target_features = loss.prepare(targets)

    def step() -> None:
        loss(model(params[0], params[1], upper), targets, target_features).sum().backward()

    return count_flops(step) // targets.shape[0]


def _restore_layout(*modules: torch.nn.Module) -> None:
    """Undo the engine's in-place channels-last conversion (VGG's modules are shared between losses)."""
    for module in modules:
        module.to(memory_format=torch.contiguous_format)


@dataclass(frozen=True)
class RunOptions:
    """What to run: steps timed per side, batch size, warm-up steps, overrides, which sides."""

    iterations: int = 50
    images: int = 4
    warmup: int = 2
    width_scale: float = 1.0
    perceptual_resolution: int | None = None
    shipped: bool = True
    count_flops: bool = True
    record_points: int = 25
    precision: str = "auto"  # of mgan's sides (EngineOptions.for_device); the reference is always fp32


def run_config(config: BenchConfig, device: torch.device, options: RunOptions, cpu_peak: float | None = None,
               log: Callable[[str], None] = print) -> ConfigResult:
    """Run every side of ``config`` on ``device`` (see the module docstring)."""
    generator, description = build_generator(config, device, options.width_scale)
    targets = build_targets(config, generator, options.images, device)
    seeds = list(range(options.images))
    iterations = options.iterations
    ref_settings, ref_loss_settings = reference_settings(config)
    ref_preset_iterations = ref_settings.iterations
    ref_settings = replace(ref_settings, iterations=iterations)
    ref_loss = make_loss(ref_loss_settings, device, options.perceptual_resolution)
    preset = load_preset(config.mgan_preset)
    mgan_settings = replace(preset.inversion, iterations=iterations)
    mgan_loss = make_loss(preset.loss, device, options.perceptual_resolution)
    same = EngineOptions.for_device(device, options.precision)  # the reference's maths; mgan's layout/precision
    auto = EngineOptions.for_device(device, options.precision)
    sides: dict[str, SideResult] = {}

    def peak(precision: str) -> Peak:
        return device_peak(device, precision, cpu_peak)

    log(f"[{config.name}] {description}: reference loop, {options.images} image(s) × {iterations} steps")
    ref_flops = reference_step_flops(generator, targets, ref_loss, ref_settings) if options.count_flops else None
    seconds, memory, scores = run_reference(generator, targets, ref_loss, ref_settings, seeds, iterations,
                                            options.warmup)
    sides["reference"] = SideResult("reference", "fp32", options.images, iterations, ref_preset_iterations,
                                    seconds, memory, ref_flops, scores, peak=peak("fp32"))
    if options.shipped:
        log(f"[{config.name}] reference as shipped (history deep-copies), 1 image × {iterations} steps")
        seconds, memory, scores = run_reference(generator, targets[:1], ref_loss, ref_settings, seeds[:1],
                                                iterations, 0, history=True)
        sides["reference as shipped"] = SideResult("reference as shipped", "fp32", 1, iterations,
                                                   ref_preset_iterations, seconds, memory, ref_flops, scores,
                                                   peak=peak("fp32"))

    log(f"[{config.name}] mgan, the reference's settings, batch of {options.images}")
    same_flops = mgan_step_flops(generator, targets, ref_loss, ref_settings, seeds) if options.count_flops else None
    seconds, memory, scores, _ = run_mgan(generator, targets, ref_loss, ref_settings, seeds, same, options.warmup)
    sides["mgan same maths"] = SideResult("mgan same maths", same.precision, options.images, iterations,
                                          ref_preset_iterations, seconds, memory, same_flops, scores,
                                          peak=peak(same.precision))

    log(f"[{config.name}] mgan defaults ({config.mgan_preset}, {auto.precision}), batch of {options.images}")
    default_flops = (mgan_step_flops(generator, targets, mgan_loss, mgan_settings, seeds)
                     if options.count_flops else None)
    every = max(1, iterations // max(options.record_points, 1))
    try:
        seconds, memory, scores, trajectory = run_mgan(generator, targets, mgan_loss, mgan_settings, seeds, auto,
                                                       options.warmup, record_every=every)
    finally:
        _restore_layout(generator, mgan_loss, ref_loss)
    sides["mgan default"] = SideResult("mgan default", auto.precision, options.images, iterations,
                                       preset.inversion.iterations, seconds, memory, default_flops, scores,
                                       trajectory, peak=peak(auto.precision))
    goal = sides["reference"].mean_psnr
    reached = next((step for step, value in trajectory if value >= goal), None)
    return ConfigResult(config.name, description, sides, reached)


# ------------------------------------------------------------------------------------------ formatting

def _fmt(value: float | None, spec: str, missing: str = "—") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return missing
    return format(value, spec)


def _memory(value: int | None, device: torch.device) -> str:
    if value is None:
        return "—"
    suffix = "" if device.type == "cuda" else " (+RSS)"
    return f"{value / 2**20:.0f} MiB{suffix}"


SIDE_HEADER = ("| config | side | precision | images | s / step | s / step / image | images / h at preset iters "
               "| peak memory | GFLOP / step / image | achieved TFLOP/s | % of peak | PSNR (dB) |\n"
               "|---|---|---|---|---|---|---|---|---|---|---|---|")
COMPARE_HEADER = ("| config | same maths: max abs ΔPSNR (dB) | same maths speed-up | shipped history cost "
                  "| mgan default PSNR (dB) | steps to reference PSNR | s / image to reference PSNR (ref → mgan) "
                  "| time-to-quality speed-up |\n|---|---|---|---|---|---|---|---|")


def side_rows(result: ConfigResult, device: torch.device) -> list[str]:
    rows = []
    for side in result.sides.values():
        gflop = None if side.flops_per_image_step is None else side.flops_per_image_step / 1e9
        achieved = None if side.achieved_flops is None else side.achieved_flops / 1e12
        fraction = None if side.peak_fraction is None else 100 * side.peak_fraction
        rows.append(f"| {result.config} | {side.side} | {side.precision} | {side.images} | {side.s_per_step:.4g} "
                    f"| {side.s_per_image_step:.4g} | {side.images_per_hour:.4g} @ {side.preset_iterations} "
                    f"| {_memory(side.peak_memory, device)} | {_fmt(gflop, '.4g')} | {_fmt(achieved, '.3g')} "
                    f"| {_fmt(fraction, '.2f')} | {side.mean_psnr:.2f} |")
    return rows


def compare_row(result: ConfigResult) -> str:
    sides = result.sides
    ref, same, default = sides["reference"], sides["mgan same maths"], sides["mgan default"]
    delta = max(abs(a - b) for a, b in zip(ref.psnr, same.psnr, strict=True))
    speedup = ref.s_per_image_step / same.s_per_image_step
    shipped = sides.get("reference as shipped")
    history = "—" if shipped is None else f"{100 * (shipped.s_per_image_step / ref.s_per_image_step - 1):+.1f} %"
    ref_time = ref.iterations * ref.s_per_image_step
    if result.steps_to_reference is None:
        best = max((value for _, value in default.trajectory), default=default.mean_psnr)
        steps, seconds, gain = f"not reached in {default.iterations} (best {best:.2f})", "—", "—"
    else:
        mgan_time = result.steps_to_reference * default.s_per_image_step
        steps = str(result.steps_to_reference)
        seconds = f"{ref_time:.3g} → {mgan_time:.3g}"
        gain = f"{ref_time / mgan_time:.2f}×"
    return (f"| {result.config} | {delta:.3f} | {speedup:.2f}× | {history} | {default.mean_psnr:.2f} "
            f"| {steps} | {seconds} | {gain} |")
