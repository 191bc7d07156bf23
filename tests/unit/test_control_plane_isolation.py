"""Per-request state of the Chalice app under concurrency (the local front door runs it on a thread pool).
The HTTP-level case, one user's write held inside its handler while another user's request runs, is in
test_sessions_api.py."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from chalice.app import Blueprint

from chalicelib.request_context import ConcurrentChalice

WAIT = 30


def test_concurrent_chalice_gives_each_thread_its_own_request_and_lambda_context() -> None:
    """The app class itself, without HTTP: request A is inside its view while request B is dispatched; A still sees
    its own `current_request` and `lambda_context` through the Blueprint, and no request outlives its call."""
    app = ConcurrentChalice(app_name="isolation", configure_logs=False)
    bp = Blueprint(__name__)
    inside, b_done = threading.Event(), threading.Event()

    @bp.route("/who/{name}")
    def who(name: str) -> dict[str, Any]:
        if name == "a":
            inside.set()
            assert b_done.wait(WAIT)
        return {"path": name, "seen": bp.current_request.context["path"], "context": bp.lambda_context}

    app.register_blueprint(bp)

    def event(name: str) -> dict[str, Any]:
        return {
            "requestContext": {"httpMethod": "GET", "resourcePath": "/who/{name}", "path": f"/who/{name}"},
            "headers": {},
            "pathParameters": {"name": name},
            "multiValueQueryStringParameters": None,
            "body": None,
            "stageVariables": {},
        }

    def call_b() -> dict[str, Any]:
        try:
            return app(event("b"), "context-b")
        finally:
            b_done.set()

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(app, event("a"), "context-a")
        assert inside.wait(WAIT)
        second = pool.submit(call_b).result(WAIT)
        answer = first.result(WAIT)
    assert json.loads(answer["body"]) == {"path": "a", "seen": "/who/a", "context": "context-a"}
    assert json.loads(second["body"]) == {"path": "b", "seen": "/who/b", "context": "context-b"}
    assert (app.current_request, app.lambda_context) == (None, None)  # nothing kept after the calls
