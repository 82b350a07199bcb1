"""Training an encoder on its generator's own samples only (no real data), resumably.

Each step draws a batch of latents from a generator seeded by ``(settings.seed, step)`` (so a resumed run sees
exactly the batches an uninterrupted one would), renders them, degrades each image with a random task
augmentation (:mod:`mgan_cli.encoder.augment`), and minimises

    latent_weight · mean(((ê − t) / scale)²) + pixel_weight · mean((G(ê) − G(t))²) / v

with Adam: a regression to the latent t (normalised by the targets' spread) and the pixel error of the
prediction rendered back through the frozen generator, on the clean image's known pixels (all but an
inpainting hole's: what the inversion's loss measures), normalised by v, the per-pixel variance of the
generator's images (so both terms are about 1 for a guess at the mean, whatever the generator's range). On
CUDA the encoder and generator run under bf16 autocast. The budget (steps or minutes) counts over all runs: a
checkpoint (model and optimiser state, the step and the seconds spent) is written every ``checkpoint_seconds``,
on an interrupt and at the end, and a rerun with the same settings continues from it; the finished encoder goes
to the cache (:mod:`mgan_cli.encoder.storage`).
"""

from __future__ import annotations

import datetime
import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from mgan_cli.encoder.augment import Photometric, augmented_inputs
from mgan_cli.encoder.model import Encoder, EncoderArchitecture, default_architecture
from mgan_cli.encoder.storage import (
    CHECKPOINT_FILE,
    CHECKPOINT_INFO,
    encoder_folder,
    read_tensors,
    save_encoder,
    write_json,
    write_tensors,
)
from mgan_cli.encoder.targets import target_for
from mgan_cli.errors import ConfigurationError, UnknownFormatError
from mgan_cli.generators.base import Generator
from mgan_cli.utils.devices import resolve_device
from mgan_cli.version import __version__
from mgan_cli.weights.formats.safetensors_format import read_info

#: default training budget in minutes by device type (what ``mgan encoder train G`` runs without a budget)
DEFAULT_MINUTES = {"cpu": 14.0, "cuda": 20.0}


def default_minutes(device: torch.device | str | None = None) -> float:
    """The default budget on ``device`` (default: the device ``auto`` picks on this machine)."""
    return DEFAULT_MINUTES[resolve_device(device).type]


@dataclass(frozen=True)
class TrainingSettings:
    """How an encoder is trained (recorded in its ``encoder.json``; a checkpoint resumes only with the same).

    batch_size, lr: Adam's batch and rate; decay: ``cosine`` lowers the rate along half a cosine to
    ``min_lr_fraction`` × lr at the end of the budget (steps or minutes; a rerun with a larger budget goes on
    from the checkpoint along the new budget's curve), ``constant`` keeps it. latent_weight, pixel_weight: the two
    loss terms (module docstring).
    shares: relative share of each task augmentation. photometric: noise and brightness/contrast jitter.
    width, max_width, hidden, max_input: the encoder's architecture (:func:`default_architecture`).
    """

    batch_size: int = 32
    lr: float = 1e-3
    decay: str = "cosine"
    min_lr_fraction: float = 0.05
    latent_weight: float = 1.0
    pixel_weight: float = 1.0
    shares: dict[str, float] = field(default_factory=lambda: {"identity": 2.0, "grey": 1.0, "downsample": 1.0,
                                                              "mask": 1.0})
    photometric: Photometric = field(default_factory=Photometric)
    seed: int = 0
    width: int = 32
    max_width: int = 256
    hidden: int = 512
    max_input: int = 256

    def __post_init__(self) -> None:
        if (self.batch_size < 1 or self.lr <= 0 or min(self.latent_weight, self.pixel_weight) < 0
                or self.decay not in ("cosine", "constant") or not 0 <= self.min_lr_fraction <= 1):
            raise ConfigurationError(f"bad encoder training settings: {self}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def architecture(self, generator: Generator) -> EncoderArchitecture:
        target = target_for(generator)
        return default_architecture(generator.resolution, target.name, target.shape(generator), self.width,
                                    self.max_width, self.hidden, self.max_input)


@dataclass(frozen=True)
class Budget:
    """Train until ``steps`` steps or ``minutes`` minutes in all (exactly one of the two)."""

    steps: int | None = None
    minutes: float | None = None

    def __post_init__(self) -> None:
        if (self.steps is None) == (self.minutes is None):
            raise ConfigurationError("give either a number of steps or of minutes for the encoder's training")
        if (self.steps is not None and self.steps < 0) or (self.minutes is not None and self.minutes < 0):
            raise ConfigurationError(f"the training budget must not be negative: {self}")

    def done(self, step: int, seconds: float) -> bool:
        return self.fraction(step, seconds) >= 1

    def fraction(self, step: int, seconds: float) -> float:
        """How much of the budget ``step`` steps and ``seconds`` seconds have used (1 = all)."""
        if self.steps is not None:
            return step / self.steps if self.steps else 1.0
        total = 60 * float(self.minutes or 0)
        return seconds / total if total else 1.0


def lr_at(settings: TrainingSettings, fraction: float) -> float:
    """The learning rate when ``fraction`` of the budget is used (see :class:`TrainingSettings`).

    >>> s = TrainingSettings(lr=1.0, min_lr_fraction=0.0)
    >>> lr_at(s, 0.0), lr_at(s, 0.5), lr_at(s, 1.0)
    (1.0, 0.5, 0.0)
    """
    if settings.decay == "constant":
        return settings.lr
    floor = settings.min_lr_fraction
    return settings.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(max(fraction, 0.0), 1.0))))


@dataclass(frozen=True)
class TrainingProgress:
    """Reported after every step: steps and seconds so far (over all runs), the budget, the step's losses."""

    step: int
    seconds: float
    budget: Budget
    loss: float
    latent_loss: float
    pixel_loss: float


@dataclass
class TrainingOutcome:
    encoder: Encoder
    folder: Path
    steps: int
    seconds: float
    resumed_from: int


def step_seed(seed: int, step: int) -> int:
    """The seed of step ``step``'s batch (independent of where a run started)."""
    return int.from_bytes(hashlib.sha256(f"encoder:{seed}:{step}".encode()).digest()[:8], "little") & (2**63 - 1)


def _checkpoint_record(name: str, sha: str, settings: TrainingSettings, architecture: EncoderArchitecture) -> dict:
    return {"generator": name, "generator_sha256": sha, "settings": settings.to_json(),
            "architecture": architecture.to_json()}


def _optimizer_tensors(optimizer: torch.optim.Optimizer, params: list[torch.nn.Parameter]) -> dict[str, torch.Tensor]:
    return {f"adam.{i}.{key}": value for i, param in enumerate(params)
            for key, value in optimizer.state.get(param, {}).items() if torch.is_tensor(value)}


def save_checkpoint(folder: Path, record: dict[str, Any], encoder: Encoder, optimizer: torch.optim.Optimizer,
                    step: int, seconds: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    params = list(encoder.parameters())
    tensors = {f"model.{k}": v for k, v in encoder.state_dict().items()}
    tensors.update(_optimizer_tensors(optimizer, params))
    sha = write_tensors(folder / CHECKPOINT_FILE, tensors, {**record, "step": step})
    write_json(folder / CHECKPOINT_INFO, {**record, "step": step, "seconds": seconds, "weights_sha256": sha})


def load_checkpoint(folder: Path, record: dict[str, Any], encoder: Encoder,
                    optimizer: torch.optim.Optimizer) -> tuple[int, float] | None:
    """Restore the checkpoint in ``folder`` into ``encoder`` and ``optimizer`` if it was made with the same
    generator, settings and architecture (``record``): ``(step, seconds)``, or ``None`` when there is none that
    fits. Read through safetensors only; the checksum and shapes are checked first."""
    info_file, weights_file = folder / CHECKPOINT_INFO, folder / CHECKPOINT_FILE
    if not info_file.is_file() or not weights_file.is_file():
        return None
    try:
        info = read_info(info_file)
    except UnknownFormatError:
        return None
    if any(info.get(key) != value for key, value in record.items()):
        return None
    from mgan_cli.weights.store import sha256_of

    if sha256_of(weights_file) != info.get("weights_sha256"):
        return None
    step = int(info.get("step", 0))
    params = list(encoder.parameters())
    expected = {f"model.{k}": tuple(v.shape) for k, v in encoder.state_dict().items()}
    if step > 0:
        for i, param in enumerate(params):
            expected.update({f"adam.{i}.step": (), f"adam.{i}.exp_avg": tuple(param.shape),
                             f"adam.{i}.exp_avg_sq": tuple(param.shape)})
    state = read_tensors(weights_file, expected, "this encoder's training checkpoint")
    encoder.load_state_dict({k[len("model."):]: v for k, v in state.items() if k.startswith("model.")})
    device = params[0].device
    for i, param in enumerate(params):
        if f"adam.{i}.step" in state:
            optimizer.state[param] = {key: state[f"adam.{i}.{key}"].to(device if key != "step" else "cpu")
                                      for key in ("step", "exp_avg", "exp_avg_sq")}
    return step, float(info.get("seconds", 0.0))


def pixel_loss(rendered: torch.Tensor, images: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Mean squared error over each image's known pixels (all of them but an inpainting hole's), as the
    inversion's loss measures it; averaged over the batch."""
    error = ((rendered - images).square().mean(dim=1, keepdim=True) * known).flatten(1).sum(dim=1)
    return (error / known.flatten(1).sum(dim=1).clamp_min(1)).mean()


def image_variance(generator: Generator, seed: int, device: torch.device, samples: int = 256,
                   chunk: int = 32) -> float:
    """Mean over pixels of the variance of the generator's images (``samples`` random ones)."""
    target = target_for(generator)
    rng = torch.Generator().manual_seed(seed)
    images = torch.cat([target.sample(generator, min(chunk, samples - start), rng, device)[1].float().cpu()
                        for start in range(0, samples, chunk)])
    return max(float(images.var(dim=0).mean()), 1e-8)


def train_encoder(
    generator: Generator,
    generator_name: str,
    generator_sha256: str,
    budget: Budget,
    settings: TrainingSettings | None = None,
    *,
    device: torch.device | str = "cpu",
    home: Path | None = None,
    progress: Callable[[TrainingProgress], None] | None = None,
    checkpoint_seconds: float = 60.0,
    fresh: bool = False,
) -> TrainingOutcome:
    """Train (or go on training) the encoder of ``generator`` (whose weight file has ``generator_sha256``)
    until ``budget``, and store it in the cache (see the module docstring). ``fresh``: ignore a checkpoint."""
    settings = settings or TrainingSettings()
    device = resolve_device(device)
    generator = generator.to(device).freeze()
    target = target_for(generator)
    architecture = settings.architecture(generator)
    folder = encoder_folder(generator_sha256, home)
    with torch.random.fork_rng(devices=[]):  # the same initial weights for the same seed
        torch.manual_seed(settings.seed)
        encoder = Encoder(architecture)
    mean, scale = target.statistics(generator, torch.Generator().manual_seed(settings.seed), device)
    encoder.target_mean.copy_(mean)
    encoder.target_scale.copy_(scale)
    encoder = encoder.to(device).train()
    params = list(encoder.parameters())
    optimizer = torch.optim.Adam(params, lr=settings.lr, betas=(0.9, 0.99))
    record = _checkpoint_record(generator_name, generator_sha256, settings, architecture)
    resumed = None if fresh else load_checkpoint(folder, record, encoder, optimizer)
    step, seconds = resumed or (0, 0.0)
    start_step = step
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    scale_on_device = encoder.target_scale.detach()
    variance = image_variance(generator, settings.seed + 1, device) if settings.pixel_weight > 0 else 1.0
    started = last_save = time.perf_counter()
    previous = seconds
    try:
        while not budget.done(step, seconds):
            for group in optimizer.param_groups:
                group["lr"] = lr_at(settings, budget.fraction(step, seconds))
            rng = torch.Generator().manual_seed(step_seed(settings.seed, step))
            targets, images = target.sample(generator, settings.batch_size, rng, device)
            inputs, known = augmented_inputs(images, rng, architecture.input_size, settings.shares,
                                             settings.photometric)
            with autocast:
                predicted = encoder(inputs).float()
                latent = ((predicted - targets) / scale_on_device).square().mean()
                pixel = pixel_loss(target.render(generator, predicted).float(), images, known) / variance \
                    if settings.pixel_weight > 0 else latent.new_zeros(())
            loss = settings.latent_weight * latent + settings.pixel_weight * pixel
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            now = time.perf_counter()
            seconds = previous + (now - started)
            if progress is not None:
                progress(TrainingProgress(step, seconds, budget, loss.item(), latent.item(), pixel.item()))
            if now - last_save >= checkpoint_seconds:
                save_checkpoint(folder, record, encoder, optimizer, step, seconds)
                last_save = now
    except KeyboardInterrupt:
        save_checkpoint(folder, record, encoder, optimizer, step, seconds)
        raise
    save_checkpoint(folder, record, encoder, optimizer, step, seconds)
    encoder = encoder.eval().requires_grad_(False)
    info = {"generator": generator_name, "settings": settings.to_json(), "steps": step, "seconds": round(seconds, 3),
            "device": device.type, "trained": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "mgan_version": __version__}
    save_encoder(folder, encoder, generator_sha256, info)
    return TrainingOutcome(encoder, folder, step, seconds, start_step)
