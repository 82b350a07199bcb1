"""The per-image record of a run: one row of the report, one JSON line with ``--json``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mgan_cli.run.failures import Failure

_BASE_FIELDS = ("input", "output", "status", "error", "seconds", "loss", "seed", "notes")


@dataclass
class ImageRecord:
    """The outcome for one input file (one row of the report, one JSON line with ``--json``)."""

    input: str
    output: str | None = None
    status: str = "pending"  # ok | failed | skipped
    error: str | None = None
    metrics: dict[str, float | str | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seed: int | None = None
    loss: float | None = None
    seconds: float | None = None
    failure: Failure | None = None  # why it failed (``error`` is its message)

    def fail(self, failure: Failure) -> ImageRecord:
        """Mark this image failed (no output) and return it."""
        self.status, self.error, self.output, self.failure = "failed", failure.message, None, failure
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"input": self.input, "output": self.output, "status": self.status, "error": self.error,
                **self.metrics, "seconds": self.seconds, "loss": self.loss, "seed": self.seed, "notes": self.notes}

    def restore_results(self, earlier: dict[str, Any]) -> None:
        """Take metrics, timing, loss and seed from an earlier report row of the same output (if it was ok)."""
        if earlier.get("status") not in ("ok", "skipped"):
            return
        self.metrics = {k: v for k, v in earlier.items() if k not in _BASE_FIELDS}
        self.seconds, self.loss, self.seed = earlier.get("seconds"), earlier.get("loss"), earlier.get("seed")
