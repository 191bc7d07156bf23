"""The serving surface's refusal, `ServeError` (a `LisaError`), and its one serializer: the OpenAI error object.

Every data-plane route, OpenAI and LISA-native alike, answers errors (and SSE error events) in that one shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib import bounded_json
from chalicelib.contracts.openai import ErrorDetail, ErrorResponse
from chalicelib.errors import LisaError

# OpenAI's `error.type` values used by LISA.
INVALID_REQUEST = "invalid_request_error"
AUTHENTICATION = "authentication_error"
PERMISSION = "permission_error"
NOT_FOUND = "not_found_error"
RATE_LIMIT = "rate_limit_error"
BACKEND = "backend_error"  # the inference backend failed, timed out or cannot be reached
SERVER = "server_error"

_TYPE_BY_STATUS = {401: AUTHENTICATION, 403: PERMISSION, 404: NOT_FOUND, 429: RATE_LIMIT}


class ServeError(LisaError):
    """A request that cannot be served; `status` is the HTTP status, `message` is safe to show the caller.

    The status varies per instance (a backend's answer is relayed), so it is an argument, and the OpenAI
    `error.type` follows from it unless given. `param` names the offending request field (OpenAI's `error.param`,
    LisaError's `field`), `code` is a short machine-readable reason, `headers` go on the error's HTTP response
    (a 429's `Retry-After` and `x-ratelimit-*`).
    """

    ERROR_TYPE = INVALID_REQUEST

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        error_type = type or _TYPE_BY_STATUS.get(status) or (INVALID_REQUEST if status < 500 else BACKEND)
        super().__init__(message, field=param, status=status, error_type=error_type)
        self.code = code
        self.headers = dict(headers or {})

    @property
    def param(self) -> str | None:
        """OpenAI's name for the offending field."""
        return self.field

    @property
    def type(self) -> str:
        """OpenAI's `error.type`."""
        return self.error_type

    def body(self) -> dict[str, Any]:
        """`{"error": {"message", "type", "param", "code"}}`."""
        return error_body(self.message, self.type, self.param, self.code)

    def __repr__(self) -> str:
        return f"ServeError({self.status}, {self.message!r}, param={self.param!r}, code={self.code!r})"


def error_body(message: str, type: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """The OpenAI error object (`contracts.openai.ErrorResponse`)."""
    detail = ErrorDetail(message=message, type=type, param=param, code=code)
    return ErrorResponse(error=detail).model_dump()


def invalid(message: str, param: str | None = None, code: str = "invalid_value", status: int = 400) -> ServeError:
    """A 400 (or `status`) for a request the caller must change."""
    return ServeError(status, message, param=param, code=code, type=INVALID_REQUEST)


def unsupported(param: str, why: str) -> ServeError:
    """A 400 for a parameter LISA cannot honour with the model's backend."""
    return ServeError(400, f"'{param}' is not supported: {why}", param=param, code="unsupported_parameter")


def from_backend(status: int, body: bytes | str, backend: str = "the model backend") -> ServeError:
    """The caller-facing error for a backend's non-2xx answer (TGI/TEI bodies are `{"error", "error_type"}`).

    The backend refusing the request (400/413/422) → 400/413 with its message; overloaded (429) → 429;
    loading or unavailable (503) → 503; anything else → 502.
    """
    message = _backend_message(body)
    if status in (400, 422):
        return ServeError(400, message or f"{backend} refused the request", code="backend_validation")
    if status == 413:
        return ServeError(413, message or "request too large for the model backend", code="too_large")
    if status == 429:
        return ServeError(429, f"{backend} is overloaded, retry later: {message}".rstrip(": "), code="overloaded")
    if status == 503:
        return ServeError(503, f"{backend} is not ready: {message}".rstrip(": "), code="backend_unavailable")
    detail = f" ({message})" if message else ""
    return ServeError(502, f"{backend} failed with HTTP {status}{detail}", code="backend_error", type=BACKEND)


def _backend_message(body: bytes | str) -> str:
    """The human message in a backend's error body, bounded (TGI/TEI `error`, OpenAI `error.message`)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data = bounded_json.loads(text)
    except ValueError:
        return text.strip()[:500]
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            error = error.get("message")
        if isinstance(error, str):
            return error[:1000]
        if isinstance(data.get("message"), str):
            return str(data["message"])[:1000]
    return text.strip()[:500]


def backend_unreachable(backend: str, detail: str) -> ServeError:
    """503: the backend refused the connection or is down."""
    return ServeError(503, f"{backend} is unreachable: {detail}", code="backend_unavailable", type=BACKEND)


def backend_timeout(backend: str, seconds: float) -> ServeError:
    """504: the backend did not answer in time."""
    return ServeError(504, f"{backend} did not answer within {seconds:g} s", code="backend_timeout", type=BACKEND)
