"""HTTP plumbing of the router: JSON and error responses, SSE responses, and the per-handler error guard.

Errors are answered in OpenAI's shape `{"error": {"message", "type", "param", "code"}}` on every route, the
LISA-native ones included. The guard wraps each of the router's handlers (not the whole application), so routes the
local runner adds after the router's (the control plane, the web UI) keep their own behaviour.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aws_lambda_powertools import Logger

from chalicelib.auth.errors import AuthError
from chalicelib.serve import sse
from chalicelib.serve.errors import INVALID_REQUEST, NOT_FOUND, SERVER, ServeError, error_body
from router.accounting import USAGE_KEY, Accounting

logger = Logger(service="lisa-router")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
SSE_HEADERS = {"Content-Type": sse.CONTENT_TYPE, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
LOG_KEY: web.RequestKey[dict[str, Any]] = web.RequestKey("lisa_log", dict)


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A compact JSON response."""
    return web.Response(body=_dumps(payload).encode(), status=status, content_type="application/json", headers=headers)


def error_response(error: ServeError) -> web.Response:
    """A ServeError as its HTTP response (the OpenAI error object)."""
    headers = {"WWW-Authenticate": 'Bearer realm="lisa"'} if error.status == 401 else None
    return json_response(error.body(), error.status, headers)


@web.middleware
async def json_http_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp's own refusals (no such route: 404, wrong method: 405, ...) as the JSON error object.

    For a standalone router (`python -m router`); a host that mounts the router's routes keeps its own behaviour."""
    try:
        return await handler(request)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        if isinstance(error, web.HTTPMethodNotAllowed):
            allowed = sorted(error.allowed_methods)
            body = error_body(
                f"method {request.method} is not allowed on {request.path} (allowed: {', '.join(allowed)})",
                INVALID_REQUEST,
                code="method_not_allowed",
            )
            return json_response(body, 405, {"Allow": ",".join(allowed)})
        if error.status == 404:
            return json_response(error_body(f"no route {request.path}", NOT_FOUND, code="not_found"), 404)
        message = error.reason or "request refused"
        return json_response(error_body(message, INVALID_REQUEST, code=f"http_{error.status}"), error.status)


def auth_error(error: AuthError) -> ServeError:
    """The authorizer's refusal as a ServeError (400 / 401 / 403 / 503)."""
    codes = {400: "ambiguous_credentials", 401: "invalid_api_key", 403: "forbidden", 503: "auth_unavailable"}
    return ServeError(error.status, error.message, code=codes.get(error.status))


async def read_body(request: web.Request) -> bytes:
    """The request body; 413 if it exceeds the router's limit."""
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        limit = request.client_max_size
        raise ServeError(413, f"request body is larger than the limit of {limit} bytes", code="too_large") from None


async def open_sse(request: web.Request) -> web.StreamResponse:
    """Start a 200 `text/event-stream` response (headers sent now)."""
    response = web.StreamResponse(status=200, headers=SSE_HEADERS)
    await response.prepare(request)
    return response


def note(request: web.Request, **fields: Any) -> None:
    """Add fields to the request's access-log line (model, tokens, ...)."""
    log = request.get(LOG_KEY)
    if log is not None:
        log.update(fields)


def guarded(
    handler: Handler, access_log: bool = True, *, operation: str = "", accounting: Accounting | None = None
) -> Handler:
    """`handler` with LISA's error contract: ServeError/AuthError → their JSON error; anything else → logged 500.

    Each request gets a `RequestUsage` (router/accounting.py) for `operation`, published to `accounting`'s listeners
    when the request is over (a cancelled request, whose client went away, included)."""
    accounting = accounting or Accounting()

    async def guard(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        log: dict[str, Any] = {}
        request[LOG_KEY] = log
        usage = request[USAGE_KEY] = accounting.open(operation)
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except ServeError as error:
            status = error.status
            log["error"] = error.message
            return error_response(error)
        except AuthError as error:
            status = error.status
            log["error"] = error.message
            return error_response(auth_error(error))
        except web.HTTPException as error:
            status = error.status
            raise
        except asyncio.CancelledError:
            usage.disconnected = True
            raise
        except Exception:
            logger.exception("unhandled error", path=request.path)
            return json_response(error_body("internal error; it has been logged", SERVER, code="internal"), 500)
        finally:
            usage.finish(status, time.perf_counter() - started)
            accounting.publish(usage)
            if access_log or usage.status >= 500:
                level = logger.info if usage.status < 500 else logger.warning
                if usage.model is not None:
                    log.update(prompt_tokens=usage.prompt_tokens, tokens=usage.completion_tokens)
                level(
                    "request",
                    method=request.method,
                    path=request.path,
                    status=status,
                    ms=round(usage.latency * 1000, 2),
                    **log,
                )

    return guard
