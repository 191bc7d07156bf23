"""Per-request usage accounting in the router: one `RequestUsage` per data-plane request, handed to listeners.

`guarded` (router/http.py) opens a `RequestUsage` for every request of the router's routes; the handlers fill it:
the caller once authorized (`Services.caller`), the model once resolved (`Services.model`), and the prompt and
completion tokens as the backend reports them (`count_tokens`; a stream counts its tokens as they arrive, so a
stream cut short counts what was produced). When the request is over (after a stream's last byte, also when the
client disconnects or the backend fails), every listener is called with it, once.

Register a listener on the router's application before it starts:

    from router.accounting import add_listener
    app = create_app()
    add_listener(app, listener)          # listener(usage: RequestUsage) -> None

or pass `create_app(usage_listeners=[listener])`. A listener runs on the event loop, inline at the end of each
request, so it must be fast and must not do I/O: it appends to a buffer (or a queue) that a background task of its
own flushes; a listener with such a task starts and stops it with the app (`app.cleanup_ctx`, see
router/metering.py). An exception a listener raises is logged and swallowed: a listener never fails a request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web
from aws_lambda_powertools import Logger

if TYPE_CHECKING:
    from chalicelib.auth.principal import Principal

logger = Logger(service="lisa-router")

CLIENT_CLOSED = 499
"""The status of a request whose client went away before its answer was complete (nginx's convention)."""


@dataclass(slots=True)
class RequestUsage:
    """What one data-plane request used. Filled while the request runs; final when listeners see it.

    `route` is the operation id (`createChatCompletion`, `generateStream`, ...); `started` the wall-clock start
    (UNIX seconds, from the router's clock: the UTC day it is counted in); `latency` seconds until the last byte.
    `status` is the request's outcome: the HTTP status sent, except a stream that failed after its 200 (the error
    event's status) and a client that disconnected first (`CLIENT_CLOSED`). `principal` is None when the request
    was refused before it was authorized, `model` None until the model was resolved (listings, unknown models).
    """

    route: str
    started: float
    principal: Principal | None = None
    model: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    status: int = 0
    latency: float = 0.0
    disconnected: bool = False
    stream_status: int | None = None

    @property
    def token_id(self) -> str | None:
        """The caller's API token id (None for a JWT or an unauthorized request)."""
        return self.principal.token_id if self.principal is not None else None

    @property
    def is_error(self) -> bool:
        """Whether the request failed (status >= 400, disconnects included)."""
        return self.status >= 400

    def tokens(self, prompt: int | None = None, completion: int | None = None) -> None:
        """Set the token counts the backend reported (each given figure replaces the one recorded so far)."""
        if prompt is not None:
            self.prompt_tokens = prompt
        if completion is not None:
            self.completion_tokens = completion

    def produced(self, count: int = 1) -> None:
        """Add `count` completion tokens a stream produced (for backends that report the total only at the end)."""
        self.completion_tokens += count

    def finish(self, http_status: int, latency: float) -> None:
        """Close the record: its outcome status and its latency."""
        self.latency = latency
        if self.stream_status is not None:
            self.status = self.stream_status
        elif self.disconnected:
            self.status = CLIENT_CLOSED
        else:
            self.status = http_status


UsageListener = Callable[[RequestUsage], None]
"""Called on the event loop with each finished request: no I/O, no waiting (see the module docstring)."""


@dataclass
class Accounting:
    """The router's listeners and its clock (injectable, so tests choose the day a request is counted in)."""

    clock: Callable[[], float] = time.time
    listeners: list[UsageListener] = field(default_factory=list)

    def add(self, listener: UsageListener) -> None:
        """Call `listener` with every finished request from now on."""
        self.listeners.append(listener)

    def open(self, route: str) -> RequestUsage:
        """A new request's record."""
        return RequestUsage(route, self.clock())

    def publish(self, usage: RequestUsage) -> None:
        """Hand a finished request to every listener; a failing listener is logged, never raised."""
        for listener in self.listeners:
            try:
                listener(usage)
            except Exception:
                logger.exception("usage listener failed", listener=repr(listener))


ACCOUNTING_KEY: web.AppKey[Accounting] = web.AppKey("lisa_router_accounting", Accounting)
USAGE_KEY: web.RequestKey[RequestUsage] = web.RequestKey("lisa_usage", RequestUsage)


def add_listener(app: web.Application, listener: UsageListener) -> None:
    """Register `listener` on a router application (from `router.app.create_app`)."""
    app[ACCOUNTING_KEY].add(listener)


def usage_of(request: web.Request) -> RequestUsage:
    """The request's record (a detached one if the handler runs without `guarded`, so handlers need not check)."""
    usage = request.get(USAGE_KEY)
    if usage is None:
        usage = RequestUsage(request.path, time.time())
        request[USAGE_KEY] = usage
    return usage


def count_tokens(request: web.Request, prompt: int | None = None, completion: int | None = None) -> None:
    """Record the token counts the backend reported for this request (see `RequestUsage.tokens`)."""
    usage_of(request).tokens(prompt, completion)
