"""The registry's errors (a light module: routes map these to HTTP statuses without importing boto3)."""

from __future__ import annotations

from collections.abc import Iterable

from chalicelib.errors import BadRequest, Conflict, LisaError, NotFound


class RegistryError(LisaError):
    """Base of the registry's errors; `message` is meant for the API caller."""


class ModelNotFound(NotFound, RegistryError):
    """No model has this id/name; `known` lists the names that do exist, when the caller has them."""

    def __init__(self, name: str, known: Iterable[str] | None = None, message: str | None = None) -> None:
        self.name = name
        self.known = sorted(known) if known is not None else None
        if message is None:
            message = f"model {name!r} is not registered"
            if self.known is not None:
                message += f"; known models: {', '.join(self.known) or 'none'}"
        super().__init__(message)


class ModelConflict(Conflict, RegistryError):
    """The write lost a race or contradicts the stored state: the model already exists, or its version moved on.

    `current_version` is the stored version when known (None if the model no longer exists).
    """

    def __init__(self, message: str, current_version: int | None = None) -> None:
        super().__init__(message)
        self.current_version = current_version


class InvalidModel(BadRequest, RegistryError):
    """The change would leave the record invalid (e.g. an inference container that cannot serve its type)."""
