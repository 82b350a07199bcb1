"""Shared command-line plumbing: consoles, error reporting, device parsing."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
import torch
from rich.console import Console

from mgan_cli.errors import MganError

F = TypeVar("F", bound=Callable[..., Any])

#: exit status when the command could not run at all (bad preset, missing weights, bad arguments)
EXIT_UNUSABLE = 2
#: exit status when the run finished but some images failed
EXIT_SOME_FAILED = 1

stderr_console = Console(stderr=True, highlight=False)
stdout_console = Console(highlight=False)


def fail(message: str) -> None:
    """Print ``mgan: error: message`` on stderr (one line) and exit with :data:`EXIT_UNUSABLE`."""
    click.echo(f"mgan: error: {message}", err=True)
    sys.exit(EXIT_UNUSABLE)


def reports_errors(command: F) -> F:
    """Turn the library's typed errors into one clear line on stderr and a non-zero exit."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except MganError as exc:
            fail(str(exc))
        except KeyError as exc:  # registry misses carry a full sentence
            fail(str(exc.args[0]) if exc.args else str(exc))
        return None

    return wrapper  # type: ignore[return-value]


def resolve_device(spec: str) -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise MganError(f"--device must be auto, cpu, cuda or cuda:N, got {spec!r}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise MganError(f"--device {spec}: CUDA is not available on this machine (use --device cpu)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise MganError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif device.type != "cpu":
        raise MganError(f"--device must be auto, cpu, cuda or cuda:N, got {spec!r}")
    return device
