"""The one place mgan makes values strict-JSON safe: JSON has no infinity or NaN.

``±inf`` (e.g. the PSNR of an image identical to its reference) becomes the string ``"inf"``/``"-inf"``
(which ``float()`` and spreadsheets read back as infinity); NaN (undefined) becomes ``null``.
"""

from __future__ import annotations

import math
from typing import Any


def json_safe(value: Any) -> Any:
    """``value`` (nested dicts, lists, tuples) with non-finite floats replaced as the module docstring says.

    >>> json_safe({"psnr": float("inf"), "loss": float("nan"), "notes": [1.5]})
    {'psnr': 'inf', 'loss': None, 'notes': [1.5]}
    """
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
