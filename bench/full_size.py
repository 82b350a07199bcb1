"""Every paper generator at full size on the CPU: official file → ``mgan weights import`` → ``superres ×8``.

    python -m bench.full_size [--archs pggan,stylegan,stylegan2,stylegan3-t,stylegan3-r] [--resolution 1024]
                              [--iterations 2] [--threads N] [--max-rss-gb G] [--write]

For each architecture, at the configuration of its registry entry (:data:`ARCHS`; ``--resolution`` replaces
only the resolution, so a smoke run at 32 or 64 keeps the full channel widths), in a fresh child process:

1. build it with seeded random weights and write it in its **official on-disk format**
   (:mod:`bench.official_formats`): PGGAN, StyleGAN and StyleGAN2 config-f as their TensorFlow pickles
   (``(G, D, Gs)`` of ``tfutil`` / ``dnnlib.tflib`` networks), StyleGAN3-t/-r as NVlabs' PyTorch snapshot;
2. import it (:func:`mgan_cli.weights.importing.import_generator`, what ``mgan weights import FILE --name NAME``
   runs) and check that the imported architecture and config are the registry entry's;
3. run ``mgan superres LOW.png --generator NAME --scale 8 --iterations 2 --device cpu`` through the public API
   (:meth:`mgan_cli.api.Restorer.restore_files`: the command's own file pipeline, report and metrics included)
   with the family's default N and ℓ, on one image.

Recorded per architecture: the import's seconds; the seconds of each optimisation step (the engine's
forward + backward, timed around ``_Stepper.forward_backward``; the first step includes one-off warm-ups);
the process's peak RSS (``ru_maxrss``: writing and importing included) and the run's working memory (peak RSS
sampled every 5 ms during the run minus RSS before it, generator and VGG already loaded); whether it finished.
Each child runs alone, so peak RSS is its own; ``--max-rss-gb`` stops a child that grows past it.

mgan has no analytic memory model: on CUDA the batch is sized by a one-image probe
(:mod:`mgan_cli.run.batching`), which cannot run here. The table's "H200 batch (est.)" feeds the CPU's
per-image working memory to that policy (:func:`~mgan_cli.run.batching.choose_batch_size`, ``auto``, as if the
probe had measured it on a device with ``--gpu-memory-gb`` free): an estimate of the prediction, not a
measurement (the CPU runs eagerly at ``--precision``, by default mgan's ``auto``: bf16 autocast on CPUs with
native bf16, as on CUDA, else fp32, which about doubles activations; CUDA adds cuDNN workspaces and allocator
fragmentation; the CPU's working memory also holds the metrics' models, loaded during the run).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "BENCHMARKS.md"
RESULT_PREFIX = "FULL_SIZE_RESULT "
GIB = 2 ** 30


@dataclass(frozen=True)
class Arch:
    """A paper architecture: its registry entry (architecture + full-size config) and official format."""

    registry: str
    format: str
    label: str


ARCHS: dict[str, Arch] = {
    "pggan": Arch("pggan-celebahq1024", "tf-pggan", "PGGAN"),
    "stylegan": Arch("stylegan-ffhq1024", "tf-stylegan", "StyleGAN"),
    "stylegan2": Arch("stylegan2-ffhq1024", "tf-stylegan2", "StyleGAN2 config-f"),
    "stylegan3-t": Arch("stylegan3-t-ffhq1024", "nvlabs-pickle", "StyleGAN3-t"),
    "stylegan3-r": Arch("stylegan3-r-ffhq1024", "nvlabs-pickle", "StyleGAN3-r"),
}


def arch_config(arch: str, resolution: int) -> tuple[str, dict[str, Any]]:
    """``(architecture, config)`` of ``arch``'s registry entry at ``resolution``."""
    from mgan_cli.weights.store import load_registry

    entry = load_registry()[ARCHS[arch].registry]
    return str(entry.architecture), {**entry.config, "resolution": resolution}


# ---- the child: write, import, run ---------------------------------------------------------------------------

def write_official(arch: str, resolution: int, path: Path, seed: int = 0) -> int:
    """Write ``arch`` at ``resolution`` with seeded random weights in its official format; its parameter count."""
    import torch

    from bench import official_formats as of
    from mgan_cli.generators import ARCHITECTURES
    from mgan_cli.weights.formats import tf_pggan, tf_stylegan, tf_stylegan2
    from mgan_cli.weights.formats.nvlabs import mgan_to_nvlabs3

    architecture, config = arch_config(arch, resolution)
    fmaps = config.get("fmaps_base")
    if architecture == "pggan":
        model = of.randomised("pggan", config, seed)
        # G_paper's fmap_base counts from its 4x4 stage, mgan's fmaps_base one stage earlier (celebahq: 8192)
        kwargs = {"num_channels": 3, "resolution": resolution, "label_size": 0, "fmap_base": fmaps // 2,
                  "fmap_max": config["fmaps_max"], "latent_size": config["z_dim"], "normalize_latents": True,
                  "use_wscale": True, "use_pixelnorm": True, "use_leakyrelu": True, "fused_scale": False}
        of.write_tf_pggan(path, tf_pggan.to_tf_variables(model.state_dict(), config), kwargs)
    elif architecture in ("stylegan", "stylegan2"):
        model = of.randomised(architecture, config, seed)
        module = tf_stylegan if architecture == "stylegan" else tf_stylegan2
        config = {"mapping_layers": 8, "image_channels": 3, **config}  # what to_tf_variables reads
        kwargs = {"num_channels": 3, "resolution": resolution, "label_size": 0, "latent_size": config["z_dim"],
                  "dlatent_size": config["w_dim"], "mapping_fmaps": config["w_dim"], "mapping_layers": 8}
        if architecture == "stylegan2":  # config-f: fmap_base 16 << 10 (counted as G_paper's)
            kwargs.update(fmap_base=config["fmaps_base"] // 2, fmap_max=config["fmaps_max"], mapping_lrmul=0.01)
        version, funcs = (3, of.SG_FUNCS) if architecture == "stylegan" else (4, of.SG2_FUNCS)
        of.write_tf_style(path, module.to_tf_variables(model.state_dict(), config), kwargs, None, version, funcs,
                          num_layers=2 * int(math.log2(resolution)) - 2)
    elif architecture == "stylegan3":
        torch.manual_seed(seed)
        model = ARCHITECTURES.get("stylegan3")(**config)
        with of.official_nvlabs_modules() as env:
            of.write_stylegan3_snapshot(path, env, mgan_to_nvlabs3(model.state_dict()), of.stylegan3_kwargs(config))
    else:
        raise ValueError(f"no official writer for {architecture}")
    return sum(p.numel() for p in model.parameters())


def check_import(arch: str, resolution: int, info: dict[str, Any], parameters: int) -> None:
    """The imported generator is the written one: its architecture, format and parameter count, and at the
    registry entry's own resolution every key of the entry's config (at other resolutions some are not
    identifiable from the tensors, e.g. ``fmaps_base`` when every layer is at ``fmaps_max``)."""
    from mgan_cli.weights.store import load_registry

    architecture, expected = arch_config(arch, resolution)
    problems = []
    if (info["architecture"], info["source_format"]) != (architecture, ARCHS[arch].format):
        problems.append(f"imported as {info['architecture']} ({info['source_format']})")
    if info["parameters"] != parameters:
        problems.append(f"{info['parameters']:,} parameters, {parameters:,} written")
    if resolution == load_registry()[ARCHS[arch].registry].resolution:
        wrong = {k: info["config"].get(k) for k, v in expected.items() if info["config"].get(k) != v}
        if wrong:
            problems.append(f"config {wrong} differs from {ARCHS[arch].registry}'s")
    if problems:
        raise RuntimeError("; ".join(problems))


def _rss_bytes() -> int:
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class RssSampler:
    """Peak RSS of this process, sampled every ``interval`` seconds in a thread; past ``limit_bytes`` it
    calls ``on_limit(rss)`` (once)."""

    def __init__(self, interval: float = 0.005, limit_bytes: int | None = None,
                 on_limit: Callable[[int], None] | None = None) -> None:
        self.interval, self.limit, self.on_limit = interval, limit_bytes, on_limit
        self.peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            rss = _rss_bytes()
            self.peak = max(self.peak, rss)
            if self.limit is not None and rss > self.limit and self.on_limit is not None:
                self.on_limit(rss)
                self.on_limit = None

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())


@contextlib.contextmanager
def timed_steps() -> Iterator[list[float]]:
    """Seconds of every optimisation step's forward + backward while the block runs."""
    from mgan_cli.core import engine

    seconds: list[float] = []
    original = engine._Stepper.forward_backward

    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            seconds.append(time.perf_counter() - start)

    engine._Stepper.forward_backward = timed  # type: ignore[method-assign]
    try:
        yield seconds
    finally:
        engine._Stepper.forward_backward = original  # type: ignore[method-assign]


def _low_image(path: Path, size: int, seed: int) -> None:
    """A smooth deterministic RGB picture of ``size``² (the content does not matter for time or memory)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / max(1, size - 1)
    channels = [np.sin(2 * np.pi * (x * rng.uniform(0.5, 2) + y * rng.uniform(0.5, 2) + rng.uniform()))
                for _ in range(3)]
    pixels = ((np.stack(channels, -1) * 0.4 + 0.5) * 255).clip(0, 255).astype(np.uint8)
    Image.fromarray(pixels, "RGB").save(path)


def measure(arch: str, resolution: int, workdir: Path, *, iterations: int = 2, seed: int = 0,
            max_rss_bytes: int | None = None, gpu_memory_gb: float = 139.0, keep: bool = False,
            precision: str = "auto") -> dict[str, Any]:
    """Write, import and run ``arch`` in this process (see the module docstring); the result row as a dict.
    Call it in a fresh process: the peak RSS it reports is the process's."""
    import torch

    from mgan_cli.api import Restorer
    from mgan_cli.run.batching import AUTO, MemoryProbe, choose_batch_size
    from mgan_cli.run.job import RunEvents
    from mgan_cli.weights.importing import import_generator
    from mgan_cli.weights.store import default_store

    row: dict[str, Any] = {"arch": arch, "label": ARCHS[arch].label, "resolution": resolution,
                           "format": ARCHS[arch].format, "finished": False, "error": None,
                           "threads": torch.get_num_threads()}

    def over_limit(rss: int) -> None:
        row["error"] = f"stopped: RSS {rss / GIB:.1f} GiB > --max-rss-gb {max_rss_bytes / GIB:.1f}"  # type: ignore[operator]
        print(RESULT_PREFIX + json.dumps(row), flush=True)
        os._exit(3)

    name = f"bench-full-size-{arch}-{resolution}"
    store = default_store()
    workdir.mkdir(parents=True, exist_ok=True)
    imported = None
    with RssSampler(limit_bytes=max_rss_bytes, on_limit=over_limit) as whole:
        try:
            source = workdir / f"{arch}-{resolution}.pkl"
            start = time.perf_counter()
            written = write_official(arch, resolution, source, seed)
            row["write_s"] = time.perf_counter() - start
            row["file_mb"] = source.stat().st_size / 1e6
            start = time.perf_counter()
            imported = import_generator(source, name, ARCHS[arch].format, store=store, overwrite=True)
            row["import_s"] = time.perf_counter() - start
            info = imported.info
            row["parameters"] = info["parameters"]
            check_import(arch, resolution, info, written)
            source.unlink()

            restorer = Restorer(name, task="superres", device="cpu", precision=precision, scale=8,
                                iterations=iterations)
            inversion = restorer.preset.to_dict()["inversion"]
            row.update(codes=inversion["codes"], layer=inversion["layer"], preset_batch=restorer.preset.batch_size,
                       precision=restorer.engine.precision)
            low = workdir / "low.png"
            _low_image(low, resolution // 8, seed)
            start = time.perf_counter()
            generator = restorer.generator  # loads the generator, moves it, VGG and the degradation
            row["load_s"] = time.perf_counter() - start
            weights_bytes = sum(t.numel() * t.element_size() for t in generator.state_dict().values())
            warnings: list[str] = []
            before = _rss_bytes()
            with RssSampler() as run_memory, timed_steps() as steps:
                start = time.perf_counter()
                outcome = restorer.restore_files([low], workdir / "out", overwrite=True, command=f"bench {arch}",
                                                 events=RunEvents(on_warning=warnings.append))
                row["run_s"] = time.perf_counter() - start
            row["step_s"] = steps
            row["run_rss_before"] = before
            row["run_peak_rss"] = run_memory.peak
            row["per_image_bytes"] = max(0, run_memory.peak - before)
            failed = [r for r in outcome.records if r.status != "ok"]
            if failed:
                raise RuntimeError(f"{failed[0].input}: {failed[0].status}: {failed[0].error}")
            if len(steps) != iterations:
                raise RuntimeError(f"{len(steps)} optimisation steps timed, expected {iterations}")
            row["warnings"] = warnings
            free = int(gpu_memory_gb * GIB) - weights_bytes
            probe = MemoryProbe(per_image_bytes=row["per_image_bytes"], free_bytes=free,
                                total_bytes=int(gpu_memory_gb * GIB))
            row["gpu_batch_estimate"] = choose_batch_size(AUTO, restorer.preset.batch_size, 10 ** 6, "cuda",
                                                          probe).batch_size
            row["finished"] = True
        except Exception as exc:  # the row records it; the other architectures still run
            row["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        finally:
            if imported is not None and not keep:
                shutil.rmtree(imported.folder, ignore_errors=True)
    row["peak_rss"] = max(whole.peak, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return row


# ---- the parent: one child per architecture, the table -------------------------------------------------------

def run_arch(arch: str, resolution: int, workdir: Path, *, iterations: int = 2, seed: int = 0,
             threads: int | None = None, max_rss_gb: float | None = None, gpu_memory_gb: float = 139.0,
             timeout: float | None = None, keep: bool = False, precision: str = "auto") -> dict[str, Any]:
    """:func:`measure` in a fresh Python process (its own peak RSS; a crash or a kill becomes the row's error)."""
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHS)}")
    command = [sys.executable, "-m", "bench.full_size", "--child", arch, "--resolution", str(resolution),
               "--iterations", str(iterations), "--seed", str(seed), "--workdir", str(workdir),
               "--gpu-memory-gb", str(gpu_memory_gb), "--precision", precision]
    if threads:
        command += ["--threads", str(threads)]
    if max_rss_gb:
        command += ["--max-rss-gb", str(max_rss_gb)]
    if keep:
        command.append("--keep")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout)
        returncode, stdout, stderr = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as exc:
        returncode, stdout, stderr = None, exc.stdout or "", f"timed out after {timeout:.0f} s"
        stdout = stdout.decode() if isinstance(stdout, bytes) else stdout
    lines = [line for line in stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if lines:
        row = json.loads(lines[-1][len(RESULT_PREFIX):])
    else:
        tail = (stderr.strip().splitlines() or ["no output"])[-1]
        how = "timed out" if returncode is None else (f"killed by signal {-returncode}" if returncode < 0
                                                      else f"exit status {returncode}")
        row = {"arch": arch, "label": ARCHS[arch].label, "resolution": resolution, "finished": False,
               "error": f"child {how}: {tail[:300]}"}
    row["child_s"] = time.perf_counter() - start
    return row


COLUMNS = ["architecture", "format", "params", "N / ℓ", "import s", "first step s", "s/step", "peak RSS GiB",
           "run Δ RSS GiB (1 image)", "H200 batch (est.)", "finished"]


def _num(value: Any, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def table_row(row: dict[str, Any]) -> list[str]:
    """One architecture's cells, in :data:`COLUMNS` order."""
    steps = row.get("step_s") or []
    later = steps[1:] or steps
    finished = "yes" if row.get("finished") else f"no: {row.get('error') or 'unknown'}"
    return [
        f"{row['label']} {row['resolution']}",
        str(row.get("format", "—")),
        _num(row.get("parameters"), ","),
        f"{row['codes']} / {row['layer']}" if "codes" in row else "—",
        _num(row.get("import_s"), ".2f"),
        _num(steps[0] if steps else None, ".2f"),
        _num(sum(later) / len(later) if later else None, ".2f"),
        _num(row["peak_rss"] / GIB if row.get("peak_rss") else None, ".2f"),
        _num(row["per_image_bytes"] / GIB if row.get("per_image_bytes") is not None else None, ".2f"),
        _num(row.get("gpu_batch_estimate"), "d"),
        finished.replace("|", "/"),
    ]


def table(rows: Sequence[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(table_row(row)) + " |" for row in rows]
    return "\n".join(lines)


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=ROOT).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def report(rows: Sequence[dict[str, Any]], args: argparse.Namespace, argv: Sequence[str]) -> str:
    """The markdown section: header (command, commit, date, machine) and the table."""
    import torch

    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
    threads = {row.get("threads") for row in rows if row.get("threads")}
    precisions = sorted({str(row["precision"]) for row in rows if row.get("precision")})
    return "\n".join([
        f"### Paper generators at full size on the CPU — superres ×8, {args.iterations} steps, "
        f"{args.resolution}×{args.resolution}",
        "",
        f"- command: `{shlex.join(['python', '-m', 'bench.full_size', *argv])}`",
        f"- commit {_git_commit()}, {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}, "
        f"torch {torch.__version__}, CPU {_cpu_name()} ({os.cpu_count()} cores, {memory:.0f} GiB RAM), "
        f"{'/'.join(str(t) for t in sorted(threads)) or '?'} torch thread(s), precision "
        f"{'/'.join(precisions) or args.precision}",
        "- each architecture in its own process: random weights written in the official format (TF pickle for "
        "PGGAN/StyleGAN/StyleGAN2, NVlabs snapshot for StyleGAN3), `mgan weights import`, then `superres --scale 8 "
        f"--iterations {args.iterations}` on one image with the family's default N and ℓ (the import is not "
        "in the step time)",
        "- s/step: forward + backward of the steps after the first (the first includes one-off warm-ups); peak "
        "RSS: the process's maximum (writing and importing included); run Δ RSS: sampled peak during the run "
        "minus RSS before it",
        f"- H200 batch (est.): `choose_batch_size(auto)` with the run Δ RSS as the one-image probe and "
        f"{args.gpu_memory_gb:g} GiB free: an estimate, not a measurement (mgan has no analytic memory model; "
        "the CUDA probe measures the device's own allocations, the CPU's Δ RSS also holds the metrics' models)",
        "",
        table(rows),
        "",
    ])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.full_size", description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", default=",".join(ARCHS), help=f"comma-separated subset of {', '.join(ARCHS)}")
    parser.add_argument("--resolution", type=int, default=1024,
                        help="generator resolution (default 1024; a smoke run uses 32 or 64)")
    parser.add_argument("--iterations", type=int, default=2, help="optimisation steps (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                        help="the run's precision (default auto: bf16 on CPUs with native bf16, else fp32)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--max-rss-gb", type=float, default=None,
                        help="stop an architecture whose RSS grows past this (default: 90%% of physical memory)")
    parser.add_argument("--gpu-memory-gb", type=float, default=139.0,
                        help="free GPU memory for the batch estimate (default 139, an H200)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per architecture (default: none)")
    parser.add_argument("--write", action="store_true", help=f"append the table to {BENCHMARKS.name}")
    parser.add_argument("--json", type=Path, default=None, help="write the rows as JSON to this file")
    parser.add_argument("--keep", action="store_true", help="keep the imported generators in the cache")
    parser.add_argument("--workdir", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.resolution < 32 or args.resolution & (args.resolution - 1) or args.iterations < 2:
        parser.error("--resolution must be a power of two >= 32 and --iterations >= 2")
    args.arch_list = [a.strip() for a in args.archs.split(",") if a.strip()]
    unknown = [a for a in args.arch_list if a not in ARCHS]
    if unknown:
        parser.error(f"unknown architecture(s) {', '.join(unknown)}; choose from {', '.join(ARCHS)}")
    return args


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.child:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        limit = int(args.max_rss_gb * GIB) if args.max_rss_gb else None
        row = measure(args.child, args.resolution, args.workdir, iterations=args.iterations, seed=args.seed,
                      max_rss_bytes=limit, gpu_memory_gb=args.gpu_memory_gb, keep=args.keep,
                      precision=args.precision)
        print(RESULT_PREFIX + json.dumps(row), flush=True)
        return [row]
    max_rss = args.max_rss_gb or 0.9 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
    rows = []
    with tempfile.TemporaryDirectory(prefix="mgan-full-size-") as tmp:
        for arch in args.arch_list:
            print(f"{arch} {args.resolution}...", file=sys.stderr, flush=True)
            row = run_arch(arch, args.resolution, Path(tmp) / arch, iterations=args.iterations, seed=args.seed,
                           threads=args.threads, max_rss_gb=max_rss, gpu_memory_gb=args.gpu_memory_gb,
                           timeout=args.timeout, keep=args.keep, precision=args.precision)
            print("  " + " | ".join(table_row(row)), file=sys.stderr, flush=True)
            rows.append(row)
    text = report(rows, args, argv)
    print(text)
    if args.write:
        with BENCHMARKS.open("a", encoding="utf-8") as handle:
            handle.write("\n" + text)
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
