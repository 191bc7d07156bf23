"""The session store's errors (a light module: routes map these to HTTP statuses without importing boto3)."""

from __future__ import annotations


class SessionError(Exception):
    """Base of the store's errors; `message` is meant for the API caller."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SessionNotFound(SessionError):
    """No such session for this user."""


class VersionConflict(SessionError):
    """The session changed since the version the write was based on (or already exists on create)."""

    def __init__(self, message: str, current_version: int) -> None:
        super().__init__(message)
        self.current_version = current_version


class SessionTooLarge(SessionError):
    """The write would take the session over the size limit."""

    def __init__(self, message: str, size: int, limit: int) -> None:
        super().__init__(message)
        self.size = size
        self.limit = limit
