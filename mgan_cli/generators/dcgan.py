"""DCGAN generators: the PyTorch-tutorial 64×64 DCGAN and a small 32×32 CelebA DCGAN.

Layer ``k`` is the output of the ``k``-th transposed-convolution block, after its batch norm and
activation (DCGAN-64: 1 → 512×4×4, 2 → 256×8×8, 3 → 128×16×16, 4 → 64×32×32). The final block
(to RGB + tanh) is not a composable layer. Batch norms use their running statistics (eval mode).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from mgan_cli.errors import UnknownFormatError
from mgan_cli.generators.base import Generator, LayerInfo, SequentialUpper
from mgan_cli.generators.registry import ARCHITECTURES, READERS, GeneratorWeights


class _Unflatten(nn.Module):
    """``[M, z] -> [M, z, 1, 1]``; also accepts codes already shaped ``[M, z, 1, 1]``."""

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return code.reshape(code.shape[0], -1, 1, 1)


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
        self.to_code = _Unflatten()

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo(k, f"block{k}", shape) for k, shape in enumerate(self._shapes, start=1)]

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        x = self.to_code(code)
        for block in self.blocks:
            x = block(x)
        return x

    def split(self, layer: int, space: str = "z") -> tuple[nn.Module, nn.Module]:
        self._check_space(space)
        self.layer(layer)
        lower = nn.Sequential(self.to_code, *self.blocks[:layer])
        upper = SequentialUpper(nn.Sequential(*self.blocks[layer:]))
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


def _load_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for non-torch files
        raise UnknownFormatError(f"{path}: not a torch weights file ({exc.__class__.__name__})") from exc


def _rename(state: dict[str, torch.Tensor], rename: dict[str, str], path: Path) -> dict[str, torch.Tensor]:
    """Rename module prefixes; a key whose prefix is not in ``rename`` is an error."""
    renamed = {}
    for key, value in state.items():
        prefix, _, leaf = key.rpartition(".")
        if prefix not in rename:
            raise UnknownFormatError(f"{path}: unexpected parameter {key!r}")
        renamed[f"{rename[prefix]}.{leaf}"] = value
    return renamed


def _latent_size(state: dict[str, torch.Tensor], path: Path) -> int:
    first = state.get("blocks.0.0.weight")
    if first is None:
        raise UnknownFormatError(f"{path}: no first transposed convolution in the file")
    return int(first.shape[0])


@READERS.register("dcgan-tutorial-tar")
def read_dcgan_tutorial(path: Path) -> GeneratorWeights:
    """``torch.save({'netG_state_dict': ...})`` of the tutorial's ``nn.Sequential`` called ``main``."""
    checkpoint = _load_state(path)
    state = checkpoint.get("netG_state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise UnknownFormatError(f"{path}: expected a dict with 'netG_state_dict'")
    # main.{0,1 | 3,4 | 6,7 | 9,10 | 12}: ConvT/BN pairs, ReLU at 2, 5, 8, 11, tanh at 13
    rename = {f"main.{3 * b}": f"blocks.{b}.0" for b in range(5)}
    rename.update({f"main.{3 * b + 1}": f"blocks.{b}.1" for b in range(4)})
    renamed = _rename(state, rename, path)
    return GeneratorWeights("dcgan64", {"latent_size": _latent_size(renamed, path)}, renamed)


@READERS.register("dcgan32-state-dict")
def read_dcgan32(path: Path) -> GeneratorWeights:
    """An ``OrderedDict`` with keys ``generator_deconv.{0..4}.{0,1}.*`` (conv, batch norm)."""
    state = _load_state(path)
    rename = {f"generator_deconv.{b}.{i}": f"blocks.{b}.{i}" for b in range(5) for i in range(2)}
    renamed = _rename(state, rename, path)
    return GeneratorWeights("dcgan32", {"latent_size": _latent_size(renamed, path)}, renamed)
