"""The encoder network: a small convolutional net from the canonical input (:mod:`mgan_cli.encoder.augment`) to a
prediction of the generator's latent (:mod:`mgan_cli.encoder.targets`).

Stride-2 residual-free blocks (conv 3×3 stride 2, GroupNorm, LeakyReLU, conv 3×3, GroupNorm, LeakyReLU) halve
the input from S × S down to 4 × 4, then two linear layers give the prediction. GroupNorm, not BatchNorm: an
image's prediction never depends on the other images of its batch. The output is normalised: prediction =
``target_mean + target_scale · net(x)``, with the mean and scale of the generator's own latents (buffers of the
saved file), and the last layer starts at zero, so an untrained encoder predicts the mean latent.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from mgan_cli.errors import EncoderError


@dataclass(frozen=True)
class EncoderArchitecture:
    """Everything that fixes the encoder's tensors: input side S (a power of two ≥ 8), channels of the first
    block (doubling per block up to ``max_width``), width of the hidden linear layer, and what it predicts."""

    input_size: int
    width: int
    max_width: int
    hidden: int
    target: str
    target_shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.input_size < 8 or self.input_size & (self.input_size - 1):
            raise EncoderError(f"encoder input size must be a power of two of at least 8, got {self.input_size}")
        if min(self.width, self.max_width, self.hidden) < 1 or not self.target_shape:
            raise EncoderError(f"bad encoder architecture {self}")

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "target_shape": list(self.target_shape)}

    @staticmethod
    def from_json(data: Any, source: str) -> EncoderArchitecture:
        """Rebuild from :meth:`to_json`; :class:`EncoderError` for anything malformed."""
        try:
            fields = {k: data[k] for k in ("input_size", "width", "max_width", "hidden", "target", "target_shape")}
            if not all(isinstance(fields[k], int) and not isinstance(fields[k], bool)
                       for k in ("input_size", "width", "max_width", "hidden")):
                raise TypeError("sizes must be integers")
            shape = tuple(int(v) for v in fields.pop("target_shape"))
            if not 1 <= len(shape) <= 2 or math.prod(shape) > 1 << 16:
                raise ValueError(f"target shape {list(shape)} is not a latent's")
            return EncoderArchitecture(**fields, target_shape=shape)  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError) as exc:
            raise EncoderError(f"{source}: malformed encoder architecture ({exc})") from None


def _groups(channels: int) -> int:
    return math.gcd(channels, 8)


class Encoder(nn.Module):
    """``[B, 4, S, S] -> [B, *target_shape]`` (see the module docstring)."""

    def __init__(self, architecture: EncoderArchitecture) -> None:
        super().__init__()
        self.architecture = architecture
        blocks: list[nn.Module] = []
        channels, size, width = 4, architecture.input_size, architecture.width
        while size > 4:
            out = min(width, architecture.max_width)
            blocks += [nn.Conv2d(channels, out, 3, 2, 1), nn.GroupNorm(_groups(out), out), nn.LeakyReLU(0.2),
                       nn.Conv2d(out, out, 3, 1, 1), nn.GroupNorm(_groups(out), out), nn.LeakyReLU(0.2)]
            channels, size, width = out, size // 2, width * 2
        self.features = nn.Sequential(*blocks)
        outputs = math.prod(architecture.target_shape)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(channels * 16, architecture.hidden), nn.LeakyReLU(0.2),
                                  nn.Linear(architecture.hidden, outputs))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)
        self.register_buffer("target_mean", torch.zeros(architecture.target_shape))
        self.register_buffer("target_scale", torch.ones(architecture.target_shape))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        out = self.head(self.features(inputs)).view(-1, *self.architecture.target_shape)
        return self.target_mean + self.target_scale * out


def default_architecture(resolution: int, target: str, target_shape: tuple[int, ...], width: int = 32,
                         max_width: int = 256, hidden: int = 512, max_input: int = 256) -> EncoderArchitecture:
    """The architecture for a generator of ``resolution``: input at the resolution, at most ``max_input``."""
    size = 1 << int(math.log2(max(8, min(resolution, max_input))))
    return EncoderArchitecture(size, width, max_width, hidden, target, tuple(target_shape))
