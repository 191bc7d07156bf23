"""Serve an aiohttp application on loopback from a background thread (its own event loop), for sync tests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from aiohttp import web

T = TypeVar("T")


class AppThread:
    """`AppThread(factory).start()` → the base URL; `.stop()` shuts the server and its loop down."""

    def __init__(self, factory: Callable[[], web.Application], handler_cancellation: bool = True) -> None:
        self._factory = factory
        self._handler_cancellation = handler_cancellation
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
        self._runner = web.AppRunner(self.app, handler_cancellation=self._handler_cancellation, access_log=None)
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
