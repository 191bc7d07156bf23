"""How LISA's aiohttp servers answer at the HTTP level: the standalone router (`python -m router`) and the local
front door both serve through `AppRunner` here.

- Requests the HTTP parser refuses (a header or the request line over MAX_FIELD_SIZE bytes, more than MAX_HEADERS
  headers, malformed syntax) get a JSON `{"message": ...}` (431 for the header limits, else 400) that quotes none of
  the request, and one warning line in the log (aiohttp's default: a text/plain 400 echoing part of the offending
  header, and an ERROR traceback per request). They are refused before any route is known, so they answer in the
  shape API Gateway's own refusals have.
- Errors no handler turned into a response (a bug) are a JSON 500; aiohttp still logs their traceback.
- No response names the server software: `Server: LISA` replaces `Python/3.x aiohttp/x.y`, and every response
  carries `X-Content-Type-Options: nosniff`.
aiohttp has no hook for its protocol class or its parser's error responses (aio-libs/aiohttp#3287), so the runner
hands its server a RequestHandler subclass.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aws_lambda_powertools import Logger

logger = Logger(service="lisa-router")

SERVER = "LISA"
# aiohttp's own defaults, named: what a request line / one header may hold, and how many headers a request may have.
MAX_FIELD_SIZE = 8190
MAX_HEADERS = 128
ALWAYS = {"Server": SERVER, "X-Content-Type-Options": "nosniff"}


def refusal(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """A refusal made before (or instead of) a route's handler: `{"message": ...}`, as API Gateway words its own."""
    return web.Response(
        status=status,
        body=json.dumps({"message": message}).encode(),
        content_type="application/json",
        headers={**ALWAYS, **(headers or {})},
    )


def _parser_refusal(error: HttpProcessingError) -> tuple[int, str]:
    if isinstance(error, LineTooLong):
        return 431, f"a request header (or the request line) is longer than {MAX_FIELD_SIZE} bytes"
    if "too many headers" in error.message.lower():
        return 431, f"a request may carry at most {MAX_HEADERS} headers"
    return 400, f"malformed HTTP request ({type(error).__name__})"


class _Protocol(RequestHandler):
    def handle_error(
        self, request: Any, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        if isinstance(exc, HttpProcessingError) and status < 500:
            status, text = _parser_refusal(exc)
            logger.warning("request refused by the HTTP parser", status=status, reason=text, remote=request.remote)
        else:  # aiohttp logs it (with its traceback: a bug) and checks that nothing was sent yet
            super().handle_error(request, status, exc, message)
            text = "internal error; it has been logged" if status == 500 else "the request timed out"
        response = refusal(status, text)
        response.force_close()
        return response


class _Server(web.Server):
    def __call__(self) -> RequestHandler:
        return _Protocol(self, loop=self._loop, **self._kwargs)


async def _identify(_: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(ALWAYS)


class AppRunner(web.AppRunner):
    """`web.AppRunner` with LISA's HTTP-level answers (module docstring); takes the same arguments."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        app.on_response_prepare.append(_identify)
        kwargs = {
            "max_line_size": MAX_FIELD_SIZE,
            "max_field_size": MAX_FIELD_SIZE,
            "max_headers": MAX_HEADERS,
            **kwargs,
        }
        super().__init__(app, **kwargs)

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _Server  # the same server, making _Protocol connections (no public hook for that)
        return server


def run(app: web.Application, host: str, port: int, started: Callable[[str], None]) -> None:
    """Serve `app` until SIGINT/SIGTERM, as `web.run_app` does, through `AppRunner`; `started` gets the URL."""

    async def serve() -> None:
        runner = AppRunner(app, handle_signals=True, handler_cancellation=True, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
            started(f"http://{host}:{port}")
            await asyncio.Event().wait()  # until a signal raises GracefulExit
        finally:
            await runner.cleanup()

    with contextlib.suppress(web.GracefulExit, KeyboardInterrupt):
        asyncio.run(serve())
