"""HTML pages from Jinja2 templates with autoescaping on: every value a template prints is HTML-escaped (text
and attributes alike) unless the code marks it :class:`~markupsafe.Markup` on purpose (only the pages' own
constant style and script are). Escaping is the default, not a duty at each interpolation.

Bidirectional-text controls in names (U+202E RIGHT-TO-LEFT OVERRIDE and its kin) are shown as visible
``⟨U+202E⟩`` marks by :func:`visible_text`, so a file name never displays reordered.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import jinja2
from markupsafe import Markup

__all__ = ["Markup", "render", "visible_text"]

#: the Unicode controls that reorder text (embeddings, overrides, isolates, marks)
_BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def visible_text(text: Any) -> str:
    """``text`` as a string with every bidirectional control replaced by a visible ``⟨U+XXXX⟩`` mark."""
    return _BIDI_CONTROLS.sub(lambda match: f"⟨U+{ord(match.group()):04X}⟩", str(text))


@cache
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                                     lstrip_blocks=True, keep_trailing_newline=True)
    environment.filters["visible"] = visible_text
    return environment


@cache
def _template(source: str) -> jinja2.Template:
    return _environment().from_string(source)


def render(source: str, **context: Any) -> str:
    """The template ``source`` rendered with ``context``; every printed value is escaped unless it is Markup."""
    return _template(source).render(**context)
