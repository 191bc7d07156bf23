"""Calls to the inference backends over one shared, pooled aiohttp session.

Failures become `ServeError`s: connection refused / unreachable → 503, no answer in time → 504, the backend
refusing the request → 400 with its message, a backend failure → 502 (see `chalicelib.serve.errors.from_backend`).
Connection failures are `ConnectionFailed`: the router re-reads the registry before answering them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from chalicelib import bounded_json
from chalicelib.serve import sse
from chalicelib.serve.errors import ServeError, backend_timeout, backend_unreachable, from_backend
from router.settings import RouterSettings

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_JSON_HEADERS = {"Content-Type": "application/json"}
_STREAM_HEADERS = {"Content-Type": "application/json", "Accept": "text/event-stream"}


def new_session(settings: RouterSettings) -> aiohttp.ClientSession:
    """The router's one client session: pooled keep-alive connections, no per-request DNS, no cookies."""
    connector = aiohttp.TCPConnector(
        limit=settings.max_connections,
        limit_per_host=0,
        keepalive_timeout=settings.keepalive_seconds,
        ttl_dns_cache=300,
        enable_cleanup_closed=False,
    )
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=True,
        skip_auto_headers=("User-Agent",),
        raise_for_status=False,
    )


class ConnectionFailed(ServeError):
    """The backend's address took no request (`sent` False: refused, unreachable, connecting timed out) or dropped
    one without an answer (`sent` True). Either way the model may have stopped or moved since the router's registry
    snapshot: the caller re-reads the registry (router/services.py `refreshing`)."""

    def __init__(self, error: ServeError, *, sent: bool) -> None:
        super().__init__(error.status, error.message, param=error.param, code=error.code, type=error.type)
        self.sent = sent


def _disconnected(backend_label: str) -> ConnectionFailed:
    return ConnectionFailed(ServeError(502, f"{backend_label} closed the connection without answering"), sent=True)


class Backend:
    """POSTs JSON to model backends; `call` for answers, `stream` for server-sent event streams."""

    def __init__(self, session: aiohttp.ClientSession, settings: RouterSettings) -> None:
        self.session = session
        self.settings = settings
        self._call_timeout = aiohttp.ClientTimeout(
            total=settings.request_timeout, sock_connect=settings.connect_timeout
        )
        self._stream_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=settings.connect_timeout, sock_read=settings.stream_idle_timeout
        )

    async def call(
        self, url: str, payload: Any, backend_label: str, *, expect: type = dict, idempotent: bool = False
    ) -> tuple[Any, dict[str, str]]:
        """POST `payload` as JSON; returns (the JSON answer, of type `expect`, and the response headers).

        A connection the backend closed without answering is retried once on a fresh one only when `idempotent`
        (embeddings): the backend may have received a generation request and run it, so that is never sent twice."""
        body = _dumps(payload).encode()
        for attempt in (1, 2) if idempotent else (2,):
            try:
                async with self.session.post(
                    url, data=body, headers=_JSON_HEADERS, timeout=self._call_timeout
                ) as response:
                    raw = await response.read()
                    if response.status >= 400:
                        raise from_backend(response.status, raw, backend_label)
                    try:
                        answer = bounded_json.loads(raw, "the answer")
                    except ValueError:
                        raise ServeError(502, f"{backend_label} answered with something other than JSON") from None
                    if not isinstance(answer, expect):
                        kind = "an object" if expect is dict else f"a JSON {expect.__name__}"
                        raise ServeError(502, f"{backend_label} answered with JSON that is not {kind}")
                    return answer, dict(response.headers)
            except aiohttp.ServerDisconnectedError:
                if attempt == 2:  # a pooled connection the backend had just closed: retry once on a fresh one
                    raise _disconnected(backend_label) from None
            except aiohttp.ClientError as error:
                raise self._client_error(error, backend_label, self.settings.request_timeout) from None
            except TimeoutError:
                raise backend_timeout(backend_label, self.settings.request_timeout) from None
        raise AssertionError("unreachable")  # pragma: no cover

    @asynccontextmanager
    async def stream(self, url: str, payload: Any, backend_label: str) -> AsyncIterator[aiohttp.ClientResponse]:
        """POST `payload` and yield the open streaming response once it answered 2xx (closed on exit)."""
        body = _dumps(payload).encode()
        try:  # streams are generations: a connection closed without an answer is never retried (see `call`)
            response = await self.session.post(url, data=body, headers=_STREAM_HEADERS, timeout=self._stream_timeout)
        except aiohttp.ServerDisconnectedError:
            raise _disconnected(backend_label) from None
        except aiohttp.ClientError as error:
            raise self._client_error(error, backend_label, self.settings.stream_idle_timeout) from None
        except TimeoutError:
            raise backend_timeout(backend_label, self.settings.stream_idle_timeout) from None
        try:
            if response.status >= 400:
                try:
                    raw = await response.read()
                except (aiohttp.ClientError, TimeoutError):
                    raw = b""
                raise from_backend(response.status, raw, backend_label)
            yield response
        finally:
            response.close()  # never back to the pool half-read: the backend sees the disconnect and stops

    async def events(self, response: aiohttp.ClientResponse, backend_label: str) -> AsyncIterator[sse.Event]:
        """The server-sent events of an open stream; a silence longer than the idle timeout or a broken
        connection raises ServeError (504 / 502)."""
        decoder = sse.SSEDecoder()
        try:
            async for chunk in response.content.iter_any():
                for event in decoder.feed(chunk):
                    yield event
        except (aiohttp.ServerTimeoutError, TimeoutError):
            raise ServeError(
                504,
                f"{backend_label} sent nothing for {self.settings.stream_idle_timeout:g} s",
                code="backend_timeout",
            ) from None
        except aiohttp.ClientError as error:
            raise ServeError(502, f"{backend_label} broke off the stream: {error or type(error).__name__}") from None
        for event in decoder.close():
            yield event

    @staticmethod
    def _client_error(error: aiohttp.ClientError, backend_label: str, timeout: float) -> ServeError:
        if isinstance(error, aiohttp.ConnectionTimeoutError):
            return ConnectionFailed(backend_unreachable(backend_label, "connecting timed out"), sent=False)
        if isinstance(error, aiohttp.ServerTimeoutError):
            return backend_timeout(backend_label, timeout)
        if isinstance(error, aiohttp.ClientConnectorError):
            detail = f"cannot connect to {error.host}:{error.port} ({error.os_error})"
            return ConnectionFailed(backend_unreachable(backend_label, detail), sent=False)
        if isinstance(error, aiohttp.ClientConnectionError):
            return ServeError(502, f"{backend_label}: connection failed ({error or type(error).__name__})")
        return ServeError(502, f"{backend_label}: {error or type(error).__name__}")
