"""Serve an aiohttp application on loopback from a background thread (its own event loop), for sync tests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from aiohttp import ClientSession, web

T = TypeVar("T")
_UPSTREAM_SESSION: web.AppKey[ClientSession] = web.AppKey("upstream_session", ClientSession)


class AppThread:
    """`AppThread(factory).start()` → the base URL; `.stop()` shuts the server and its loop down."""

    def __init__(
        self,
        factory: Callable[[], web.Application],
        handler_cancellation: bool = True,
        runner: type[web.AppRunner] = web.AppRunner,
    ) -> None:
        """`runner`: how the app is served (LISA's servers use `router.server.AppRunner`)."""
        self._factory = factory
        self._handler_cancellation = handler_cancellation
        self._runner_class = runner
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="app-thread")
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.app: web.Application | None = None

    def start(self) -> str:
        self._thread.start()
        self.call(self._start())
        return self.url

    async def _start(self) -> None:
        self.app = self._factory()
        self._runner = self._runner_class(self.app, handler_cancellation=self._handler_cancellation, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run `coroutine` on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def stop(self) -> None:
        if self._runner is not None:
            self.call(self._runner.cleanup())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def stage_path_proxy(upstream: str, stage: str) -> web.Application:
    """What API Gateway does to a deployed LISA: all of it (UI, control plane, streaming data plane) under
    `/<stage>/` of another origin. Anything requested without the prefix gets a 404."""
    session_key = _UPSTREAM_SESSION
    hop_by_hop = {"host", "content-length", "transfer-encoding", "content-encoding", "connection"}

    async def forward(request: web.Request) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in hop_by_hop}
        async with request.app[session_key].request(
            request.method,
            f"{upstream.rstrip('/')}/{request.match_info['tail']}",
            params=request.query,
            headers=headers,
            data=await request.read() if request.can_read_body else None,  # no invented Content-Type on GETs
            allow_redirects=False,
        ) as answer:
            kept = {k: v for k, v in answer.headers.items() if k.lower() not in hop_by_hop}
            response = web.StreamResponse(status=answer.status, headers=kept)
            await response.prepare(request)
            async for chunk in answer.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    async def client(app: web.Application) -> Any:
        app[session_key] = ClientSession()
        yield
        await app[session_key].close()

    app = web.Application()
    app.cleanup_ctx.append(client)
    app.router.add_route("*", f"/{stage}/{{tail:.*}}", forward)
    return app
