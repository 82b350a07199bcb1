"""Small wording helpers shared by the commands and the library's warnings."""

from __future__ import annotations


def skipped_line(path: object, error: object) -> str:
    """``skipped PATH: why``, where an ``error`` that already starts with ``PATH: `` is not repeated.

    >>> skipped_line("a.png", "a.png: not a readable image"), skipped_line("a.png", "too small")
    ('skipped a.png: not a readable image', 'skipped a.png: too small')
    """
    text = str(error)
    return f"skipped {text}" if text.startswith(f"{path}: ") else f"skipped {path}: {text}"
