"""genforce / mGANprior StyleGAN2 weights (``stylegan2_ffhq1024_generator.pth`` …): the canonical layout.

The file is ``torch.save(net.state_dict())`` of genforce's ``StyleGAN2GeneratorNet`` minus
``truncation.truncation`` (read with ``torch.load(weights_only=True)``); mgan's ``stylegan2`` uses the same
keys, so the reader only infers the constructor arguments from the tensor shapes. Truncation is the
genforce wrapper's default, **psi 0.5 on every w+ row** (``STYLEGAN2_TRUNCATION_PSI`` /
``_LAYERS = 18``), applied to z codes; noise is the stored buffers (``randomize_noise=False``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from mgan_cli.errors import UnknownFormatError
from mgan_cli.generators import stylegan2 as sg2
from mgan_cli.generators.registry import READERS, GeneratorWeights

#: genforce's wrapper defaults (models/model_settings.py)
GENFORCE_TRUNCATION_PSI = 0.5
GENFORCE_TRUNCATION_LAYERS = 18


@READERS.register("genforce-stylegan2")
def read_genforce_stylegan2(path: Path) -> GeneratorWeights:
    """A genforce ``StyleGAN2GeneratorNet`` state dict → ``stylegan2`` (truncation psi 0.5 on all rows)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for non-torch files
        raise UnknownFormatError(f"{path}: not a torch weights file ({exc.__class__.__name__})") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UnknownFormatError(f"{path}: expected a state dict of tensors")
    state = {k: v for k, v in state.items() if k != "truncation.truncation"}
    config = sg2.infer_config(state, str(path))
    num_layers = 2 * (int(config["resolution"]).bit_length() - 1) - 2  # type: ignore[call-overload]
    config.update(truncation_psi=GENFORCE_TRUNCATION_PSI,
                  truncation_layers=min(GENFORCE_TRUNCATION_LAYERS, num_layers))
    sg2.check_shapes(config, state, str(path))
    return GeneratorWeights("stylegan2", config, state, {"format": "genforce-stylegan2"})
