"""Quality metrics of restored images for the run report (thin layer over :mod:`mgan_cli.metrics`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mgan_cli.metrics import compute_metrics


def measure(outputs: torch.Tensor, references: Sequence[torch.Tensor | None], names: Sequence[str],
            device: torch.device) -> tuple[list[dict[str, float | str | None]], list[str]]:
    """Metrics of ``outputs`` (uint8 ``[B, 3, R, R]``) against per-image ``references`` (uint8 or ``None``).

    Returns one row per image (``None`` + ``<name>_reason`` where a metric is undefined, e.g. no
    reference, NIQE on images under 96×96) and the warnings raised (e.g. a metric's weights missing).
    """
    warnings: list[str] = []
    rows: list[dict[str, float | str | None]] = [{} for _ in range(outputs.shape[0])]
    with_reference = [i for i, ref in enumerate(references) if ref is not None]
    without_reference = [i for i, ref in enumerate(references) if ref is None]
    for indices, has_reference in ((with_reference, True), (without_reference, False)):
        if not indices:
            continue
        batch = outputs[indices]
        refs = torch.stack([references[i] for i in indices]) if has_reference else None  # type: ignore[misc]
        computed = compute_metrics(batch, refs, names, device=device, on_warning=warnings.append)
        for index, row in zip(indices, computed, strict=True):
            rows[index] = row
    return rows, warnings
