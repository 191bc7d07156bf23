"""One port for all of local LISA, as API Gateway is in AWS.

The data plane (the router's routes, streaming) is served directly; the web UI is served as static files at `/`;
every other path goes to the Chalice control plane through its local gateway, authorizer included.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aiohttp import web
from chalice.local import LocalGateway, LocalGatewayException

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class ControlPlane:
    """Serves a request through Chalice's LocalGateway on a thread pool (Chalice handlers are synchronous)."""

    def __init__(self, gateway: LocalGateway, workers: int = 8) -> None:
        self._gateway = gateway
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="control-plane")

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        call: Callable[[], dict[str, Any]] = lambda: self._gateway.handle_request(  # noqa: E731
            method=request.method, path=request.path_qs, headers=headers, body=body or None
        )
        try:
            result = await asyncio.get_running_loop().run_in_executor(self._pool, call)
        except LocalGatewayException as error:
            return web.Response(status=error.CODE, body=error.body, headers=_clean(error.headers))
        out_headers = dict(result.get("headers") or {})
        for name, values in (result.get("multiValueHeaders") or {}).items():
            out_headers[name] = ", ".join(values)
        payload = result.get("body")
        if result.get("isBase64Encoded") and payload is not None:
            payload = base64.b64decode(payload)
        out_headers.setdefault("Content-Type", "application/json")
        return web.Response(status=result["statusCode"], body=payload, headers=_clean(out_headers))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _clean(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in _HOP_BY_HOP}


def mount(app: web.Application, control_plane: ControlPlane, webui_dir: Path | None) -> web.Application:
    """Add the web UI and the control-plane catch-all to `app` (the router's application), after its own routes."""
    if webui_dir is not None and (webui_dir / "index.html").is_file():
        index = webui_dir / "index.html"

        async def serve_index(_: web.Request) -> web.FileResponse:
            return web.FileResponse(index, headers={"Cache-Control": "no-cache"})

        app.router.add_get("/", serve_index)
        if (webui_dir / "assets").is_dir():
            app.router.add_static("/assets", webui_dir / "assets")
        for extra in sorted(p for p in webui_dir.iterdir() if p.is_file() and p.name != "index.html"):
            app.router.add_get(f"/{extra.name}", lambda _r, f=extra: web.FileResponse(f))
    app.router.add_route("*", "/{tail:.*}", control_plane.handle)
    return app
