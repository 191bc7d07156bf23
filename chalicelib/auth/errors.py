"""The one exception every authentication failure raises."""

from __future__ import annotations

from chalicelib.errors import Unauthorized


class AuthError(Unauthorized):
    """A refused request.

    `status` is 401 for missing or invalid credentials, 400 for ambiguous ones (a credential header sent twice),
    403 for an authenticated caller who may not do this, and 503 when a credential cannot be checked right now
    (token store or identity provider unreachable): one class, since the authorizer and the router relay the status.
    `message` is safe to show the caller.
    """

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message, status=status)

    def __repr__(self) -> str:
        return f"AuthError({self.message!r}, status={self.status})"
