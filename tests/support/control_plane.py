"""The Chalice control plane (app.py) on a loopback port, served by the runner's front door, and an API user."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
from aiohttp import web

from runner.chalice_gateway import make_gateway
from runner.front_door import ControlPlane, mount
from tests.support.servers import AppThread


@contextmanager
def control_plane_url(workers: int = 8) -> Iterator[str]:
    """Serve app.py (authorizer included) on loopback; yield its base URL."""
    from app import app as chalice_app

    control_plane = ControlPlane(make_gateway(chalice_app), workers=workers)
    server = AppThread(lambda: mount(web.Application(), control_plane, None))
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
