"""LISA's one error model: every refusal is a LisaError carrying its HTTP status and error type.

Chalice's own errors carry their status as a class attribute (`class NotFoundError(ChaliceViewError):
STATUS_CODE = 404`); LISA's do the same, and add the error type and the offending field. Each surface has one
serializer that turns a LisaError into its wire shape (Chalice's `{"Code", "Message"}` for the control plane, the
OpenAI error object for the router, the TGI/TEI shapes for the workers). This module imports nothing but the
standard library, so the workers and the light route modules can use it without loading boto3 or Chalice.
"""

from __future__ import annotations

from typing import ClassVar


class LisaError(Exception):
    """A request LISA refuses; the message is safe to show the caller.

    The class says the status and type; an instance may override them where one exception class covers several
    statuses (a backend's answer relayed, a credential that is invalid (401) or cannot be checked now (503)).
    `field` names the offending request field or key path (`messages.0.content`), when there is one.
    """

    STATUS_CODE: ClassVar[int] = 500
    ERROR_TYPE: ClassVar[str] = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        status: int | None = None,
        error_type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.status = self.STATUS_CODE if status is None else status
        self.error_type = self.ERROR_TYPE if error_type is None else error_type

    def __repr__(self) -> str:
        field = f", field={self.field!r}" if self.field is not None else ""
        return f"{type(self).__name__}({self.message!r}, status={self.status}{field})"


class BadRequest(LisaError):
    """400: a request the caller must change."""

    STATUS_CODE = 400
    ERROR_TYPE = "bad_request"


class Unauthorized(LisaError):
    """401: no credential, or one that is not valid."""

    STATUS_CODE = 401
    ERROR_TYPE = "unauthorized"


class Forbidden(LisaError):
    """403: an authenticated caller who may not do this."""

    STATUS_CODE = 403
    ERROR_TYPE = "forbidden"


class NotFound(LisaError):
    """404: nothing of that name, or nothing the caller may see (never say which)."""

    STATUS_CODE = 404
    ERROR_TYPE = "not_found"


class Conflict(LisaError):
    """409: the write contradicts the stored state (exists already, or changed under the write)."""

    STATUS_CODE = 409
    ERROR_TYPE = "conflict"


class PayloadTooLarge(LisaError):
    """413: the request, or what it would make, is over a size limit."""

    STATUS_CODE = 413
    ERROR_TYPE = "payload_too_large"


class Unprocessable(LisaError):
    """422: well-formed, but its content cannot be used (retrying the same input cannot succeed)."""

    STATUS_CODE = 422
    ERROR_TYPE = "unprocessable"


class TooManyRequests(LisaError):
    """429: over a rate or concurrency limit; worth a retry later."""

    STATUS_CODE = 429
    ERROR_TYPE = "too_many_requests"


class BadGateway(LisaError):
    """502: a backend LISA relies on failed."""

    STATUS_CODE = 502
    ERROR_TYPE = "bad_gateway"


class ServiceUnavailable(LisaError):
    """503: something needed is not configured, not ready or unreachable right now; worth a retry."""

    STATUS_CODE = 503
    ERROR_TYPE = "service_unavailable"


class GatewayTimeout(LisaError):
    """504: a backend did not answer in time."""

    STATUS_CODE = 504
    ERROR_TYPE = "gateway_timeout"
