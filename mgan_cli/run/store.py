"""The run stores: every record of every run into one output folder, in ``OUT/.mgan/runs-<host>-<I>of<N>.sqlite3``.

Each host and shard (:mod:`mgan_cli.run.sharding`) records into a store file of its own, so **no database
file is ever written from two hosts** (SQLite's locking does not hold across the hosts of a network file
system). Processes of one host and one shard share their store: SQLite (the standard library's
:mod:`sqlite3`, rollback journal, ``synchronous=FULL``) does the locking, and each image's record is one
transaction committed in the same lock as the rename of its PNG, so a record is durable the moment its image
is and always describes the file that is there. (The journal is truncated, not deleted, after each commit.)
How :meth:`RunStore.put` keeps an image and its record together, and decides at that moment whether the
output is still this run's to write, is in its docstring.

Every *decision* and every *view* reads all the stores of ``OUT`` (:class:`StoreReader`): the other stores
read-only, those of this host with SQLite's locks, those of other hosts as ``immutable`` files (no lock, no
journal, nothing written; a read that meets a commit half-done is retried; a rollback journal makes every
committed record part of the database file itself, which is why the stores do not use WAL). Their union
(:func:`merge`) keeps, per (output, input), the newest row (a failure never replaces the record of an
output that is still there) and, per output name, one owner (``ok``/``skipped``): the newest. "Newest" is the
rows' ``updated`` time, so hosts sharing an ``OUT`` need synchronised clocks (NTP), as any cluster has.
``report.json``/``report.csv``/``index.html`` (:mod:`mgan_cli.report.tables`) are views of that union, so a
report is everything recorded in ``OUT`` whatever a single run or shard was given. An ``OUT`` written before
stores were per shard (``runs.sqlite3``) is read like any other store and never written again.

Tables of a store:

* ``runs(id, started, header)``: one per process that ran; ``header`` is the JSON that describes it
  (command, resolved preset, weights' sha256, device, shard, versions; see :func:`mgan_cli.run.files`).
  Across stores a run is named ``<store label>:<id>`` (:attr:`RunStore.label`: ``<host>-<I>of<N>``).
* ``images(output_name, input, status, input_sha256, settings_sha256, run, record, updated)``:
  one per (output file name in ``OUT``, resolved input path). ``run`` names the run that produced the
  output (a skipped image keeps its producer's, which may be another store's). ``record`` is the row as JSON
  (:meth:`ImageRecord.to_json`): task-specific fields live there, so adding one needs no schema change
  (see :mod:`mgan_cli.run.records`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import socket
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mgan_cli.errors import OutputError
from mgan_cli.run.extras import named_files
from mgan_cli.run.records import ImageRecord
from mgan_cli.utils.atomic import StagedFile, make_folder
from mgan_cli.utils.jsonsafe import json_safe

STORE_DIR = ".mgan"
LEGACY_STORE_FILE = "runs.sqlite3"  # the one store of an OUT written before stores were per host and shard
STORE_NAME = re.compile(r"^runs-(?P<host>.+)-(?P<shard>\d+of\d+)\.sqlite3$")
BUSY_TIMEOUT_SECONDS = 120.0
#: how long a read of another host's store retries a commit it met half-done
TORN_READ_SECONDS = 10.0
OWNING = ("ok", "skipped")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started REAL NOT NULL,
    header TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
    output_name TEXT NOT NULL,
    input TEXT NOT NULL,
    status TEXT NOT NULL,
    input_sha256 TEXT,
    settings_sha256 TEXT,
    run TEXT NOT NULL,
    record TEXT NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (output_name, input)
);
"""


@dataclass(frozen=True)
class Identity:
    """What produced an output: the sha256 of the input file's bytes and of the effective settings."""

    input_sha256: str
    settings_sha256: str


@dataclass(frozen=True)
class StoredImage:
    """One row of ``images`` (``row`` is the record as JSON data; ``run`` is ``<store label>:<id>``)."""

    output_name: str
    input: str
    status: str
    identity: Identity | None
    run: str
    row: dict[str, Any]
    updated: float = 0.0


@dataclass(frozen=True)
class Claim:
    """What a run planned an output against: the owner the stores recorded for the output's name when it
    planned (``(run, updated)`` of that row; None: no owner). :meth:`RunStore.put` given a claim commits the
    output only while its owner is still that row, or one with the same input and settings (see there)."""

    owner: tuple[str, float] | None

    @classmethod
    def of(cls, owner: StoredImage | None) -> Claim:
        """The claim of a run that planned when ``owner`` owned the output (None: none did)."""
        return cls(None if owner is None else (owner.run, owner.updated))


class OutputClashError(OutputError):
    """Another run recorded the output, from another input or with other settings, after this run planned it:
    the output is that run's (``owner``), and this run's image is not written."""

    def __init__(self, output_name: str, owner: StoredImage) -> None:
        super().__init__(f"{output_name} was recorded by run {owner.run} after this run planned it")
        self.output_name = output_name
        self.owner = owner


def input_key(path: Path) -> str:
    """How the store names an input: its absolute, resolved path (NUL bytes written as ``\\0``)."""
    text = str(path)
    if "\0" in text:
        return text.replace("\0", "\\0")
    return str(path.resolve())


def host_name() -> str:
    """This host's name as store files spell it (characters other than letters, digits, ``.``, ``_``, ``-``
    become ``_``)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname()) or "localhost"


def store_file(host: str, shard_label: str) -> str:
    """``runs-<host>-<I>of<N>.sqlite3``."""
    return f"runs-{host}-{shard_label}.sqlite3"


def store_label(path: Path) -> str:
    """``<host>-<I>of<N>`` (``runs`` for a store written before stores were per shard)."""
    return path.stem.removeprefix("runs-") if STORE_NAME.match(path.name) else path.stem


def store_host(path: Path) -> str | None:
    match = STORE_NAME.match(path.name)
    return match.group("host") if match else None


def _refuse_links(*paths: Path) -> None:
    for path in paths:
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(mode):
            raise OutputError(f"{path} is a symbolic link; mgan writes only inside the output folder (remove it)")


def _remove_inside(output_dir: Path, path: Path) -> None:
    """Remove the file ``path`` of a folder of ``output_dir`` (gone already: nothing to do); a folder that is a
    symbolic link is never entered."""
    if os.path.islink(path.parent) or not os.path.isdir(path.parent):
        return
    try:
        os.unlink(path)
    except (FileNotFoundError, IsADirectoryError):
        pass
    except OSError as exc:
        raise OutputError(f"{path}: cannot remove this file of a replaced output ({exc.strerror or exc})") from None


def merge(rows: list[StoredImage], output_dir: Path) -> list[StoredImage]:
    """The union of several stores' rows (see the module docstring), ordered by input path."""
    by_key: dict[tuple[str, str], StoredImage] = {}
    for row in sorted(rows, key=lambda r: r.updated):
        key = (row.output_name, row.input)
        before = by_key.get(key)
        if (before is not None and row.status == "failed" and before.status in OWNING
                and os.path.lexists(output_dir / row.output_name)):
            continue  # the file is still what the earlier record says
        by_key[key] = row
    owners: dict[str, StoredImage] = {}
    for row in by_key.values():
        if row.status in OWNING and (row.output_name not in owners or row.updated >= owners[row.output_name].updated):
            owners[row.output_name] = row
    kept = [r for r in by_key.values() if r.status not in OWNING or owners[r.output_name] is r]
    return sorted(kept, key=lambda r: (r.input, r.output_name))


@contextlib.contextmanager
def views_lock(folder: Path) -> Iterator[None]:
    """Serialise the writers of ``OUT``'s views on this host (an advisory lock on the ``OUT/.mgan`` folder
    itself, so no file is needed). Views are written atomically, so writers on other hosts can only make one
    complete view replace another."""
    try:
        descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot open ({exc.strerror or exc})") from None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


class StoreReader:
    """Every run store of ``output_dir`` read together (read-only; see the module docstring)."""

    def __init__(self, output_dir: Path, host: str | None = None) -> None:
        self.output_dir = output_dir
        self.folder = output_dir / STORE_DIR
        self.host = host or host_name()

    def paths(self) -> list[Path]:
        """The store files of ``OUT``, by name."""
        try:
            names = sorted(os.listdir(self.folder))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise OutputError(f"{self.folder}: cannot read ({exc.strerror or exc})") from None
        paths = [self.folder / n for n in names if n == LEGACY_STORE_FILE or STORE_NAME.match(n)]
        _refuse_links(*paths)
        return paths

    def _read(self, path: Path, sql: str, parameters: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of ``sql`` in the store ``path`` (no rows if it has no tables yet)."""
        other_host = store_host(path) not in (None, self.host)
        uri = path.resolve().as_uri() + ("?immutable=1" if other_host else "")
        deadline = time.monotonic() + TORN_READ_SECONDS
        while True:
            try:
                db = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
            except sqlite3.Error as exc:
                raise OutputError(f"{path}: cannot open the run store ({exc})") from None
            try:
                db.execute("PRAGMA query_only=ON")
                return _legacy_columns(db, sql).execute(sql, parameters).fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return []
                error: sqlite3.Error = exc
            except sqlite3.DatabaseError as exc:  # a commit met half-done (another host's store)
                error = exc
            finally:
                db.close()
            if time.monotonic() > deadline:
                raise OutputError(f"{path}: cannot read the run store ({error})") from None
            time.sleep(0.1)

    def _all(self, sql: str, parameters: tuple[Any, ...] = ()) -> list[tuple[Path, tuple[Any, ...]]]:
        return [(path, row) for path in self.paths() for row in self._read(path, sql, parameters)]

    def runs(self) -> dict[str, dict[str, Any]]:
        """Every run's header by ``<store label>:<id>``, oldest first."""
        rows = sorted(self._all("SELECT id, started, header FROM runs"), key=lambda pr: (pr[1][1], str(pr[0])))
        return {f"{store_label(path)}:{run_id}": json.loads(header) for path, (run_id, _, header) in rows}

    def latest_header(self) -> dict[str, Any]:
        """The header of the run that started last ({} when none did)."""
        runs = self.runs()
        return list(runs.values())[-1] if runs else {}

    def _images(self, where: str = "", parameters: tuple[Any, ...] = ()) -> list[StoredImage]:
        return merge([_stored(row) for _, row in self._all(
            f"SELECT {_COLUMNS} FROM images {where}", parameters)], self.output_dir)

    def images(self) -> list[StoredImage]:
        """The union of every store's rows, ordered by input path."""
        return self._images()

    def owners(self) -> dict[str, StoredImage]:
        """Every output's owner (the row whose input and settings made it)."""
        return {r.output_name: r for r in self.images() if r.status in OWNING}

    def owner(self, output_name: str) -> StoredImage | None:
        """The row whose input and settings made ``OUT/output_name`` (None if no run recorded one)."""
        rows = [r for r in self._images("WHERE output_name = ?", (output_name,)) if r.status in OWNING]
        return rows[0] if rows else None


class RunStore(StoreReader):
    """This process's store in ``output_dir`` (host and shard, see the module docstring), reading every
    store of the folder. Safe to use from several threads."""

    def __init__(self, output_dir: Path, shard_label: str = "0of1", host: str | None = None) -> None:
        super().__init__(output_dir, host)
        self.path = self.folder / store_file(self.host, shard_label)
        self.label = store_label(self.path)
        self._lock = threading.RLock()
        make_folder(output_dir, self.folder)
        _refuse_links(self.path, Path(f"{self.path}-journal"))
        try:
            self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None,
                                       check_same_thread=False)
        except sqlite3.Error as exc:
            raise OutputError(f"{self.path}: cannot open the run store ({exc})") from None
        try:
            self._set_up_with_retries()
        except sqlite3.Error as exc:
            self._db.close()
            raise OutputError(f"{self.path}: cannot open the run store ({exc})") from None
        except BaseException:
            self._db.close()
            raise

    def _set_up_with_retries(self) -> None:
        """Rollback journal (truncated, not deleted, after each commit) and the schema. Two processes creating
        the same store at once can make SQLite answer "database is locked" without waiting for its busy
        timeout, so a busy answer is retried until ``BUSY_TIMEOUT_SECONDS`` have passed."""
        deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
        while True:
            try:
                self._db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_SECONDS * 1000)}")
                self._db.execute("PRAGMA journal_mode=TRUNCATE")  # the journal's file stays: a full disk
                # cannot keep the next record from being written
                self._db.execute("PRAGMA synchronous=FULL")
                with self.transaction() as db:
                    for statement in _statements():
                        db.execute(statement)
                return
            except sqlite3.OperationalError as exc:
                busy = "locked" in str(exc) or "busy" in str(exc)
                if not busy or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    # -- transactions -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An exclusive write transaction (``BEGIN IMMEDIATE``): other processes wait for it to end. A database
        error inside it (a read-only or immutable store, a full disk) is rolled back and raised as one
        :class:`OutputError`."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise OutputError(f"{self.path}: cannot write the run store ({exc})") from None
            try:
                yield self._db
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise OutputError(f"{self.path}: cannot write the run store ({self._why(exc)})") from None
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise

    def _why(self, exc: sqlite3.Error) -> str:
        """SQLite's message, and what the file system says when it is full (SQLite cannot open its journal
        then, and only says "unable to open database file")."""
        with contextlib.suppress(OSError):
            room = os.statvfs(self.folder)
            if room.f_bavail == 0 or (room.f_files > 0 and room.f_favail == 0):
                return f"{exc}: {os.strerror(errno.ENOSPC)}"
        return str(exc)

    def _read(self, path: Path, sql: str, parameters: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if path != self.path:
            return super()._read(path, sql, parameters)
        with self._lock:
            try:
                return self._db.execute(sql, parameters).fetchall()
            except sqlite3.Error as exc:
                raise OutputError(f"{self.path}: cannot read the run store ({exc})") from None

    # -- runs -------------------------------------------------------------------------------------
    def begin_run(self, header: dict[str, Any]) -> int:
        """Record a run's header; returns its id in this store (:meth:`run_name` names it across stores)."""
        with self.transaction() as db:
            cursor = db.execute("INSERT INTO runs (started, header) VALUES (?, ?)",
                                (time.time(), json.dumps(json_safe(header), allow_nan=False)))
            return int(cursor.lastrowid or 0)

    def run_name(self, run_id: int) -> str:
        """``<store label>:<id>``: how rows and reports name this store's run ``run_id``."""
        return f"{self.label}:{run_id}"

    def update_run(self, run_id: int, header: dict[str, Any]) -> None:
        with self.transaction() as db:
            db.execute("UPDATE runs SET header = ? WHERE id = ?",
                       (json.dumps(json_safe(header), allow_nan=False), run_id))

    # -- images -----------------------------------------------------------------------------------
    def put(self, record: ImageRecord, output_name: str, input_name: str, identity: Identity | None,
            run: int | str, staged: StagedFile | None = None, claim: Claim | None = None) -> None:
        """Store ``record`` as produced by ``run`` (this store's run id, or a run's name in any store), one
        transaction. A record that owns the output (ok, skipped) replaces any other owner of that output name,
        and once committed, the files beside the output that only the replaced records named
        (:func:`~mgan_cli.run.extras.named_files`: frames of strengths this record has not, a strip, saved
        latents) are removed: they belonged to the output they replaced. A failure never replaces the record of
        an output that is still there (the file is still what that record says).

        With ``staged`` (its PNG, written but not yet in place), the PNG is renamed into place inside the same
        transaction, after the rows and before the commit, so that no other writer of this host can come
        between them. ``staged`` is always used up: renamed into place, or removed.

        * **Who may write the output** is decided here, not only at planning: given the ``claim`` the run
          planned against (none: ``--overwrite``, the later commit wins), an ok record whose output is owned
          now by another row than the claimed one, made from another input or with other settings, raises
          :class:`OutputClashError` and writes nothing: of two runs with other settings into one ``OUT``, the
          second to commit an image gets the clash. The check reads every store of ``OUT`` inside the
          transaction; writers of this host (every shard's) also hold an advisory lock on ``OUT`` for the whole
          of it (:meth:`_images_lock`), so the check, the rename and the commit are one step for them.
        * **A file never survives without its record**: the file the PNG replaces (if any) is first kept aside
          as a hard link, so that if the commit fails (a full disk when SQLite writes its pages; SQLite then
          rolls back by itself) the rename is undone, still under the lock: the old file is put back, or the
          new one removed, and the error is raised (one :class:`OutputError`). Undoing needs no room on the
          disk (renames and unlinks only). Renaming first and committing after, not the other way round,
          keeps a reader that finds the file from believing an owner whose file is not there yet. A process
          killed between the rename and the end of the commit (the time of the commit's writes) can still
          leave the PNG without its record; a rerun then reports it as a clash that ``--overwrite`` resolves.
        """
        run_name = self.run_name(run) if isinstance(run, int) else run
        try:
            if record.status == "failed" and os.path.lexists(self.output_dir / output_name):
                owner = self.owner(output_name)
                if owner is not None and owner.input == input_name:
                    return
            stale: set[Path] = set()
            if record.status in OWNING:
                for replaced in self._images("WHERE output_name = ?", (output_name,)):
                    if replaced.status in OWNING:
                        stale |= named_files(self.output_dir, replaced.row)
                stale -= named_files(self.output_dir, record.to_json())
            with self._lock, self._images_lock():
                self._put(record, output_name, input_name, identity, run_name, staged, claim)
            for path in sorted(stale):
                _remove_inside(self.output_dir, path)
        finally:
            if staged is not None:
                staged.discard()

    def _put(self, record: ImageRecord, output_name: str, input_name: str, identity: Identity | None,
             run_name: str, staged: StagedFile | None, claim: Claim | None) -> None:
        target = self.output_dir / output_name
        aside: Path | None = None
        placed: os.stat_result | None = None  # the PNG this put renamed into place
        try:
            with self.transaction() as db:
                if claim is not None and record.status in OWNING:
                    owner = self.owner(output_name)
                    if (owner is not None and claim.owner != (owner.run, owner.updated)
                            and (owner.input, owner.identity) != (input_name, identity)):
                        raise OutputClashError(output_name, owner)
                if record.status in OWNING:
                    db.execute("DELETE FROM images WHERE output_name = ? AND input != ? "
                               "AND status IN ('ok', 'skipped')", (output_name, input_name))
                db.execute(
                    "INSERT OR REPLACE INTO images (output_name, input, status, input_sha256, settings_sha256, run, "
                    "record, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (output_name, input_name, record.status, identity.input_sha256 if identity else None,
                     identity.settings_sha256 if identity else None, run_name,
                     json.dumps(record.to_json(), allow_nan=False), time.time()))
                if staged is not None:
                    try:
                        aside = _keep_aside(target)
                        staged.commit()
                        placed = os.lstat(target)
                    except OSError as exc:
                        raise OutputError(f"{target}: cannot write ({exc.strerror or exc})") from None
        except BaseException:
            if placed is not None:  # the record is not committed: neither is its PNG
                kept, aside = aside, None  # kept if it cannot be put back
                aside = _put_back(target, placed, kept)
            raise
        finally:
            if aside is not None:
                with contextlib.suppress(OSError):
                    os.unlink(aside)

    def owner_once_written(self, output_name: str) -> StoredImage | None:
        """:meth:`owner`, read once no writer of this host is between renaming ``OUT/output_name`` into place
        and committing its record (a file that is there then has its record, if it has one)."""
        with self._lock, self._images_lock():
            return self.owner(output_name)

    @contextlib.contextmanager
    def _images_lock(self) -> Iterator[None]:
        """An advisory lock (``flock``) on ``OUT`` itself, held by every writer of an image on this host from
        before its transaction until its rename is undone or committed (no file is needed for it, so a full disk
        cannot keep it from being taken). Where the file system has no such locks, SQLite's lock alone
        serialises the writers of one store."""
        try:
            descriptor = os.open(self.output_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise OutputError(f"{self.output_dir}: cannot open ({exc.strerror or exc})") from None
        try:
            with contextlib.suppress(OSError):  # no locks here (ENOLCK, EBADF on NFS): SQLite's lock only
                fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)  # releases the lock

    def close(self) -> None:
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._db.close()


def _keep_aside(target: Path) -> Path | None:
    """A second name (a hard link beside it) for the file at ``target``, so that it can be put back if what
    replaces it is not recorded. None when there is no file, or the file system has no hard links: undoing
    then removes the new file, and the old record describes a missing output, which the next run redoes."""
    if not os.path.lexists(target):
        return None
    for _ in range(100):
        aside = target.with_name(f".mgan-{os.urandom(6).hex()}.aside")
        try:
            os.link(target, aside, follow_symlinks=False)
            return aside
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
                return None
            raise
    raise FileExistsError(errno.EEXIST, "no free name to keep the old file aside", str(target))


def _put_back(target: Path, placed: os.stat_result, aside: Path | None) -> Path | None:
    """Undo the rename of a PNG whose record was not committed: put back the file kept ``aside`` (or remove
    the PNG when there was none). Returns the aside file if it could not be put back (it is then kept)."""
    try:
        now = os.lstat(target)
        if (now.st_dev, now.st_ino) == (placed.st_dev, placed.st_ino):
            if aside is not None:
                os.replace(aside, target)
                return None
            os.unlink(target)
        return aside
    except FileNotFoundError:
        return aside
    except OSError as exc:
        raise OutputError(f"{target}: its record could not be committed, and the file could not be taken back "
                          f"({exc.strerror or exc}); the file before it is kept as {aside}") from None


_COLUMNS = "output_name, input, status, input_sha256, settings_sha256, run, record, updated"


def _legacy_columns(db: sqlite3.Connection, sql: str) -> sqlite3.Connection:
    """A store written before stores were per shard names its runs by ``run_id``: a view makes it read alike."""
    if " images" in sql:
        columns = {row[1] for row in db.execute("PRAGMA table_info(images)")}
        if "run" not in columns and "run_id" in columns:
            db.execute("PRAGMA query_only=OFF")  # a TEMP view lives in this connection only: the file is untouched
            db.execute("CREATE TEMP VIEW IF NOT EXISTS images AS SELECT output_name, input, status, input_sha256, "
                       "settings_sha256, 'runs:' || run_id AS run, record, updated FROM main.images")
            db.execute("PRAGMA query_only=ON")
    return db


def _statements() -> list[str]:
    return [s.strip() for s in _SCHEMA.split(";") if s.strip()]


def _stored(row: tuple[Any, ...]) -> StoredImage:
    output_name, input_name, status, input_sha, settings_sha, run, record, updated = row
    identity = Identity(input_sha, settings_sha) if input_sha and settings_sha else None
    return StoredImage(output_name, input_name, status, identity, str(run), json.loads(record), float(updated))
