"""Strict JSON from numbers that may be NaN or infinite (an estimate with no upper limit)."""

from __future__ import annotations

import math
from typing import Any


def finite(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by ``None``, recursively.

    Python's ``json`` writes ``NaN``/``Infinity``, which browsers and most JSON
    readers refuse; a confidence limit that does not exist is ``null``.
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(v) for v in obj]
    return obj
