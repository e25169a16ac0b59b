"""Errors irbis raises on purpose.

Every error meant for a person names the file or row at fault and says what to
do, in one line: rangers and researchers read these at a field station.
"""

from __future__ import annotations

# Characters str.splitlines() breaks at, shown escaped in messages.
_LINE_BREAKS = str.maketrans(
    {c: repr(c)[1:-1] for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"}
)


class IrbisError(Exception):
    """Base class of every error irbis raises deliberately."""


class BadInputError(IrbisError):
    """An input file or row that irbis cannot use.

    Parameters
    ----------
    where:
        The file path, or ``file:row``, at fault.
    reason:
        What is wrong, in a few words.
    hint:
        What the user can do about it.
    """

    def __init__(self, where: str, reason: str, hint: str = "") -> None:
        self.where = where
        self.reason = reason
        self.hint = hint
        msg = f"{where}: {reason}"
        if hint:
            msg += f" ({hint})"
        # One line whatever the input held (a quoted CSV header cell can hold a newline).
        super().__init__(msg.translate(_LINE_BREAKS))


class RegistryError(BadInputError):
    """A station, camera or deployment description that contradicts itself or others."""


class ProjectError(IrbisError):
    """A project folder or database that is missing, locked or of the wrong version."""
