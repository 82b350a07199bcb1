"""The per-image record of a run: one row of the report, one JSON line with ``--json``.

Adding a per-image field (e.g. ``baseline_psnr``, an identity score, the path of saved latents): set
``record.fields["name"] = value`` (any JSON-able value; floats may be inf/NaN, see
:mod:`mgan_cli.utils.jsonsafe`) where the value is known, usually in :class:`mgan_cli.run.sink.Sink` or an
``on_record`` hook before the record is stored. The field is then stored with the row in the run store
(its JSON ``record`` column, :mod:`mgan_cli.run.store`), appears in ``report.json`` rows and ``--json``
lines, and becomes a column of ``report.csv`` (after the standard ones). No schema change is needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mgan_cli.run.failures import Failure
from mgan_cli.utils.jsonsafe import json_safe

BASE_FIELDS = ("input", "output", "status", "error", "seconds", "loss", "seed", "notes")


def _is_metric(key: str, metric_names: tuple[str, ...]) -> bool:
    return key in metric_names or key.endswith("_reason")


@dataclass
class ImageRecord:
    """The outcome for one input file (one row of the report, one JSON line with ``--json``)."""

    input: str
    output: str | None = None
    status: str = "pending"  # ok | failed | skipped
    error: str | None = None
    metrics: dict[str, float | str | None] = field(default_factory=dict)  # psnr, …, <name>_reason
    notes: list[str] = field(default_factory=list)
    seed: int | None = None
    loss: float | None = None
    seconds: float | None = None
    fields: dict[str, Any] = field(default_factory=dict)  # task-specific (see the module docstring)
    failure: Failure | None = None  # why it failed (``error`` is its message); not part of the row

    def fail(self, failure: Failure) -> ImageRecord:
        """Mark this image failed (no output) and return it."""
        self.status, self.error, self.output, self.failure = "failed", failure.message, None, failure
        return self

    def to_dict(self) -> dict[str, Any]:
        """The row as plain data (floats may be inf/NaN; :meth:`to_json` is JSON-safe)."""
        return {"input": self.input, "output": self.output, "status": self.status, "error": self.error,
                **self.metrics, **self.fields, "seconds": self.seconds, "loss": self.loss, "seed": self.seed,
                "notes": self.notes}

    def to_json(self) -> dict[str, Any]:
        """The row, strict-JSON safe (the ``--json`` line, the stored row, the report row)."""
        return json_safe(self.to_dict())

    @classmethod
    def from_row(cls, row: dict[str, Any], metric_names: tuple[str, ...] = ("psnr", "ssim", "lpips", "niqe")
                 ) -> ImageRecord:
        """A record from a row of :meth:`to_json` (e.g. a stored one)."""
        extra = {k: v for k, v in row.items() if k not in BASE_FIELDS}
        return cls(input=row["input"], output=row.get("output"), status=row.get("status", "pending"),
                   error=row.get("error"), seconds=row.get("seconds"), loss=row.get("loss"), seed=row.get("seed"),
                   notes=list(row.get("notes") or []),
                   metrics={k: v for k, v in extra.items() if _is_metric(k, metric_names)},
                   fields={k: v for k, v in extra.items() if not _is_metric(k, metric_names)})
