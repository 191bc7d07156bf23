"""The sessions API over real HTTP: the Chalice app behind the local front door on loopback, moto server for
DynamoDB, real API tokens through the real authorizer. Isolation, concurrency (real threads, and interleavings
forced deterministically: one request held inside its handler while another one runs), bad input, 413."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from chalicelib import aws
from chalicelib.auth.authorizer import get_authorizer
from chalicelib.auth.tokens import TokenStore
from chalicelib.sessions.store import MAX_SESSION_BYTES
from testkit.oidc_issuer import OidcIssuer
from tests.support.control_plane import Client, control_plane_url


@pytest.fixture(scope="module")
def api_url(moto_server: str) -> Iterator[str]:
    """The control plane (app.py) served on a loopback port by the runner's front door."""
    with control_plane_url(workers=16) as url:
        yield url


@pytest.fixture
def users(aws_env: str, api_url: str) -> tuple[Client, Client]:
    get_authorizer().clear_cache()
    store = TokenStore()
    alice, _ = store.create(username="alice")
    bob, _ = store.create(username="bob")
    return Client(api_url, alice), Client(api_url, bob)


_WAIT = 30


def _message(content: str, role: str = "user") -> dict[str, Any]:
    return {"role": role, "content": content}


def _error(response: requests.Response) -> str:
    return str(response.json().get("Message") or response.json().get("message"))


def test_lifecycle_create_list_get_update_append_delete(users: tuple[Client, Client]) -> None:
    alice, _ = users
    created = alice.call(
        "PUT",
        "/sessions/s1",
        {"messages": [_message("Hello there")], "parameters": {"model": "smollm2", "temperature": 0.2, "topK": 5}},
    )
    assert created.status_code == 201, created.text
    assert created.json()["version"] == 1
    assert created.json()["name"] == "Hello there"
    appended = alice.call("POST", "/sessions/s1/messages", {"messages": [_message("Hi! How can I help?", "assistant")]})
    assert appended.status_code == 200, appended.text
    assert (appended.json()["firstIndex"], appended.json()["version"]) == (1, 2)
    renamed = alice.call("PUT", "/sessions/s1", {"name": "Greetings", "version": 2})
    assert renamed.status_code == 200, renamed.text
    listed = alice.call("GET", "/sessions").json()["sessions"]
    assert [(s["sessionId"], s["name"], s["messageCount"]) for s in listed] == [("s1", "Greetings", 2)]
    assert "messages" not in listed[0]
    got = alice.call("GET", "/sessions/s1").json()
    assert [m["content"] for m in got["messages"]] == ["Hello there", "Hi! How can I help?"]
    assert got["parameters"] == {
        "model": "smollm2",
        "systemPrompt": None,
        "temperature": 0.2,
        "topK": 5,
        "topP": None,
        "maxTokens": None,
        "ragEnabled": False,
        "repositoryId": None,
    }
    assert alice.call("DELETE", "/sessions/s1").status_code == 200
    assert alice.call("GET", "/sessions/s1").status_code == 404
    assert alice.call("DELETE", "/sessions/s1").status_code == 404


def test_a_user_can_never_read_overwrite_or_delete_another_users_session(users: tuple[Client, Client]) -> None:
    alice, bob = users
    assert alice.call("PUT", "/sessions/private", {"name": "alice's secret", "messages": [_message("s3cr3t")]}).ok
    assert alice.call("PUT", "/sessions/second", {"name": "alice's other"}).ok

    assert bob.call("GET", "/sessions").json() == {"sessions": []}
    assert bob.call("GET", "/sessions/private").status_code == 404
    assert bob.call("PUT", "/sessions/private", {"name": "bob was here", "version": 1}).status_code == 404
    assert bob.call("POST", "/sessions/private/messages", {"messages": [_message("x")]}).status_code == 404
    assert bob.call("DELETE", "/sessions/private").status_code == 404
    # bob may use the same id: it names his own session, not alice's.
    assert bob.call("PUT", "/sessions/private", {"name": "bob's"}).status_code == 201
    assert bob.call("DELETE", "/sessions").json() == {"deleted": 1}

    mine = alice.call("GET", "/sessions/private").json()
    assert (mine["name"], mine["version"], [m["content"] for m in mine["messages"]]) == (
        "alice's secret",
        1,
        ["s3cr3t"],
    )
    assert {s["sessionId"] for s in alice.call("GET", "/sessions").json()["sessions"]} == {"private", "second"}
    assert alice.call("DELETE", "/sessions").json() == {"deleted": 2}
    assert alice.call("GET", "/sessions").json() == {"sessions": []}


@pytest.fixture
def idp(aws_env: str) -> Iterator[OidcIssuer]:
    """An OIDC issuer the control plane accepts JWTs from (alongside API tokens)."""
    with OidcIssuer(client_id="lisa-ui") as issuer, pytest.MonkeyPatch.context() as env:
        env.setenv("LISA_AUTHORITY", issuer.issuer)
        env.setenv("LISA_CLIENT_ID", issuer.client_id)
        aws.reset()
        get_authorizer().clear_cache()
        yield issuer
    aws.reset()
    get_authorizer().clear_cache()


def test_a_token_user_and_an_oidc_user_of_the_same_name_never_share_sessions(api_url: str, idp: OidcIssuer) -> None:
    token, _ = TokenStore().create(username="alice")
    by_token = Client(api_url, token)
    by_oidc = Client(api_url, idp.mint(username="alice"))
    assert by_token.call("PUT", "/sessions/mine", {"name": "token alice", "messages": [_message("t")]}).ok
    assert by_oidc.call("PUT", "/sessions/other", {"name": "oidc alice", "messages": [_message("o")]}).ok

    assert [s["name"] for s in by_token.call("GET", "/sessions").json()["sessions"]] == ["token alice"]
    assert [s["name"] for s in by_oidc.call("GET", "/sessions").json()["sessions"]] == ["oidc alice"]
    assert by_oidc.call("GET", "/sessions/mine").status_code == 404
    assert by_token.call("GET", "/sessions/other").status_code == 404
    assert by_oidc.call("DELETE", "/sessions/mine").status_code == 404
    assert by_oidc.call("DELETE", "/sessions").json() == {"deleted": 1}
    assert by_token.call("GET", "/sessions/mine").json()["name"] == "token alice"


def test_oidc_users_are_owners_by_subject_not_by_preferred_username(api_url: str, idp: OidcIssuer) -> None:
    first = Client(api_url, idp.mint({"sub": "user-1"}, username="alice"))
    second = Client(api_url, idp.mint({"sub": "user-2"}, username="alice"))
    assert first.call("PUT", "/sessions/s", {"name": "first"}).ok
    assert second.call("GET", "/sessions").json() == {"sessions": []}


def test_requests_without_valid_credentials_are_refused(users: tuple[Client, Client], api_url: str) -> None:
    assert requests.get(f"{api_url}/sessions", timeout=10).status_code == 401
    bad = requests.get(f"{api_url}/sessions", headers={"Authorization": "Bearer lisa_not-a-token"}, timeout=10)
    assert bad.status_code == 401
    assert bad.json()["message"]
    for value in (b"Bearer lisa_\xff\xfe", "Bearer lisa_ü".encode(), b"Bearer \xed\xa0\x80"):  # not ASCII: 401
        odd = requests.get(f"{api_url}/sessions", headers={"Authorization": value}, timeout=10)
        assert (odd.status_code, "ASCII" in odd.json()["message"]) == (401, True), odd.text


def test_concurrent_appends_from_real_threads_never_lose_a_message(users: tuple[Client, Client]) -> None:
    alice, _ = users
    assert alice.call("PUT", "/sessions/busy", {"messages": [_message("start")]}).status_code == 201
    writers, per_writer = 8, 10

    def write(writer: int) -> list[int]:
        client = Client(alice.base, alice.http.headers["Authorization"].removeprefix("Bearer "))
        indexes = []
        for i in range(per_writer):
            response = client.call("POST", "/sessions/busy/messages", {"messages": [_message(f"w{writer}-{i}")]})
            assert response.status_code == 200, response.text
            indexes.append(response.json()["firstIndex"])
        return indexes

    with ThreadPoolExecutor(writers) as pool:
        reported = [index for indexes in pool.map(write, range(writers)) for index in indexes]

    session = alice.call("GET", "/sessions/busy").json()
    contents = [m["content"] for m in session["messages"]]
    assert len(contents) == 1 + writers * per_writer
    assert sorted(contents[1:]) == sorted(f"w{w}-{i}" for w in range(writers) for i in range(per_writer))
    for writer in range(writers):  # each writer's messages keep their order
        own = [c for c in contents if c.startswith(f"w{writer}-")]
        assert own == [f"w{writer}-{i}" for i in range(per_writer)]
    assert sorted(reported) == list(range(1, 1 + writers * per_writer))  # every append got its own slot
    assert session["version"] == 1 + writers * per_writer
    assert session["messageCount"] == len(contents)


def test_concurrent_versioned_puts_conflict_instead_of_overwriting(users: tuple[Client, Client]) -> None:
    """Each writer rewrites the whole message list; stale versions get 409 and retry, so none is lost."""
    alice, _ = users
    assert alice.call("PUT", "/sessions/edits", {}).status_code == 201
    writers, conflicts = 6, []

    def write(writer: int) -> None:
        client = Client(alice.base, alice.http.headers["Authorization"].removeprefix("Bearer "))
        while True:
            current = client.call("GET", "/sessions/edits").json()
            messages = [*current["messages"], _message(f"edit {writer}")]
            response = client.call("PUT", "/sessions/edits", {"messages": messages, "version": current["version"]})
            if response.status_code == 409:
                conflicts.append(_error(response))
                continue
            assert response.status_code == 200, response.text
            return

    with ThreadPoolExecutor(writers) as pool:
        list(pool.map(write, range(writers)))
    session = alice.call("GET", "/sessions/edits").json()
    assert sorted(m["content"] for m in session["messages"]) == sorted(f"edit {w}" for w in range(writers))
    assert session["version"] == 1 + writers
    assert all("version" in message for message in conflicts)


def test_stale_version_is_409_and_existing_session_cannot_be_recreated(users: tuple[Client, Client]) -> None:
    alice, _ = users
    alice.call("PUT", "/sessions/s1", {"name": "one"})
    alice.call("POST", "/sessions/s1/messages", {"messages": [_message("appended meanwhile")]})
    stale = alice.call("PUT", "/sessions/s1", {"messages": [], "version": 1})
    assert stale.status_code == 409
    assert "version 2" in _error(stale)
    again = alice.call("PUT", "/sessions/s1", {"name": "dup"})
    assert again.status_code == 409
    assert "already exists" in _error(again)
    assert [m["content"] for m in alice.call("GET", "/sessions/s1").json()["messages"]] == ["appended meanwhile"]


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    [
        ("PUT", "/sessions/s1", b"{not json", "not valid JSON"),
        ("PUT", "/sessions/s1", b"[1, 2]", "must be a JSON object"),
        ("PUT", "/sessions/s1", {"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
        ("PUT", "/sessions/s1", {"messages": [{"role": "user"}]}, "messages.0.content"),
        ("PUT", "/sessions/s1", {"messages": [{"role": "user", "content": 5}]}, "messages.0.content"),
        ("PUT", "/sessions/s1", {"messages": "hello"}, "messages"),
        ("PUT", "/sessions/s1", {"parameters": {"temperature": 5}}, "parameters.temperature"),
        ("PUT", "/sessions/s1", {"parameters": {"topP": 0}}, "parameters.topP"),
        ("PUT", "/sessions/s1", {"parameters": {"maxTokens": -1}}, "parameters.maxTokens"),
        ("PUT", "/sessions/s1", {"parameters": {"temprature": 1}}, "parameters.temprature"),
        ("PUT", "/sessions/s1", {"name": ""}, "name"),
        ("PUT", "/sessions/s1", {"version": 0}, "version"),
        ("PUT", "/sessions/s1", {"owner": "bob"}, "owner"),
        ("PUT", "/sessions/s1", b'{"messages": [{"role": "user", "content": "x", "metadata": {"n": NaN}}]}', "finite"),
        ("PUT", "/sessions/s1", {"messages": [_message("a\ud800")]}, "messages.0.content: contains a lone UTF-16"),
        ("PUT", "/sessions/s1", {"name": "\udfff"}, "name: contains a lone UTF-16 surrogate"),
        (
            "POST",
            "/sessions/s1/messages",
            {"messages": [{"role": "user", "content": "x", "metadata": {"k": ["\ud800"]}}]},
            "messages.0.metadata.k.0: contains a lone",
        ),
        ("PUT", "/sessions/s1", b'{"name": "\xed\xa0\x80"}', "not valid UTF-8"),
        (
            "PUT",
            "/sessions/s1",
            b'{"messages": [{"role": "user", "content": "x", "metadata": {"n": ' + b"[" * 900 + b"]" * 900 + b"}}]}",
            "messages: nested too deeply",
        ),
        ("PUT", "/sessions/bad.id", {}, "sessionId"),
        ("PUT", "/sessions/" + "a" * 129, {}, "sessionId"),
        ("POST", "/sessions/s1/messages", {"messages": []}, "messages"),
        ("POST", "/sessions/s1/messages", {}, "messages"),
        ("POST", "/sessions/s1/messages", {"messages": [{"role": "user", "content": "x", "extra": 1}]}, "extra"),
        ("GET", "/sessions/bad.id", None, "sessionId"),
        ("DELETE", "/sessions/bad.id", None, "sessionId"),
    ],
)
def test_bad_input_is_a_400_naming_the_problem(
    users: tuple[Client, Client], method: str, path: str, body: Any, expected: str
) -> None:
    alice, _ = users
    alice.call("PUT", "/sessions/s1", {"name": "exists"})
    raw = body if isinstance(body, bytes) else None
    response = alice.call(method, path, None if raw is not None else body, raw=raw)
    assert response.status_code == 400, response.text
    assert expected in _error(response)
    assert alice.call("GET", "/sessions/s1").json()["name"] == "exists"  # nothing changed


def test_oversized_sessions_are_413_and_never_truncated(users: tuple[Client, Client]) -> None:
    alice, _ = users
    huge = alice.call("PUT", "/sessions/big", {"messages": [_message("x" * (MAX_SESSION_BYTES + 1))]})
    assert huge.status_code == 413
    assert str(MAX_SESSION_BYTES) in _error(huge)
    assert alice.call("GET", "/sessions/big").status_code == 404

    assert alice.call("PUT", "/sessions/big", {"messages": [_message("y" * 150_000)]}).status_code == 201
    over = alice.call("POST", "/sessions/big/messages", {"messages": [_message("z" * 60_000, "assistant")]})
    assert over.status_code == 413
    assert "limit" in _error(over)
    session = alice.call("GET", "/sessions/big").json()
    assert [len(m["content"]) for m in session["messages"]] == [150_000]
    replace = alice.call(
        "PUT", "/sessions/big", {"messages": [_message("y" * 150_000), _message("w" * 60_000)], "version": 1}
    )
    assert replace.status_code == 413
    assert alice.call("GET", "/sessions/big").json()["version"] == 1


def _hold_first_call(target: Callable[..., Any]) -> tuple[Callable[..., Any], threading.Event]:
    """`target` wrapped so its first call waits (after signalling `held`) until a later call has started."""
    held, second, calls = threading.Event(), threading.Event(), []
    lock = threading.Lock()

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with lock:
            calls.append(1)
            first = len(calls) == 1
        if first:
            held.set()
            assert second.wait(_WAIT), "the second request never reached its handler"
        else:
            second.set()
        return target(*args, **kwargs)

    return wrapper, held


def test_a_write_held_while_another_user_lists_is_stored_for_its_own_caller(
    users: tuple[Client, Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reported misfiling: alice's PUT /sessions/{id} is paused inside its handler (after reading its body, before
    asking who the caller is) while bob's listing runs; the session must still be alice's."""
    import chalicelib.sessions.store as sessions_store

    alice, bob = users
    hook, held = _hold_first_call(sessions_store.get_store)
    monkeypatch.setattr(sessions_store, "get_store", hook)  # the handlers look it up per call
    with ThreadPoolExecutor(2) as pool:
        put = pool.submit(alice.call, "PUT", "/sessions/mine", {"messages": [{"role": "user", "content": "secret"}]})
        assert held.wait(_WAIT)
        listed = pool.submit(bob.call, "GET", "/sessions").result(_WAIT)
        written = put.result(_WAIT)
    assert listed.json() == {"sessions": []}
    assert written.status_code == 201, written.text
    monkeypatch.undo()
    mine = alice.call("GET", "/sessions/mine")
    assert mine.status_code == 200, f"alice's session was filed under another user: {mine.text}"
    assert mine.json()["messages"][0]["content"] == "secret"
    assert bob.call("GET", "/sessions/mine").status_code == 404
    assert bob.call("GET", "/sessions").json() == {"sessions": []}
