"""The paper's layer analysis: restore the same images for every pair (composing layer ℓ, number of codes N).

Each pair is an ordinary run into ``OUT/runs/layer<ℓ>-codes<N>/`` (restored images, report.json,
index.html), all images of a pair optimised together in batches, the generator loaded once for the whole
grid. After every pair, ``OUT/analysis.json`` and ``OUT/analysis.csv`` are rewritten from the pairs' reports:

* ``rows``: one per image × layer × codes: ``input, layer, codes, status, psnr, ssim, lpips, seconds``;
* ``means``: one per pair: ``layer, codes, images`` (how many have a PSNR) and the mean of each value.

Resumable like every run: a pair's finished images are skipped (their results kept in its run stores,
``OUT/runs/…/.mgan/``), so an interrupted analysis continues where it stopped. Shardable like every run
(``--shard I/N``, a SLURM array, torchrun; :mod:`mgan_cli.run.sharding`): each shard runs every pair on its
share of the images, and the analysis files are rebuilt from every shard's records after each pair (and by
``mgan report OUT``). Different N are not
merged into one pass: padding every image to the largest N wastes the lower layers' work (Σ N versus
|N| · max N codes) and needs a step size of α per image (the engine steps α at ``lr / N``); different ℓ
split the generator differently.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import functools
import math
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mgan_cli.analysis.page import PAGE_NAME, write_analysis_page
from mgan_cli.config.presets import Preset, apply_overrides
from mgan_cli.config.tasks import Task
from mgan_cli.core.engine import EngineOptions, InversionSettings
from mgan_cli.errors import ConfigurationError
from mgan_cli.generators import Generator
from mgan_cli.report.owned import check_replaceable
from mgan_cli.report.tables import check_views, rebuild_views, write_csv, write_json, write_views
from mgan_cli.run import Job, RunEvents, Runner, open_output_folder, sharding
from mgan_cli.run.store import STORE_DIR, StoreReader
from mgan_cli.utils.atomic import make_folder, write_atomic
from mgan_cli.utils.imageio import collect_inputs
from mgan_cli.utils.messages import skipped_line
from mgan_cli.utils.settings_schema import SpecError, spec_of
from mgan_cli.version import __version__

ANALYSIS_METRICS = ("psnr", "ssim", "lpips")
ROW_COLUMNS = ("input", "layer", "codes", "status", *ANALYSIS_METRICS, "seconds")
DEFAULT_CODES = (1, 5, 10, 20, 30)
#: what ``mgan analyze`` writes into ``OUT`` itself besides the plots (never a run's views: they coexist)
ANALYSIS_FILES = ("analysis.json", "analysis.csv", PAGE_NAME)


def parse_layers(text: str | None, available: int) -> tuple[int, ...]:
    """``"1-8"``, ``"2,4,6"``, ``"1-3,6"`` or ``None`` (every layer of the generator) -> sorted layer numbers.

    >>> parse_layers("1-3,6", 8), parse_layers(None, 4)
    ((1, 2, 3, 6), (1, 2, 3, 4))
    """
    if text is None or text.strip().lower() == "all":
        return tuple(range(1, available + 1))
    layers: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part:
                low, high = (int(v) for v in part.split("-", 1))
                if low > high:
                    raise ValueError
                layers.update(range(low, high + 1))
            elif part:
                layers.add(int(part))
        except ValueError:
            raise ConfigurationError(f"--layers: {part!r} is not a layer number or a range like 1-8") from None
    outside = sorted(layer for layer in layers if not 1 <= layer <= available)
    if outside:
        raise ConfigurationError(f"--layers: layer {outside[0]} is out of range 1..{available} for this generator "
                                 "(see `mgan presets show`)")
    if not layers:
        raise ConfigurationError("--layers: name at least one layer")
    return tuple(sorted(layers))


def parse_codes(text: str | None) -> tuple[int, ...]:
    """``"1,5,10,20,30"`` -> sorted distinct code counts, each within the ``codes`` setting's bounds (the same
    rule as ``--codes`` of every task, :mod:`mgan_cli.utils.settings_schema`).

    >>> parse_codes("20, 1,5")
    (1, 5, 20)
    """
    if text is None:
        return DEFAULT_CODES
    try:
        codes = {int(part) for part in text.split(",") if part.strip()}
    except ValueError:
        raise ConfigurationError(f"--codes: {text!r} is not a comma-separated list of numbers") from None
    if not codes:
        raise ConfigurationError("--codes: give one or more numbers of codes, each at least 1")
    spec = spec_of(InversionSettings, "codes")
    assert spec is not None
    for count in sorted(codes):
        try:
            spec.check(count)
        except SpecError as exc:
            raise ConfigurationError(f"--codes: {exc}") from None
    return tuple(sorted(codes))


def pair_dir(output_dir: Path, layer: int, codes: int) -> Path:
    """Where the run of one (ℓ, N) pair goes."""
    return output_dir / "runs" / f"layer{layer}-codes{codes}"


@dataclass
class AnalysisJob:
    """The grid and everything each of its runs needs (see :class:`mgan_cli.run.Job`)."""

    task: Task
    preset: Preset
    inputs: list[Path]
    output_dir: Path
    layers: tuple[int, ...]
    codes: tuple[int, ...]
    reference_dir: Path | None = None
    mask: Path | None = None
    resize: str = "error"
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    overwrite: bool = False
    engine: EngineOptions = field(default_factory=EngineOptions)
    shard: sharding.Shard = field(default_factory=sharding.Shard)  # this process's share of ``inputs``

    def pairs(self) -> list[tuple[int, int]]:
        return [(layer, codes) for layer in self.layers for codes in self.codes]

    def pair_job(self, layer: int, codes: int) -> Job:
        return Job(task=self.task, preset=apply_overrides(self.preset, layer=layer, codes=codes),
                   inputs=sharding.take(self.inputs, self.shard), output_dir=pair_dir(self.output_dir, layer, codes),
                   reference_dir=self.reference_dir, mask=self.mask, resize=self.resize, device=self.device,
                   overwrite=self.overwrite, metrics=ANALYSIS_METRICS, engine=self.engine)


def _pair_header(job: Job, layer: int, codes: int, started: float, shard: sharding.Shard) -> dict[str, Any]:
    return {
        "mgan_version": __version__,
        "task": job.task.name,
        "command": " ".join(["mgan", *sys.argv[1:]]),
        "analysis": {"layer": layer, "codes": codes},
        "preset": job.preset.to_dict(),
        "seed": job.preset.seed,
        "device": str(job.device),
        "engine": dataclasses.asdict(job.engine),
        "shard": shard.header(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "started": datetime.datetime.fromtimestamp(started, datetime.UTC).isoformat(timespec="seconds"),
        "elapsed_seconds": round(time.time() - started, 3),
    }


def run_pair(job: AnalysisJob, layer: int, codes: int, generator: Generator, events: RunEvents) -> list[dict[str, Any]]:
    """Run this shard of one pair (its report is kept current after every batch); returns the rows of the
    pair's report (every shard's)."""
    pair = job.pair_job(layer, codes)
    started = time.time()
    make_folder(job.output_dir, pair.output_dir)  # OUT/runs/layer<ℓ>-codes<N>, never through a link
    store = open_output_folder(pair, job.shard.label)
    try:
        run_id = store.begin_run(_pair_header(pair, layer, codes, started, job.shard))

        def save(_: list[Any]) -> list[dict[str, Any]]:
            header = _pair_header(pair, layer, codes, started, job.shard)
            store.update_run(run_id, header)
            return write_views(store, header).rows

        pair_events = dataclasses.replace(events, on_batch_done=save)
        records = Runner(pair, pair_events, generator=generator, store=store, run_id=run_id).run()
        return save(records)
    finally:
        store.close()


def analysis_rows(layer: int, codes: int, report_rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """A pair's report rows as analysis rows (see the module docstring)."""
    return [{"input": row["input"], "layer": layer, "codes": codes, "status": row["status"],
             **{name: row.get(name) for name in (*ANALYSIS_METRICS, "seconds")}} for row in report_rows]


def pair_means(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (layer, codes): the number of images with a PSNR and the mean of each metric and of the seconds.

    >>> pair_means([{"layer": 2, "codes": 5, "psnr": 20.0, "seconds": 1.0}, {"layer": 2, "codes": 5, "psnr": 22.0}])
    [{'layer': 2, 'codes': 5, 'images': 2, 'psnr': 21.0, 'ssim': None, 'lpips': None, 'seconds': 1.0}]
    """
    groups: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["layer"], row["codes"]), []).append(row)
    means = []
    for (layer, codes), group in sorted(groups.items()):
        entry: dict[str, Any] = {"layer": layer, "codes": codes,
                                 "images": sum(1 for r in group if _finite(r.get("psnr")))}
        for name in (*ANALYSIS_METRICS, "seconds"):
            values = [r[name] for r in group if _finite(r.get(name))]
            entry[name] = sum(values) / len(values) if values else None
        means.append(entry)
    return means


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def write_analysis(output_dir: Path, settings: dict[str, Any], rows: list[dict[str, Any]],
                   elapsed_seconds: float) -> dict[str, Any]:
    """``analysis.json`` (settings, rows, means) and ``analysis.csv`` (rows); returns the document. Raises
    :class:`OutputError` rather than replace either when mgan did not write it as an analysis."""
    document = {**settings, "elapsed_seconds": round(elapsed_seconds, 3), "means": pair_means(rows), "rows": rows}
    for name in ANALYSIS_FILES[:2]:
        check_replaceable(output_dir / name, "analysis")
    write_json(output_dir / "analysis.json", document)
    write_csv(output_dir / "analysis.csv", rows, ROW_COLUMNS, extra_columns=False)
    return document


def run_analysis(job: AnalysisJob, generator: Generator, events: RunEvents | None = None,
                 on_pair: Callable[[int, int, int, int], None] | None = None) -> dict[str, Any]:
    """Run every pair of the grid, rewriting ``analysis.json``/``.csv`` and the plots after each one.

    ``on_pair(index, total, layer, codes)`` is called before each pair. Returns the final document.
    """
    from mgan_cli.analysis.plots import write_plots

    started = time.perf_counter()
    make_folder(job.output_dir)
    settings = {
        "mgan_version": __version__,
        "task": job.task.name,
        "generator": job.preset.generator,
        "preset": job.preset.to_dict(),
        "device": str(job.device),
        "layers": list(job.layers),
        "codes": list(job.codes),
        "inputs": len(job.inputs),
        "shard": job.shard.header(),
    }
    events = events or RunEvents()
    rows: list[dict[str, Any]] = []
    document: dict[str, Any] = {}
    pairs = job.pairs()
    for index, (layer, codes) in enumerate(pairs):
        if on_pair is not None:
            on_pair(index, len(pairs), layer, codes)
        rows.extend(analysis_rows(layer, codes, run_pair(job, layer, codes, generator, events)))
        document = write_analysis(job.output_dir, settings, rows, time.perf_counter() - started)
        write_plots(job.output_dir, document["means"], job.preset.generator)
    return document


def rebuild_analysis(output_dir: Path) -> int:
    """``mgan report OUT`` on an analysis folder: each pair's views from all its stores, then
    ``analysis.json``/``.csv`` from them (the settings of the last ``analysis.json`` kept). Returns the
    number of pairs (0: not an analysis folder)."""
    import json
    import re

    found = []
    for folder in sorted((output_dir / "runs").glob("layer*-codes*")):
        match = re.fullmatch(r"layer(\d+)-codes(\d+)", folder.name)
        if match and (folder / STORE_DIR).is_dir():
            found.append((int(match.group(1)), int(match.group(2)), folder))
    if not found:
        return 0
    rows: list[dict[str, Any]] = []
    for layer, codes, folder in sorted(found):
        rows.extend(analysis_rows(layer, codes, write_views(StoreReader(folder)).rows))
    previous: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        previous = json.loads((output_dir / "analysis.json").read_text())
    settings = {k: v for k, v in previous.items() if k not in ("rows", "means", "elapsed_seconds")}
    elapsed = previous.get("elapsed_seconds")
    write_analysis(output_dir, settings, rows, float(elapsed) if isinstance(elapsed, int | float) else 0.0)
    return len(found)


def contributions_dir(output_dir: Path, layer: int, codes: int) -> Path:
    return output_dir / "contributions" / f"layer{layer}-codes{codes}"


def run_contributions(job: AnalysisJob, layer: int, codes: int, generator: Generator,
                      events: RunEvents | None = None) -> list[Path]:
    """For the pair (ℓ, N): invert every input (the same seeds as the pair's run) and write
    ``OUT/contributions/layer<ℓ>-codes<N>/<stem>.png`` (the figure of :mod:`mgan_cli.analysis.contributions`) and
    ``<stem>.npz`` (``shares`` float16 ``[N, R, R]``). Images whose figure exists are skipped unless
    ``overwrite``; unusable inputs are warned about and skipped. Returns the figures written."""
    from mgan_cli.analysis.contributions import code_shares, write_figure
    from mgan_cli.core.engine import invert
    from mgan_cli.run.job import image_seed
    from mgan_cli.run.loading import Loader
    from mgan_cli.run.planning import WorkItem
    from mgan_cli.run.restoring import BatchRestorer
    from mgan_cli.utils.imageio import to_uint8

    events = events or RunEvents()
    pair = job.pair_job(layer, codes)
    folder = contributions_dir(job.output_dir, layer, codes)
    make_folder(job.output_dir, folder)
    restorer = BatchRestorer.for_job(pair, generator, on_step=events.on_step, on_warning=events.on_warning)
    loader = Loader(pair, restorer.resolution, restorer.observed_size, restorer.needs_mask)
    todo = [WorkItem(path, folder / f"{path.stem}.png", image_seed(pair.preset.seed, path.name))
            for path in pair.inputs if job.overwrite or not (folder / f"{path.stem}.png").exists()]
    settings = pair.preset.inversion
    written: list[Path] = []
    for start in range(0, len(todo), restorer.batch_limit):
        loaded, failed = loader.load_batch(todo[start:start + restorer.batch_limit])
        for record in failed:
            events.warn(f"contributions: {skipped_line(record.input, record.error)}")
        if not loaded:
            continue
        observed = torch.stack([p.observed for p in loaded]).to(job.device)
        masks = None if loaded[0].mask is None else torch.stack([p.mask for p in loaded]).to(job.device)  # type: ignore
        result = invert(restorer.generator, observed, restorer.degradation, restorer.loss, settings,
                        [p.item.seed for p in loaded], mask=masks, options=job.engine, warn=events.on_warning)
        full = restorer.observed_full(observed)  # what the run blends the restoration with
        restored = to_uint8(restorer.degradation.finalize(result.images, full, masks)).cpu()
        shares = code_shares(restorer.generator, settings.layer, settings.space, result.codes, result.alphas,
                             restorer.resolution).cpu().numpy()
        for index, item in enumerate(loaded):
            stem = item.item.input.stem
            write_atomic(folder / f"{stem}.npz",
                         functools.partial(np.savez_compressed, shares=shares[index].astype(np.float16)))
            written.append(write_figure(
                item.item.output, to_uint8(item.observed[None])[0].permute(1, 2, 0).numpy(),
                restored[index].permute(1, 2, 0).numpy(), shares[index],
                f"{item.item.input.name}: layer {layer}, {codes} codes"))
    return written


@dataclass
class AnalysisOutcome:
    """What :func:`analyze_files` wrote: the ``document`` of ``analysis.json`` (``rows`` and ``means``), the
    ``page`` (``OUT/analysis.html``), and the contribution maps it drew this time."""

    document: dict[str, Any]
    page: Path
    contribution_maps: list[Path]

    @property
    def any_failed(self) -> bool:
        return any(row["status"] == "failed" for row in self.document["rows"])


def analyze_files(task: Task, preset: Preset, inputs: Sequence[str | Path], output_dir: Path,
                  generator: Callable[[], Generator], *, device: torch.device, engine: EngineOptions,
                  layers: str | None = None, codes: str | None = None, contributions: tuple[int, int] | None = None,
                  reference_dir: Path | None = None, mask: Path | None = None, resize: str = "error",
                  recursive: bool = False, overwrite: bool = False, stdin_lines: Sequence[str] = (),
                  shard: str | None = None, events: RunEvents | None = None,
                  on_pair: Callable[[int, int, int, int], None] | None = None) -> AnalysisOutcome:
    """The whole ``mgan analyze``: every (layer, codes) pair as a run into ``OUT/runs/``, ``analysis.json``/
    ``.csv``, the plots, the contribution maps of ``contributions`` (a (layer, codes) pair) and
    ``OUT/analysis.html`` (beside a task run's ``index.html`` into the same ``OUT``, each linking the other).
    ``layers``/``codes`` are the flags' texts (``1-8``, ``1,5,10``; default every layer and
    1,5,10,20,30). ``generator()`` gives the preset's generator on ``device``."""
    paths = collect_inputs([str(i) for i in inputs], recursive=recursive, stdin_lines=list(stdin_lines))
    if not paths:
        raise ConfigurationError("no input images found (give files, folders, or - to read paths from stdin)")
    this_shard = sharding.from_environment(shard)  # --shard I/N, a SLURM array, torchrun, or everything
    run_device = sharding.device_for(this_shard, device)
    model = generator().to(run_device)
    available = len(model.layers())
    if contributions is not None and not 1 <= contributions[0] <= available:
        raise ConfigurationError(f"--contributions: layer {contributions[0]} is out of range 1..{available}")
    job = AnalysisJob(task=task, preset=preset, inputs=paths, output_dir=output_dir,
                      layers=parse_layers(layers, available), codes=parse_codes(codes),
                      reference_dir=reference_dir, mask=mask, resize=resize, device=run_device, overwrite=overwrite,
                      engine=engine, shard=this_shard)
    for name in ANALYSIS_FILES:  # before any work: never replace a file mgan did not write as an analysis
        check_replaceable(output_dir / name, "analysis")
    for folder in [pair_dir(output_dir, *pair) for pair in job.pairs()] + \
            ([contributions_dir(output_dir, *contributions)] if contributions else []):
        make_folder(output_dir, folder)  # before any work: a link planted in OUT is refused in one line
    for pair in job.pairs():
        check_views(pair_dir(output_dir, *pair))
    events = events or RunEvents()
    document = run_analysis(job, model, events, on_pair=on_pair)
    written = run_contributions(job, *contributions, model, events) if contributions else []
    figures = sorted(contributions_dir(output_dir, *contributions).glob("*.png")) if contributions else []
    page = write_analysis_page(output_dir, document, {pair: pair_dir(output_dir, *pair) for pair in job.pairs()},
                               figures)
    if StoreReader(output_dir).paths():  # a task run's report in OUT too: its index.html now links this page
        rebuild_views(output_dir)
    return AnalysisOutcome(document, page, written)
