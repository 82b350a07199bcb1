"""Report files and pages that mgan replaces only when it wrote them.

mgan writes its reports into folders users share with their own files: a task run's views of ``OUT``'s run store
(``report.json``, ``report.csv``, ``index.html``: *report*), ``mgan metrics -o FILE`` and its page (*metrics*),
``mgan analyze``'s ``analysis.json``/``.csv``/``.html`` (*analysis*). Each kind has its own file names, so the
kinds coexist in one folder (the run report's page and the analysis page link each other). Before any work,
and again before each write, a writer calls :func:`check_replaceable`: a file already at the path is replaced
only when mgan wrote it as that kind (a JSON report with that kind's keys, a CSV with that kind's first
columns, a page with that kind's ``<meta name="generator">``); anything else (the user's own file, another
kind's report, a link, a folder) is one :class:`OutputError` naming it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from mgan_cli.errors import OutputError

KINDS = ("report", "metrics", "analysis")
_JSON_KEYS = {"report": ("summary", "runs", "images"), "metrics": ("metrics", "settings", "images"),
              "analysis": ("means", "rows", "layers")}
_CSV_HEADS = {"report": "input,output,status,", "metrics": "name", "analysis": "input,layer,codes,"}
_DESCRIBED = {"report": "a run report", "metrics": "a metrics report", "analysis": "an analysis"}
#: a JSON report larger than this is not read to be recognised (mgan's own stay far below)
MAX_JSON_BYTES = 1 << 30


def page_mark(kind: str) -> str:
    """The tag in the ``<head>`` of every page of ``kind`` mgan writes."""
    return f'<meta name="generator" content="mgan {kind}">'


def written_by_mgan(path: Path, kind: str) -> bool:
    """Whether ``path`` is a regular file that mgan wrote as a report or page of ``kind``."""
    if path.is_symlink() or not path.is_file():
        return False
    suffix = path.suffix.lower()
    try:
        if suffix in (".html", ".htm"):
            with open(path, "rb") as handle:
                return page_mark(kind).encode() in handle.read(4096)
        if suffix == ".csv":
            with open(path, "rb") as handle:
                return handle.readline(4096).decode("utf-8", "replace").startswith(_CSV_HEADS[kind])
        if suffix == ".json" and path.stat().st_size <= MAX_JSON_BYTES:
            document = json.loads(path.read_text(encoding="utf-8"))
            return isinstance(document, dict) and all(key in document for key in _JSON_KEYS[kind])
    except (OSError, ValueError):
        return False
    return False


def check_replaceable(path: Path, kind: str, why: str = "") -> None:
    """Raise :class:`OutputError` when something is at ``path`` that mgan did not write as ``kind`` (``why``:
    what else to say, e.g. that the folder has no run store)."""
    if os.path.lexists(path) and (why or not written_by_mgan(path, kind)):
        reason = why or f"it is not {_DESCRIBED[kind]} mgan wrote"
        raise OutputError(f"{path} already exists and {reason}; mgan does not replace it (remove it, or choose "
                          "another -o)")
