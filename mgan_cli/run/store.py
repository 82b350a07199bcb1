"""The run store: every record of every run into one output folder, in ``OUT/.mgan/runs.sqlite3``.

SQLite (the standard library's :mod:`sqlite3`) in WAL mode does the locking, so several processes
(two ``mgan`` commands, ``torchrun`` ranks) can write into one ``OUT``: each image's record is one
transaction, committed in the same lock as the rename of its PNG, so a record is durable the moment its
image is and always describes the file that is there. ``report.json``/``report.csv`` (and any other view,
see :mod:`mgan_cli.report.tables`) are written from the store, so a report is the union of everything recorded
in ``OUT`` whatever a single run was given. (SQLite's WAL needs the processes on one host; on a network
file system shared by several hosts, point each host at its own ``OUT``.)

Tables:

* ``runs(id, started, header)``: one per process that ran; ``header`` is the JSON that describes it
  (command, resolved preset, weights' sha256, device, versions; see :func:`mgan_cli.cli.restore`).
* ``images(output_name, input, status, input_sha256, settings_sha256, run_id, record, updated)``:
  one per (output file name in ``OUT``, resolved input path). ``run_id`` is the run that produced the
  output (a skipped image keeps its producer's). ``record`` is the row as JSON
  (:meth:`ImageRecord.to_json`): task-specific fields live there, so adding one needs no schema change
  (see :mod:`mgan_cli.run.records`). At most one row per ``output_name`` is ``ok``/``skipped``: the one
  whose input and settings made the file.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mgan_cli.errors import OutputError
from mgan_cli.run.records import ImageRecord
from mgan_cli.utils.atomic import StagedFile, make_folder
from mgan_cli.utils.jsonsafe import json_safe

STORE_DIR = ".mgan"
STORE_FILE = "runs.sqlite3"
BUSY_TIMEOUT_SECONDS = 120.0

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
    run_id INTEGER NOT NULL REFERENCES runs(id),
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
    """One row of ``images`` (``row`` is the record as JSON data)."""

    output_name: str
    input: str
    status: str
    identity: Identity | None
    run_id: int
    row: dict[str, Any]


def input_key(path: Path) -> str:
    """How the store names an input: its absolute, resolved path (NUL bytes written as ``\\0``)."""
    text = str(path)
    if "\0" in text:
        return text.replace("\0", "\\0")
    return str(path.resolve())


def _refuse_links(*paths: Path) -> None:
    for path in paths:
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(mode):
            raise OutputError(f"{path} is a symbolic link; mgan writes only inside the output folder (remove it)")


class RunStore:
    """The store of one output folder (see the module docstring). Safe to use from several threads."""

    def __init__(self, output_dir: Path) -> None:
        self.output_dir = output_dir
        self.folder = output_dir / STORE_DIR
        self.path = self.folder / STORE_FILE
        self._lock = threading.RLock()
        make_folder(output_dir, self.folder)
        _refuse_links(self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm"), Path(f"{self.path}-journal"))
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
        """WAL mode and the schema. Two processes creating the same store at once can make SQLite answer
        "database is locked" to the journal-mode switch without waiting for its busy timeout, so a busy
        answer is retried until ``BUSY_TIMEOUT_SECONDS`` have passed."""
        deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
        while True:
            try:
                self._db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_SECONDS * 1000)}")
                self._db.execute("PRAGMA journal_mode=WAL")
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
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise OutputError(f"{self.path}: cannot write the run store ({exc})") from None
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise OutputError(f"{self.path}: cannot write the run store ({exc})") from None

    def _query(self, sql: str, parameters: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._db.execute(sql, parameters).fetchall()
            except sqlite3.Error as exc:
                raise OutputError(f"{self.path}: cannot read the run store ({exc})") from None

    # -- runs -------------------------------------------------------------------------------------
    def begin_run(self, header: dict[str, Any]) -> int:
        """Record a run's header; returns its id (the ``run`` of the rows it produces)."""
        with self.transaction() as db:
            cursor = db.execute("INSERT INTO runs (started, header) VALUES (?, ?)",
                                (time.time(), json.dumps(json_safe(header), allow_nan=False)))
            return int(cursor.lastrowid or 0)

    def update_run(self, run_id: int, header: dict[str, Any]) -> None:
        with self.transaction() as db:
            db.execute("UPDATE runs SET header = ? WHERE id = ?",
                       (json.dumps(json_safe(header), allow_nan=False), run_id))

    def runs(self) -> dict[int, dict[str, Any]]:
        """Every run's header by id, oldest first."""
        return {int(i): json.loads(h) for i, h in self._query("SELECT id, header FROM runs ORDER BY id")}

    # -- images -----------------------------------------------------------------------------------
    def owner(self, output_name: str) -> StoredImage | None:
        """The row whose input and settings made ``OUT/output_name`` (None if no run recorded one)."""
        rows = self._query(f"SELECT {_COLUMNS} FROM images WHERE output_name = ? AND status IN ('ok', 'skipped') "
                           "ORDER BY updated DESC LIMIT 1", (output_name,))
        return _stored(rows[0]) if rows else None

    def images(self) -> list[StoredImage]:
        """Every row, ordered by input path."""
        return [_stored(r) for r in self._query(f"SELECT {_COLUMNS} FROM images ORDER BY input, output_name")]

    def put(self, record: ImageRecord, output_name: str, input_name: str, identity: Identity | None, run_id: int,
            staged: StagedFile | None = None) -> None:
        """Store ``record`` (one transaction). With ``staged`` (its PNG, written but not yet in place), the
        PNG is renamed into place inside the same transaction, so file and record always agree. A record
        that owns the output (ok, skipped) replaces any other owner of that output name. A failure never
        replaces the record of an output that is still there (the file is still what that record says)."""
        with self.transaction() as db:
            if record.status == "failed" and os.path.lexists(self.output_dir / output_name):
                owned = db.execute("SELECT 1 FROM images WHERE output_name = ? AND input = ? AND status IN "
                                   "('ok', 'skipped')", (output_name, input_name)).fetchall()
                if owned:
                    return
            if staged is not None:
                try:
                    staged.commit()
                except OSError as exc:
                    raise OutputError(f"{staged.path}: cannot write ({exc.strerror or exc})") from None
            if record.status in ("ok", "skipped"):
                db.execute("DELETE FROM images WHERE output_name = ? AND input != ? AND status IN ('ok', 'skipped')",
                           (output_name, input_name))
            db.execute(
                "INSERT OR REPLACE INTO images (output_name, input, status, input_sha256, settings_sha256, run_id, "
                "record, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (output_name, input_name, record.status, identity.input_sha256 if identity else None,
                 identity.settings_sha256 if identity else None, run_id,
                 json.dumps(record.to_json(), allow_nan=False), time.time()))

    def close(self) -> None:
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._db.close()


_COLUMNS = "output_name, input, status, input_sha256, settings_sha256, run_id, record"


def _statements() -> list[str]:
    return [s.strip() for s in _SCHEMA.split(";") if s.strip()]


def _stored(row: tuple[Any, ...]) -> StoredImage:
    output_name, input_name, status, input_sha, settings_sha, run_id, record = row
    identity = Identity(input_sha, settings_sha) if input_sha and settings_sha else None
    return StoredImage(output_name, input_name, status, identity, int(run_id), json.loads(record))
