"""The Chalice control plane (app.py) on a loopback port, served by the runner's front door, and an API user."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from aiohttp import web

from router.server import AppRunner
from runner.chalice_gateway import make_gateway
from runner.front_door import ControlPlane, mount
from tests.support.servers import AppThread


@contextmanager
def control_plane_url(
    workers: int = 8,
    *,
    data_plane: bool = False,
    webui_dir: Path | None = None,
    ui_headers: Mapping[str, str] | None = None,
) -> Iterator[str]:
    """Serve app.py (authorizer included) on loopback as the front door does; yield its base URL. `data_plane`:
    the router's routes too (process-wide authorizer and registry), as `make run` serves them on one port (without
    metering: its EMF lines would land in the output of the CLI tests that run in this process)."""
    from app import app as chalice_app

    def front_door() -> web.Application:
        from router.app import create_app
        from router.settings import RouterSettings

        app = create_app(RouterSettings(metering=False)) if data_plane else web.Application()
        return mount(app, control_plane, webui_dir, ui_headers)

    control_plane = ControlPlane(make_gateway(chalice_app), workers=workers)
    server = AppThread(front_door, runner=AppRunner)
    try:
        yield server.start()
    finally:
        server.stop()
        control_plane.close()


class Client:
    """A user of the API: one token, one requests session."""

    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, body: Any = None, raw: bytes | str | None = None) -> requests.Response:
        """`body` is sent as JSON; `raw` as it is (with a JSON content type), for malformed-body tests."""
        kwargs: dict[str, Any] = {"timeout": 60}
        if raw is not None:
            kwargs["data"] = raw
            kwargs["headers"] = {"Content-Type": "application/json"}
        elif body is not None:
            kwargs["json"] = body
        return self.http.request(method, f"{self.base}{path}", **kwargs)
