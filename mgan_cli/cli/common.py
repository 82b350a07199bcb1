"""Shared command-line plumbing: consoles, error reporting, device parsing."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from mgan_cli.errors import MganError
from mgan_cli.utils.messages import skipped_line

__all__ = ["OutputFolder", "exit_for_failures", "reports_errors", "skipped_line"]

F = TypeVar("F", bound=Callable[..., Any])

#: exit status when the command could not run at all (bad preset, missing weights, bad arguments)
EXIT_UNUSABLE = 2
#: exit status when the run finished but some images failed
EXIT_SOME_FAILED = 1
#: exit status after an interrupt (SIGINT, Ctrl-C): finished images are recorded, a rerun resumes
EXIT_INTERRUPTED = 130

stderr_console = Console(stderr=True, highlight=False)
stdout_console = Console(highlight=False)


def fail(message: str) -> None:
    """Print ``mgan: error: message`` on stderr (one line) and exit with :data:`EXIT_UNUSABLE`."""
    click.echo(f"mgan: error: {message}", err=True)
    sys.exit(EXIT_UNUSABLE)


class OutputFolder(click.Path):
    """A folder path that is not empty (``-o ""`` would otherwise mean the current folder)."""

    def __init__(self) -> None:
        super().__init__(file_okay=False, path_type=Path)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip():
            self.fail("must name a folder (it is empty)", param, ctx)
        return super().convert(value, param, ctx)


def exit_for_failures(failed: int, total: int) -> None:
    """Exit :data:`EXIT_UNUSABLE` when every one of ``total`` inputs failed (or there were none: nothing could
    run), :data:`EXIT_SOME_FAILED` when some did; return when none did."""
    if total == 0 or failed == total:
        sys.exit(EXIT_UNUSABLE)
    if failed:
        sys.exit(EXIT_SOME_FAILED)


def describe_os_error(exc: OSError) -> str:
    """``PATH: cause`` for an operating-system error."""
    cause = exc.strerror or str(exc)
    return f"{exc.filename}: {cause}" if exc.filename is not None else cause


def reports_errors(command: F) -> F:
    """Turn the project's own errors (:class:`MganError`) and problems of the environment (an
    :class:`OSError`: a folder that cannot be written, a full disk) into one clear line on stderr and exit
    status 2, and an interrupt into exit status 130. Anything else is a bug and keeps its traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except MganError as exc:
            fail(str(exc))
        except OSError as exc:
            fail(describe_os_error(exc))
        except KeyboardInterrupt:
            click.echo("mgan: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        return None

    return wrapper  # type: ignore[return-value]
