"""Errors of the web service layer, mapped to HTTP status codes by the app."""

from __future__ import annotations

from irbis.core.errors import IrbisError


class NotFoundError(IrbisError):
    """A sequence, media file, annotation or individual that does not exist (404)."""


class MovedError(NotFoundError):
    """A sequence id retired by a later ingest; the app redirects (308) to its successor.

    Where the request's path cannot be rewritten it answers like
    :class:`NotFoundError` (404).
    """

    def __init__(self, what: str, old_id: int, new_id: int) -> None:
        super().__init__(f"{what} {old_id} is now {what} {new_id}")
        self.old_id, self.new_id = old_id, new_id


class ConflictError(IrbisError):
    """Someone else changed what the client saw since it loaded it (409)."""


class ForbiddenError(IrbisError):
    """The user's role does not allow the action (403)."""


class UnauthorizedError(IrbisError):
    """No valid token was given on a project that has users (401)."""


class UnsafeFileError(IrbisError):
    """A stored media file that is not a photo or video by its type or bytes (415)."""


class UnreadableMediaError(IrbisError):
    """A photo or video that cannot be decoded, e.g. a damaged file (422)."""


class TooManyAttemptsError(IrbisError):
    """Too many failed logins for a user name or from an address lately (429)."""
