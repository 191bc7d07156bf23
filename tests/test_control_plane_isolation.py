"""Per-request state of the control plane under concurrency: the Chalice app served by the local front door on its
thread pool, with moto for DynamoDB and real tokens through the real authorizer. Each interleaving is forced
deterministically (one request held inside its handler while another one runs), not hoped for."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from chalice.app import Blueprint

from chalicelib.auth.authorizer import get_authorizer
from chalicelib.auth.tokens import TokenStore
from tests.support.control_plane import Client, control_plane_url

WAIT = 30


@pytest.fixture(scope="module")
def api_url(moto_server: str) -> Iterator[str]:
    with control_plane_url(workers=4) as url:
        yield url


@pytest.fixture
def users(aws_env: str, api_url: str) -> tuple[Client, Client]:
    get_authorizer().clear_cache()
    store = TokenStore()
    return Client(api_url, store.create(username="alice")[0]), Client(api_url, store.create(username="bob")[0])


def _hold_first_call(target: Callable[..., Any]) -> tuple[Callable[..., Any], threading.Event, threading.Event]:
    """`target` wrapped so its first call waits (after signalling `held`) until a later call has started."""
    held, second, calls = threading.Event(), threading.Event(), []
    lock = threading.Lock()

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with lock:
            calls.append(1)
            first = len(calls) == 1
        if first:
            held.set()
            assert second.wait(WAIT), "the second request never reached its handler"
        else:
            second.set()
        return target(*args, **kwargs)

    return wrapper, held, second


def test_a_write_held_while_another_user_lists_is_stored_for_its_own_caller(
    users: tuple[Client, Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reported misfiling: alice's PUT /sessions/{id} is paused inside its handler (after reading its body, before
    asking who the caller is) while bob's listing runs; the session must still be alice's."""
    import chalicelib.sessions.store as sessions_store

    alice, bob = users
    hook, held, _ = _hold_first_call(sessions_store.get_store)
    monkeypatch.setattr(sessions_store, "get_store", hook)  # the handlers look it up per call
    with ThreadPoolExecutor(2) as pool:
        put = pool.submit(alice.call, "PUT", "/sessions/mine", {"messages": [{"role": "user", "content": "secret"}]})
        assert held.wait(WAIT)
        listed = pool.submit(bob.call, "GET", "/sessions").result(WAIT)
        written = put.result(WAIT)
    assert listed.json() == {"sessions": []}
    assert written.status_code == 201, written.text
    monkeypatch.undo()
    mine = alice.call("GET", "/sessions/mine")
    assert mine.status_code == 200, f"alice's session was filed under another user: {mine.text}"
    assert mine.json()["messages"][0]["content"] == "secret"
    assert bob.call("GET", "/sessions/mine").status_code == 404
    assert bob.call("GET", "/sessions").json() == {"sessions": []}


def test_concurrent_chalice_gives_each_thread_its_own_request_and_lambda_context() -> None:
    """The app class itself, without HTTP: request A is inside its view while request B is dispatched; A still sees
    its own `current_request` and `lambda_context` through the Blueprint, and no request outlives its call."""
    from chalicelib.request_context import ConcurrentChalice

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
