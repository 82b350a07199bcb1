"""DCGAN generators: the PyTorch-tutorial 64×64 DCGAN and a small 32×32 CelebA DCGAN.

Layer ``k`` is the output of the ``k``-th transposed-convolution block, after its batch norm and
activation (DCGAN-64: 1 → 512×4×4, 2 → 256×8×8, 3 → 128×16×16, 4 → 64×32×32). The final block
(to RGB + tanh) is not a composable layer. Batch norms use their running statistics (eval mode).
The files these load from are read by :mod:`mgan_cli.weights.formats.dcgan`.
"""

from __future__ import annotations

import torch
from torch import nn

from mgan_cli.generators.base import Generator, LayerInfo, SequentialUpper
from mgan_cli.generators.layers import CodeToFeatureMap
from mgan_cli.generators.registry import ARCHITECTURES


class DCGAN(Generator):
    """A stack of up-sampling blocks from a ``latent_size`` code at 1×1 to a 3-channel image.

    ``blocks[0]`` takes the code; ``blocks[k-1]`` outputs layer ``k``; the last block outputs the image.
    """

    def __init__(self, blocks: list[nn.Module], shapes: list[tuple[int, int, int]], latent_size: int,
                 resolution: int) -> None:
        super().__init__()
        self.latent_size = latent_size
        self.resolution = resolution
        self.blocks = nn.ModuleList(blocks)
        self._shapes = shapes
        self.to_code = CodeToFeatureMap()

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo(k, f"block{k}", shape) for k, shape in enumerate(self._shapes, start=1)]

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        x = self.to_code(code)
        for block in self.blocks:
            x = block(x)
        return x

    def split(self, layer: int, space: str = "z") -> tuple[nn.Module, nn.Module]:
        self._check_space(space)
        shape = self.layer(layer).shape
        lower = nn.Sequential(self.to_code, *self.blocks[:layer])
        upper = SequentialUpper(nn.Sequential(*self.blocks[layer:]), shape)
        return lower, upper


def _up(cin: int, cout: int, act: nn.Module, first: bool = False, bias: bool = False) -> nn.Sequential:
    conv = nn.ConvTranspose2d(cin, cout, 4, 1 if first else 2, 0 if first else 1, bias=bias)
    return nn.Sequential(conv, nn.BatchNorm2d(cout), act)


@ARCHITECTURES.register("dcgan64")
def dcgan64(latent_size: int = 100, width: int = 64) -> DCGAN:
    """PyTorch DCGAN tutorial generator: ConvT(z,8w,4,1,0) then 3 × ConvT(·,·/2,4,2,1), BN+ReLU; ConvT to RGB + tanh."""
    chans = [width * 8, width * 4, width * 2, width]
    blocks: list[nn.Module] = [_up(latent_size, chans[0], nn.ReLU(), first=True)]
    blocks += [_up(chans[i], chans[i + 1], nn.ReLU()) for i in range(3)]
    blocks.append(nn.Sequential(nn.ConvTranspose2d(width, 3, 4, 2, 1, bias=False), nn.Tanh()))
    shapes = [(c, 4 * 2**i, 4 * 2**i) for i, c in enumerate(chans)]
    return DCGAN(blocks, shapes, latent_size, 64)


@ARCHITECTURES.register("dcgan32")
def dcgan32(latent_size: int = 100) -> DCGAN:
    """fletchersarip93/face-generator: ConvT(z,256,4,1,0)+BN, Conv(256,128,3,1,1)+BN, 2 × ConvT(·,·/2,4,2,1)+BN,
    LeakyReLU(0.2) after every block but the last, ConvT(32,3,4,2,1,bias) + tanh."""
    act = nn.LeakyReLU(0.2)
    blocks: list[nn.Module] = [
        _up(latent_size, 256, act, first=True),
        nn.Sequential(nn.Conv2d(256, 128, 3, 1, 1, bias=False), nn.BatchNorm2d(128), act),
        _up(128, 64, act),
        _up(64, 32, act),
        nn.Sequential(nn.ConvTranspose2d(32, 3, 4, 2, 1, bias=True), nn.Tanh()),
    ]
    shapes = [(256, 4, 4), (128, 4, 4), (64, 8, 8), (32, 16, 16)]
    return DCGAN(blocks, shapes, latent_size, 32)
