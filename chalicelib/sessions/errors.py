"""The session store's errors (a light module: routes map these to HTTP statuses without importing boto3)."""

from __future__ import annotations

from chalicelib.errors import Conflict, LisaError, NotFound, PayloadTooLarge


class SessionError(LisaError):
    """Base of the store's errors; `message` is meant for the API caller. A bare SessionError is a 400."""

    STATUS_CODE = 400
    ERROR_TYPE = "bad_request"


class SessionNotFound(NotFound, SessionError):
    """No such session for this user."""


class VersionConflict(Conflict, SessionError):
    """The session changed since the version the write was based on (or already exists on create)."""

    def __init__(self, message: str, current_version: int) -> None:
        super().__init__(message)
        self.current_version = current_version


class SessionTooLarge(PayloadTooLarge, SessionError):
    """The write would take the session over the size limit."""

    def __init__(self, message: str, size: int, limit: int) -> None:
        super().__init__(message)
        self.size = size
        self.limit = limit
