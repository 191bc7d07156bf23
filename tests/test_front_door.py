"""The local front door's HTTP contract, over real HTTP: the router's routes, the UI's files and the Chalice control
plane on one loopback port (served by router.server.AppRunner, as `make run` does), moto for AWS, real tokens.

Errors are JSON in the shape of the plane a path belongs to and never quote a credential; what the HTTP parser
refuses is a 431 / 400 JSON with one log line; a credential header sent twice is refused on both planes; no
response names the server software; the UI's responses carry the hardening headers.
"""

from __future__ import annotations

import http.client
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from chalicelib.auth.authorizer import get_authorizer
from chalicelib.auth.tokens import TokenStore
from chalicelib.gateway import NO_ROUTE
from chalicelib.sessions.store import get_store
from chalicelib.webui.security import ui_security_headers
from router.server import MAX_FIELD_SIZE, MAX_HEADERS
from tests.support.control_plane import control_plane_url

UI_HEADERS = ui_security_headers(["https://idp.example.com/realms/lisa", "http://127.0.0.1:5999/bucket/x"])


@pytest.fixture(scope="module")
def ui_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("webui")
    (root / "assets").mkdir()
    (root / "index.html").write_text('<!doctype html><script type="module" src="./assets/app.js"></script>')
    (root / "assets" / "app.js").write_text("console.log('hi')")
    (root / "reference.html").write_text("<!doctype html><title>LISA API reference</title>")
    (root / "robots.txt").write_text("User-agent: *\n")
    return root


@pytest.fixture(scope="module")
def url(moto_server: str, ui_dir: Path) -> Iterator[str]:
    with control_plane_url(workers=4, data_plane=True, webui_dir=ui_dir, ui_headers=UI_HEADERS) as base:
        yield base


@pytest.fixture
def tokens(aws_env: str, url: str) -> tuple[str, str]:
    get_authorizer().clear_cache()
    store = TokenStore()
    return store.create(username="alice")[0], store.create(username="bob")[0]


def _raw(url: str, method: str, path: str, headers: list[tuple[str, str]], body: bytes = b"") -> tuple[int, dict]:
    """A request with exactly these header lines (repeats included), as `requests` cannot send them."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers:
            connection.putheader(name, value)
        if body:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body or None)
        response = connection.getresponse()
        assert response.getheader("Content-Type", "").startswith("application/json")
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    """Everything logged during the test, structured fields included."""
    return json.dumps([vars(record) for record in caplog.records], default=str)


@pytest.mark.parametrize(
    ("method", "path", "status", "shape"),
    [
        ("GET", "/nope", 404, "gateway"),
        ("POST", "/sessions/a/b/c", 404, "gateway"),
        ("DELETE", "/tokens", 404, "gateway"),  # a path the control plane has, not with this method
        ("GET", "/assets/missing.js", 404, "gateway"),
        ("GET", "/v1/openai/nope", 404, "openai"),
        ("GET", "/v1/nope", 404, "openai"),
        ("GET", "/v1/openai/chat/completions", 405, "openai"),
        ("PUT", "/v1/embeddings", 405, "openai"),
    ],
)
def test_unrouted_requests_are_json_in_their_planes_shape_and_never_quote_the_credential(
    url: str,
    tokens: tuple[str, str],
    caplog: pytest.LogCaptureFixture,
    method: str,
    path: str,
    status: int,
    shape: str,
) -> None:
    alice, _ = tokens
    for headers in ({"Authorization": f"Bearer {alice}"}, {"Api-Key": alice}, {}):
        response = requests.request(method, f"{url}{path}", headers=headers, timeout=30)
        assert response.status_code == status, response.text
        assert response.headers["Content-Type"].startswith("application/json")
        assert alice not in response.text
        if shape == "gateway":
            assert response.json() == {"message": NO_ROUTE}
        else:
            error = response.json()["error"]
            assert error["code"] == ("not_found" if status == 404 else "method_not_allowed")
            assert path in error["message"]
    assert alice not in _logged(caplog)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ({"X-Big": "a" * (MAX_FIELD_SIZE + 10)}, "longer than"),
        ({"Authorization": "Bearer lisa_" + "s" * (MAX_FIELD_SIZE + 10)}, "longer than"),
        ({f"X-Header-{i}": "x" for i in range(MAX_HEADERS + 5)}, f"at most {MAX_HEADERS} headers"),
    ],
    ids=["long-header", "long-credential", "too-many-headers"],
)
@pytest.mark.parametrize("path", ["/sessions", "/v1/openai/models", "/"])
def test_oversized_headers_are_a_431_json_with_one_log_line_and_no_echo(
    url: str,
    tokens: tuple[str, str],
    caplog: pytest.LogCaptureFixture,
    header: dict[str, str],
    reason: str,
    path: str,
) -> None:
    response = requests.get(f"{url}{path}", headers={"Authorization": f"Bearer {tokens[0]}", **header}, timeout=30)
    assert response.status_code == 431
    assert response.headers["Content-Type"].startswith("application/json")
    assert reason in response.json()["message"]
    assert "aaaa" not in response.text
    assert "ssss" not in response.text
    assert response.headers["Server"] == "LISA"
    assert [(r.levelname, r.getMessage()) for r in caplog.records if r.levelno >= logging.WARNING] == [
        ("WARNING", "request refused by the HTTP parser")
    ]
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert "ssss" not in _logged(caplog)


def test_a_credential_header_sent_twice_is_refused_on_both_planes(url: str, tokens: tuple[str, str]) -> None:
    """Which of two credentials a request means is never guessed (the data plane used to take the first, the
    control plane the last): a 400 naming the header, on every route, before any handler runs."""
    alice, bob = tokens
    body = json.dumps({"messages": [{"role": "user", "content": "hi"}]}).encode()
    for name, first, second in (
        ("Authorization", f"Bearer {alice}", f"Bearer {bob}"),
        ("Authorization", f"Bearer {alice}", f"Bearer {alice}"),  # even the same one twice
        ("Api-Key", alice, bob),
        ("api-key", bob, alice),
    ):
        pair = [(name, first), (name, second)]
        status, answer = _raw(url, "PUT", "/sessions/twice", [*pair, ("Content-Type", "application/json")], body)
        assert (status, answer) == (400, {"message": f"ambiguous credentials: send the {name.title()} header once"})
        status, answer = _raw(url, "GET", "/v1/openai/models", pair)
        assert status == 400
        assert answer["error"]["code"] == "ambiguous_credentials"
        assert name.title() in answer["error"]["message"]
        assert alice not in json.dumps(answer)
    assert get_store().list_sessions("token:alice") == []  # the handler never ran
    assert get_store().list_sessions("token:bob") == []
    # one of each header is not ambiguous (Api-Key wins, as documented)
    status, answer = _raw(url, "GET", "/sessions", [("Api-Key", alice), ("Authorization", "Bearer nope")])
    assert (status, answer) == (200, {"sessions": []})


def test_an_oversized_unauthenticated_body_on_the_control_plane_is_a_json_413(url: str) -> None:
    response = requests.put(f"{url}/sessions/big", data=b"x" * (17 * 1024 * 1024), timeout=60)
    assert response.status_code == 413
    assert response.headers["Content-Type"].startswith("application/json")
    assert "larger than the limit" in response.json()["message"]


def test_no_response_names_the_server_software_and_the_ui_is_hardened(url: str, tokens: tuple[str, str]) -> None:
    auth = {"Authorization": f"Bearer {tokens[0]}"}
    for path, headers in (
        ("/health", {}),
        ("/v1/openai/models", auth),
        ("/sessions", auth),
        ("/ui/config", {}),
        ("/nope", {}),
        ("/", {}),
        ("/reference", {}),
        ("/assets/app.js", {}),
        ("/robots.txt", {}),
    ):
        response = requests.get(f"{url}{path}", headers=headers, timeout=30)
        assert response.headers["Server"] == "LISA", path
        assert response.headers["X-Content-Type-Options"] == "nosniff", path
        if path == "/reference":  # the API reference page: a second page of the built UI
            assert "<title>LISA API reference</title>" in response.text
        if path in ("/", "/reference", "/assets/app.js", "/robots.txt"):
            assert {name: response.headers.get(name) for name in UI_HEADERS} == UI_HEADERS, path
        else:
            assert "Content-Security-Policy" not in response.headers, path
