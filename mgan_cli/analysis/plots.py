"""Plots of the layer analysis (matplotlib, no display needed): the paper's Fig. 4/5 layout.

* ``quality_vs_codes.png``: PSNR, SSIM and LPIPS against the number of codes N, one line per layer ℓ;
* ``quality_vs_layer.png``: the same against the composing layer ℓ, one line per N.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mgan_cli.utils.atomic import write_atomic

PANELS = (("psnr", "PSNR (dB) ↑"), ("ssim", "SSIM ↑"), ("lpips", "LPIPS ↓"))


def _figure(means: Sequence[dict[str, Any]], x_key: str, line_key: str, x_label: str, line_label: str,
            title: str, path: Path) -> Path:
    from matplotlib.figure import Figure  # the object API: no global state, no display, safe in threads

    figure = Figure(figsize=(12, 3.6), layout="constrained")
    axes = figure.subplots(1, len(PANELS))
    lines = sorted({m[line_key] for m in means})
    xs = sorted({m[x_key] for m in means})
    for axis, (metric, label) in zip(axes, PANELS, strict=True):
        for value in lines:
            points = sorted((m[x_key], m[metric]) for m in means if m[line_key] == value and m[metric] is not None)
            if points:
                axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=f"{line_label} {value}")
        axis.set_xlabel(x_label)
        axis.set_ylabel(label)
        axis.set_xticks(xs)
        axis.grid(True, alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="outside right upper")
    figure.suptitle(title)
    write_atomic(path, lambda handle: figure.savefig(handle, format="png", dpi=100))
    return path


def write_plots(output_dir: Path, means: Sequence[dict[str, Any]], generator: str) -> list[Path]:
    """Both plots from the per-pair ``means`` of :func:`mgan_cli.analysis.sweep.pair_means` (none if empty)."""
    if not means:
        return []
    return [
        _figure(means, "codes", "layer", "number of codes N", "ℓ =", f"{generator}: quality vs number of codes",
                output_dir / "quality_vs_codes.png"),
        _figure(means, "layer", "codes", "composing layer ℓ", "N =", f"{generator}: quality vs composing layer",
                output_dir / "quality_vs_layer.png"),
    ]
