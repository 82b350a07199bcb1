"""What the encoder sees: an observed image through any task's degradation, lifted to one canonical input.

The encoder's input is ``[B, 4, S, S]``: the observed image resized to S × S (whatever its own size: a
super-resolution input is smaller than the generator's images) with its unknown pixels set to 0, and a
fourth channel that is 1 on known pixels, 0 on missing ones (inpainting). :func:`observed_input` builds it
from a task's observed image; training builds the same thing from the generator's own samples degraded by a
randomly chosen, registered augmentation (:data:`TASK_AUGMENTATIONS`), so that one encoder serves every task.
The operators are the tasks' own (:mod:`mgan_cli.core.degradations`), so train and use see alike images.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mgan_cli.core.degradations import Degradation, Downsample, to_luma
from mgan_cli.utils.registry import Registry
from mgan_cli.utils.shapes import check_shape

#: ``augment(images [M, 3, R, R], rng) -> (observed [M, 3, r, r], known [M, 1, R, R] or None)``
Augmentation = Callable[[torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor | None]]

#: the task-like degradations training draws from, each with its share of every batch
TASK_AUGMENTATIONS: Registry[Augmentation] = Registry("encoder augmentation")


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    if images.shape[-1] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def encoder_input(observed: torch.Tensor, known: torch.Tensor | None, size: int) -> torch.Tensor:
    """``[B, 3, r, r]`` observed images (and ``[B, 1, R, R]`` known-pixel maps, 1 = known, or ``None``: all known)
    -> the encoder's input ``[B, 4, size, size]``."""
    batch = check_shape(observed, "B 3 H H", "observed")["B"]
    image = _resize(observed.float(), size)
    if known is None:
        known_map = image.new_ones(batch, 1, size, size)
    else:
        check_shape(known, "B 1 K K", "known", B=batch)
        known_map = _resize(known.float(), size)
    return torch.cat([image * known_map, known_map], dim=1)


def observed_input(observed: torch.Tensor, degradation: Degradation, mask: torch.Tensor | None,
                   size: int) -> torch.Tensor:
    """The encoder's input for a task's observed images (``mask`` ``[B, 1, R, R]``, 1 = missing, for tasks that
    take one)."""
    known = None if mask is None or not degradation.needs_mask else 1 - mask
    return encoder_input(observed, known, size)


@TASK_AUGMENTATIONS.register("identity")
def _identity(images: torch.Tensor, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Inversion (and denoising: see :func:`photometric`)."""
    return images, None


@TASK_AUGMENTATIONS.register("grey")
def _grey(images: torch.Tensor, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Colorization: the luma repeated to 3 channels, as the ``luma`` degradation observes."""
    return to_luma(images).expand(-1, 3, -1, -1), None


@TASK_AUGMENTATIONS.register("downsample")
def _downsample(images: torch.Tensor, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Super-resolution: bicubic (antialiased) down by 2, 4 or 8 (those that leave at least 4 pixels)."""
    resolution = images.shape[-1]
    scales = [s for s in (2, 4, 8) if resolution % s == 0 and resolution // s >= 4] or [1]
    scale = scales[int(torch.randint(len(scales), (1,), generator=rng))]
    return Downsample(scale)(images), None


@TASK_AUGMENTATIONS.register("mask")
def _mask(images: torch.Tensor, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Inpainting: one to three random rectangles (each 10–50 % of the side) missing per image."""
    count, resolution = images.shape[0], images.shape[-1]
    missing = torch.zeros(count, 1, resolution, resolution)
    for m in range(count):
        for _ in range(int(torch.randint(1, 4, (1,), generator=rng))):
            h, w = (int(resolution * (0.1 + 0.4 * float(torch.rand(1, generator=rng)))) + 1 for _ in range(2))
            top = int(torch.randint(resolution - h + 1, (1,), generator=rng))
            left = int(torch.randint(resolution - w + 1, (1,), generator=rng))
            missing[m, 0, top:top + h, left:left + w] = 1
    missing = missing.to(images.device)
    return images * (1 - missing), 1 - missing


@dataclass(frozen=True)
class Photometric:
    """Changes applied after the task's degradation, each to a random share of the batch: Gaussian noise of a
    standard deviation up to ``noise_sigma`` (denoising inputs), and brightness/contrast jitter of up to
    ``jitter`` (real photographs are lit and exposed unlike the generator's samples)."""

    noise_share: float = 0.3
    noise_sigma: float = 0.1
    jitter_share: float = 0.5
    jitter: float = 0.15

    def __call__(self, images: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        count = images.shape[0]

        def draw(*shape: int) -> torch.Tensor:
            return torch.rand(shape, generator=rng).to(images.device)

        noisy = (draw(count, 1, 1, 1) < self.noise_share).float()
        sigma = self.noise_sigma * draw(count, 1, 1, 1) * noisy
        noise = torch.randn(images.shape, generator=rng).to(images.device)
        jittered = (draw(count, 1, 1, 1) < self.jitter_share).float()
        gain = 1 + self.jitter * (2 * draw(count, 1, 1, 1) - 1) * jittered
        shift = self.jitter * (2 * draw(count, 1, 1, 1) - 1) * jittered
        return (images * gain + shift + sigma * noise).clamp(-1, 1)


def augmented_inputs(images: torch.Tensor, rng: torch.Generator, size: int, shares: dict[str, float],
                     photometric: Photometric) -> tuple[torch.Tensor, torch.Tensor]:
    """Training inputs ``[M, 4, size, size]`` for clean samples ``[M, 3, R, R]``: each image gets one task
    augmentation, drawn with probabilities proportional to ``shares`` (names of :data:`TASK_AUGMENTATIONS`),
    then the photometric changes. Also returns the known-pixel maps ``[M, 1, R, R]`` (1 = known)."""
    names = [name for name in sorted(shares) if shares[name] > 0]
    weights = torch.tensor([float(shares[name]) for name in names])
    choice = torch.multinomial(weights, images.shape[0], replacement=True, generator=rng)
    inputs = images.new_empty(images.shape[0], 4, size, size)
    known_maps = images.new_ones(images.shape[0], 1, *images.shape[2:])
    for index, name in enumerate(names):
        rows = (choice == index).nonzero().flatten().to(images.device)
        if rows.numel() == 0:
            continue
        observed, known = TASK_AUGMENTATIONS.get(name)(images[rows], rng)
        inputs[rows] = encoder_input(photometric(observed, rng), known, size)
        if known is not None:
            known_maps[rows] = known
    return inputs, known_maps
