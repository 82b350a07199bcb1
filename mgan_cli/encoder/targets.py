"""What an encoder predicts for each kind of generator, and how a prediction becomes the engine's codes.

* ``z`` (DCGAN, PGGAN: generators whose only latent space is z): the encoder predicts z; the engine's codes
  are z, and these generators read no upper latent.
* ``w+`` (StyleGAN, StyleGAN2, StyleGAN3: mapping + synthesis): the encoder predicts every w+ row. Codes in
  ``w+`` are that prediction, codes in ``w`` the mean of the rows below the composing layer ℓ (the rows the
  lower part reads), and the upper latent is the rows ``ℓ … L-1`` (the rows the upper part reads). Codes in
  ``z`` cannot be predicted (the mapping has no inverse): :class:`ConfigurationError`.

Each target also says where the engine's seeded random codes are centred (``noise_center``), so that the warm
start adds the *same* seeded deviations the random start uses, scaled.
"""

from __future__ import annotations

import torch

from mgan_cli.errors import ConfigurationError
from mgan_cli.generators.base import Generator
from mgan_cli.generators.style_base import StyleFamilyGenerator
from mgan_cli.utils.registry import Registry


class Target:
    """Base class of what an encoder predicts (one registered instance per kind, see :data:`TARGETS`)."""

    name = "?"

    def applies(self, generator: Generator) -> bool:
        raise NotImplementedError

    def shape(self, generator: Generator) -> tuple[int, ...]:
        """Shape of one prediction (no batch dimension)."""
        raise NotImplementedError

    def sample(self, generator: Generator, count: int, rng: torch.Generator,
               device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """``count`` in-domain training pairs drawn from ``rng``: targets ``[M, *shape]`` and their images."""
        raise NotImplementedError

    def render(self, generator: Generator, targets: torch.Tensor) -> torch.Tensor:
        """Images of predictions ``[M, *shape]`` (differentiable with respect to them)."""
        raise NotImplementedError

    def codes(self, generator: Generator, prediction: torch.Tensor, space: str, layer: int) -> torch.Tensor:
        """The centre of an image's N codes ``[B, *code_shape(space)]`` from its prediction ``[B, *shape]``."""
        raise NotImplementedError

    def upper(self, generator: Generator, prediction: torch.Tensor, layer: int) -> torch.Tensor | None:
        """The upper latent ``[B, *upper_latent_shape(layer)]`` from the prediction (``None``: none is read)."""
        return None

    def noise_center(self, generator: Generator, space: str) -> torch.Tensor:
        """Where the engine's seeded codes in ``space`` are centred (their deviation from it is the noise)."""
        return torch.zeros(generator.code_shape(space))

    def statistics(self, generator: Generator, rng: torch.Generator,
                   device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and scale ``[*shape]`` of the targets (the encoder's output normalisation): z is N(0, I)."""
        shape = self.shape(generator)
        return torch.zeros(shape), torch.ones(shape)


TARGETS: Registry[Target] = Registry("encoder target")


def _register(target: Target) -> Target:
    return TARGETS.register(target.name)(target)


class ZTarget(Target):
    """z ~ N(0, I), for generators with no other latent space (DCGAN, PGGAN)."""

    name = "z"

    def applies(self, generator: Generator) -> bool:
        return tuple(generator.latent_spaces) == ("z",)

    def shape(self, generator: Generator) -> tuple[int, ...]:
        return generator.code_shape("z")

    def sample(self, generator: Generator, count: int, rng: torch.Generator,
               device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.randn((count, *self.shape(generator)), generator=rng).to(device)
        with torch.no_grad():
            return z, generator(z)

    def render(self, generator: Generator, targets: torch.Tensor) -> torch.Tensor:
        return generator(targets)

    def codes(self, generator: Generator, prediction: torch.Tensor, space: str, layer: int) -> torch.Tensor:
        if space != "z":
            raise ConfigurationError(f"the encoder of {type(generator).__name__} predicts z codes; "
                                     f"space {space!r} cannot start from it")
        return prediction


class WPlusTarget(Target):
    """Every w+ row of a mapping + synthesis generator (truncation applied as the generator renders z), with
    style mixing (two z's, crossing over at a random row) on a share of the samples so that the encoder also
    sees w+ codes whose rows differ, as multi-code inversion in w+ produces."""

    name = "w+"
    mixing = 0.5

    def applies(self, generator: Generator) -> bool:
        return isinstance(generator, StyleFamilyGenerator)

    def shape(self, generator: Generator) -> tuple[int, ...]:
        return generator.code_shape("w+")

    def sample(self, generator: Generator, count: int, rng: torch.Generator,
               device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        assert isinstance(generator, StyleFamilyGenerator)
        z = torch.randn((2, count, generator.latent_size), generator=rng).to(device)
        mixed = torch.rand(count, generator=rng) < self.mixing
        crossover = torch.randint(1, generator.num_layers, (count,), generator=rng)
        rows = torch.arange(generator.num_layers)
        second = (mixed[:, None] & (rows[None, :] >= crossover[:, None])).to(device)  # [M, L]
        with torch.no_grad():
            first, other = generator.to_wplus(z[0], "z"), generator.to_wplus(z[1], "z")
            wplus = torch.where(second[..., None], other, first)
            return wplus, generator.render(wplus, "w+")

    def render(self, generator: Generator, targets: torch.Tensor) -> torch.Tensor:
        assert isinstance(generator, StyleFamilyGenerator)
        return generator.render(targets, "w+")

    def codes(self, generator: Generator, prediction: torch.Tensor, space: str, layer: int) -> torch.Tensor:
        generator.layer(layer)
        if space == "w+":
            return prediction
        if space == "w":
            return prediction[:, :layer].mean(dim=1)
        raise ConfigurationError(f"the encoder of {type(generator).__name__} predicts w+ rows, which have no z: "
                                 f"use space w or w+ (--space) with the encoder start")

    def upper(self, generator: Generator, prediction: torch.Tensor, layer: int) -> torch.Tensor | None:
        return prediction[:, generator.layer(layer).index:]

    def statistics(self, generator: Generator, rng: torch.Generator,
                   device: torch.device, samples: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation (per element, at least 1e-3) of the w+ rows of ``samples`` random z."""
        assert isinstance(generator, StyleFamilyGenerator)
        z = torch.randn((samples, generator.latent_size), generator=rng).to(device)
        with torch.no_grad():
            wplus = generator.to_wplus(z, "z").float()
        return wplus.mean(dim=0).cpu(), wplus.std(dim=0).clamp_min(1e-3).cpu()

    def noise_center(self, generator: Generator, space: str) -> torch.Tensor:
        assert isinstance(generator, StyleFamilyGenerator)
        w_avg = generator.truncation.w_avg.detach().float().cpu()
        if space == "z":
            return torch.zeros(generator.code_shape("z"))
        return w_avg if space == "w" else w_avg.expand(generator.code_shape("w+")).clone()


_register(ZTarget())
_register(WPlusTarget())


def target_for(generator: Generator) -> Target:
    """The registered target that applies to ``generator`` (:class:`ConfigurationError` if none does)."""
    for name in TARGETS.names():
        target = TARGETS.get(name)
        if target.applies(generator):
            return target
    raise ConfigurationError(f"no encoder target fits {type(generator).__name__} "
                             f"(latent spaces {', '.join(generator.latent_spaces)})")
