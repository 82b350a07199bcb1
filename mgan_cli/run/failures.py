"""Why an image failed, as a typed value that travels from the stage that failed to its record."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Stage(enum.StrEnum):
    """Where in the run an image failed."""

    PLAN = "plan"  # before reading it: its output would clash with an input or another output
    INPUT = "input"  # decoding, fitting, its mask
    RESTORE = "restore"  # the optimisation (out of memory, diverged)
    OUTPUT = "output"  # writing its PNG


#: stages at which nothing of the image was computed: a run where every image failed there "could not run"
BEFORE_RESTORING = frozenset({Stage.PLAN, Stage.INPUT})


@dataclass(frozen=True)
class Failure:
    """One image's failure: the stage and a one-line message for the user."""

    stage: Stage
    message: str

    def __str__(self) -> str:
        return self.message
