"""LPIPS (Zhang et al. 2018) through the ``lpips`` package, with the ImageNet backbone from the weight store."""

from __future__ import annotations

import math
import threading
import warnings

import torch
from torch import Tensor

from mgan_cli.errors import ConfigurationError
from mgan_cli.metrics._common import check_pair, crop
from mgan_cli.weights.store import weight_path

#: LPIPS backbone → registry entry of its torchvision ImageNet ``features.*`` weights.
LPIPS_BACKBONES = {"alex": "alexnet-imagenet", "vgg": "vgg16-imagenet"}
#: Smallest height and width each backbone accepts (smaller images give NaN).
LPIPS_MIN_SIZE = {"alex": 31, "vgg": 16}
#: Images per forward pass at most (results do not depend on it) ...
LPIPS_CHUNK = 8
#: ... and pixels per forward pass at most (8 images of 256²): the metric's memory does not grow with the
#: image size, so a fixed reserve beside the optimisation covers it (:mod:`mgan_cli.run.batching`).
LPIPS_CHUNK_PIXELS = 8 * 256 * 256

_models: dict[tuple[str, str, str], torch.nn.Module] = {}
_lock = threading.Lock()


def _check_net(net: str) -> None:
    if net not in LPIPS_BACKBONES:
        raise ConfigurationError(f"unknown LPIPS network {net!r}; choose one of {', '.join(LPIPS_BACKBONES)}")


def _build_model(net: str) -> torch.nn.Module:
    import lpips  # imported lazily: it pulls in torchvision models

    with warnings.catch_warnings():
        # lpips 0.1.4 calls torchvision's deprecated ``pretrained=`` argument (with False: no download).
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
    # The linear heads (v0.1) came from inside the package; the backbone comes from the weight store.
    # Its keys are torchvision's ``features.<i>.*``; lpips keeps index <i> inside ``slice<k>``.
    where = {}
    for name, _ in model.net.named_parameters():
        _slice, index, kind = name.split(".")
        where[f"features.{index}.{kind}"] = name
    state = torch.load(weight_path(LPIPS_BACKBONES[net]), map_location="cpu", weights_only=True)
    missing = sorted(set(where) - set(state))
    unexpected = sorted(set(state) - set(where))
    if missing or unexpected:
        raise ConfigurationError(
            f"backbone weights for LPIPS-{net} do not fit: missing {missing}, unexpected {unexpected}"
        )
    model.net.load_state_dict({where[key]: value for key, value in state.items()}, strict=True)
    return model.eval().requires_grad_(False)


def lpips_model(net: str = "alex", device: torch.device | str = "cpu",
                dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """The ``lpips.LPIPS`` module for ``net`` on ``device`` in ``dtype``, built on first use and cached.

    Raises :class:`~mgan_cli.errors.WeightsNotFoundError` when the backbone weights are unavailable.
    """
    _check_net(net)
    device = torch.device(device)
    key = (net, str(device), str(dtype))
    with _lock:
        if key not in _models:
            _models[key] = _build_model(net).to(device=device, dtype=dtype)
        return _models[key]


def compute_dtype(device: torch.device) -> torch.dtype:
    """float64 on CUDA: cuDNN never uses TF32 for doubles, so CUDA agrees with the CPU's float32 to ~1e-6
    without touching the process-wide TF32 flags (the metrics run on the writer thread while the main thread
    convolves); float32 elsewhere."""
    return torch.float64 if device.type == "cuda" else torch.float32


def _chunk(height: int, width: int) -> int:
    return max(1, min(LPIPS_CHUNK, LPIPS_CHUNK_PIXELS // max(1, height * width)))


@torch.no_grad()
def lpips_distance(image: Tensor, reference: Tensor, *, net: str = "alex", crop_border: int = 0) -> Tensor:
    """LPIPS distance (v0.1 linear heads) of each image to its reference; lower is more similar.

    Args:
        image, reference: ``[N, 3, H, W]`` RGB (``[N, 1, H, W]`` gray is repeated to RGB), uint8 or float
            in [0, 255], same shape. They are mapped to the network's [-1, 1] by ``x / 127.5 - 1`` (the
            ``lpips`` package's ``normalize=True`` applied to ``x / 255``) and run on ``image``'s device, in
            float32 (float64 on CUDA: :func:`compute_dtype`), at most :data:`LPIPS_CHUNK_PIXELS` at a time.
        net: ``"alex"`` (default, the paper's recommended metric) or ``"vgg"``.
        crop_border: pixels dropped at each edge first.

    Returns:
        float64 ``[N]`` (≥ 0); NaN where the cropped image is smaller than the backbone accepts
        (:data:`LPIPS_MIN_SIZE`).
    """
    _check_net(net)
    check_pair(image, reference)
    a = crop(image, crop_border)
    b = crop(reference, crop_border)
    batch, _, height, width = a.shape
    device = a.device
    if min(height, width) < LPIPS_MIN_SIZE[net] or batch == 0:
        return torch.full((batch,), math.nan, dtype=torch.float64, device=device)
    dtype = compute_dtype(device)
    model = lpips_model(net, device, dtype)
    chunk = _chunk(height, width)
    out = []
    for start in range(0, batch, chunk):
        x = a[start:start + chunk].to(dtype) / 127.5 - 1
        y = b[start:start + chunk].to(device=device, dtype=dtype) / 127.5 - 1
        if x.shape[1] == 1:
            x, y = x.expand(-1, 3, -1, -1), y.expand(-1, 3, -1, -1)
        out.append(model(x, y).reshape(-1))
    return torch.cat(out).to(torch.float64)
