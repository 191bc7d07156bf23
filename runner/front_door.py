"""One port for all of local LISA, as API Gateway is in AWS.

The data plane (the router's routes under `/v1/`, streaming) is served directly; the web UI is served as static
files at `/`; every other path goes to the Chalice control plane through its local gateway, authorizer included.
Errors keep one rule, the deployed API's: under `/v1/` the router answers (OpenAI's `{"error": {...}}`, its own
404 / 405 included); anywhere else a request no route serves is `404 {"message": "no route serves ..."}` (API
Gateway's MISSING_AUTHENTICATION_TOKEN response as LISA overrides it), other refusals before a handler are
`{"message": ...}` too, and the control plane's handlers answer in Chalice's shape. Serve it with
`router.server.AppRunner` (JSON for what the HTTP parser refuses, no `Server` banner).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aiohttp import web
from chalice.local import LocalGateway, LocalGatewayException

from chalicelib.gateway import NO_ROUTE
from chalicelib.webui import UI_PAGES
from router.http import Handler, json_http_errors
from router.server import refusal
from runner.chalice_gateway import RequestHeaders

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}
DATA_PLANE_PREFIX = "/v1/"  # what API Gateway hands to the router (gpu_stack's DATA_PLANE_PATHS)


class ControlPlane:
    """Serves a request through Chalice's LocalGateway on a thread pool (Chalice handlers are synchronous)."""

    def __init__(self, gateway: LocalGateway, workers: int = 8) -> None:
        self._gateway = gateway
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="control-plane")

    async def handle(self, request: web.Request) -> web.Response:
        """Forward one request to the Chalice local gateway (in a thread: its handlers block)."""
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return refusal(413, f"request body is larger than the limit of {request.client_max_size} bytes")
        headers = RequestHeaders((k, v) for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP)
        call: Callable[[], dict[str, Any]] = lambda: self._gateway.handle_request(  # noqa: E731
            method=request.method, path=request.path_qs, headers=headers, body=body or None
        )
        try:
            result = await asyncio.get_running_loop().run_in_executor(self._pool, call)
        except LocalGatewayException as error:  # the gateway's own refusals: JSON bodies
            out = {"Content-Type": "application/json", **_clean(error.headers)}
            return web.Response(status=error.CODE, body=error.body, headers=out)
        out_headers = dict(result.get("headers") or {})
        for name, values in (result.get("multiValueHeaders") or {}).items():
            out_headers[name] = ", ".join(values)
        payload = result.get("body")
        if result.get("isBase64Encoded") and payload is not None:
            payload = base64.b64decode(payload)
        out_headers.setdefault("Content-Type", "application/json")
        return web.Response(status=result["statusCode"], body=payload, headers=_clean(out_headers))

    def close(self) -> None:
        """Shut the thread pool down at exit: queued requests are cancelled, running ones are not waited for."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def _clean(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in _HOP_BY_HOP}


@web.middleware
async def _http_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp's own refusals (no route, no such UI file) as JSON, in the shape of the plane the path belongs to."""
    if request.path.startswith(DATA_PLANE_PREFIX):
        return await json_http_errors(request, handler)
    try:
        return await handler(request)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return refusal(error.status, NO_ROUTE if error.status == 404 else (error.reason or "request refused"))


def _file_handler(path: Path) -> Callable[[web.Request], Awaitable[web.FileResponse]]:
    """A GET handler for one file of the UI's top folder (favicon, manifest, ...)."""

    async def serve_file(_: web.Request) -> web.FileResponse:
        return web.FileResponse(path)

    return serve_file


def mount(
    app: web.Application,
    control_plane: ControlPlane,
    webui_dir: Path | None,
    ui_headers: Mapping[str, str] | None = None,
) -> web.Application:
    """Add the web UI and the control-plane catch-all to `app` (the router's application), after its own routes.

    `ui_headers` (chalicelib.webui.security.ui_security_headers) go on every response of the UI's page and files.
    """
    ui: set[web.AbstractResource | None] = set()
    if webui_dir is not None and (webui_dir / "index.html").is_file():
        pages = {path: webui_dir / name for path, name in UI_PAGES.items() if (webui_dir / name).is_file()}

        async def serve_page(request: web.Request) -> web.FileResponse:
            return web.FileResponse(pages[request.path], headers={"Cache-Control": "no-cache"})

        for path in pages:
            ui.add(app.router.add_get(path, serve_page).resource)
        if (webui_dir / "assets").is_dir():
            assets = webui_dir / "assets"

            async def serve_asset(request: web.Request) -> web.FileResponse:
                # One flat folder of hashed bundle names, as the deployed `/assets/{file}` integration serves it.
                name = request.match_info["file"]
                if name.startswith(".") or not (assets / name).is_file():
                    raise web.HTTPNotFound()
                return web.FileResponse(assets / name, headers={"Cache-Control": "public, max-age=31536000, immutable"})

            ui.add(app.router.add_get("/assets/{file:[^/]+}", serve_asset).resource)
        for extra in sorted(p for p in webui_dir.iterdir() if p.is_file() and p.name not in UI_PAGES.values()):
            ui.add(app.router.add_get(f"/{extra.name}", _file_handler(extra)).resource)
    if ui and ui_headers:
        headers = dict(ui_headers)

        async def harden(request: web.Request, response: web.StreamResponse) -> None:
            if request.match_info.route.resource in ui:
                response.headers.update(headers)

        app.on_response_prepare.append(harden)
    # Everything but the data plane: unknown `/v1/...` paths and methods stay the router's 404 / 405.
    prefix = DATA_PLANE_PREFIX.strip("/")
    app.router.add_route("*", f"/{{tail:(?!{prefix}/).*}}", control_plane.handle)
    app.middlewares.append(_http_errors)
    return app
