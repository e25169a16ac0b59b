"""Checks on text that comes in from people and files.

PostgreSQL text cannot hold the NUL character (``\\x00``) and SQLite would
store it silently; neither is a character anyone means to type. Every place
where text enters irbis (web requests, registry and Camtrap DP tables, CLI
arguments) refuses it with one line naming where it was.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from irbis.core.errors import BadInputError

__all__ = ["MAX_CELL", "NUL_HINT", "NUL_REASON", "cell_limit", "check_no_nul", "has_nul"]

#: Longest table cell irbis reads (Python's csv default): longer is a broken quote.
MAX_CELL = 131_072


@contextmanager
def cell_limit(limit: int = MAX_CELL) -> Iterator[None]:
    """Read CSV with cells limited to ``limit`` characters, whatever the process set.

    ``csv.field_size_limit`` is process-wide and other libraries raise it; the
    readers of people's tables hold it at irbis's limit while they read.
    """
    old = csv.field_size_limit(limit)
    try:
        yield
    finally:
        csv.field_size_limit(old)

NUL_REASON = "contains a NUL character (\\x00)"
NUL_HINT = "remove it: text cannot hold NUL; re-save the file as plain UTF-8 text"


def has_nul(value: object) -> bool:
    """Whether a string, or any string inside lists, tuples, sets and dicts, holds NUL."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(has_nul(v) for v in value)
    return False


def check_no_nul(values: Iterable[tuple[str, object]], where: str, hint: str = NUL_HINT) -> None:
    """Raise :class:`BadInputError` for the first ``(name, value)`` whose value holds NUL.

    The error reads ``where: NAME contains a NUL character (\\x00) (hint)``.
    """
    for name, value in values:
        if has_nul(value):
            raise BadInputError(where, f"{name} {NUL_REASON}", hint)
