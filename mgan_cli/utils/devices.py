"""The one parser of device names (``--device`` of every command, ``device=`` of the library functions)."""

from __future__ import annotations

import torch

from mgan_cli.errors import ConfigurationError

#: what every ``--device`` accepts, for help texts and messages
DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"


def resolve_device(spec: str | torch.device | None) -> torch.device:
    """``auto`` / ``None`` → CUDA when available, else the CPU; ``cpu``, ``cuda`` or ``cuda:N`` as given.

    Raises :class:`ConfigurationError` for any other name, for CUDA on a machine without it, and for a
    ``cuda:N`` beyond the devices present.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if spec is None or spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError):
        raise ConfigurationError(f"device must be {DEVICE_CHOICES}, got {spec!r}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigurationError(f"device {spec}: CUDA is not available on this machine (use cpu)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigurationError(f"device {spec}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif device.type != "cpu":
        raise ConfigurationError(f"device must be {DEVICE_CHOICES}, got {spec!r}")
    return device
