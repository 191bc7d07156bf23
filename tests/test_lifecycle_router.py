"""The router after a model stopped or moved: its registry snapshot may be up to the TTL old, so a backend that
takes no connection makes it re-read the registry once. Real router, real (fake TGI) backends on loopback, the
registry in moto; the TTL is long here, so only the re-read can explain the answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from chalicelib.auth.authorizer import Authorizer
from chalicelib.auth.tokens import TokenStore
from chalicelib.registry.models import CreateModelRequest, ModelStatus
from chalicelib.registry.resolver import CachedRegistry
from chalicelib.registry.store import ModelStore
from chalicelib.settings import get_settings
from router.app import create_app
from router.settings import RouterSettings
from tests.support.fake_backends import FakeBackend
from tests.support.servers import AppThread
from workers.launch import free_port

SETTINGS = RouterSettings(connect_timeout=2.0, request_timeout=5.0, access_log=False)


def backend() -> tuple[FakeBackend, AppThread, str]:
    fake = FakeBackend()
    server = AppThread(fake.app)
    return fake, server, server.start()


@pytest.fixture
def router(aws_env: str) -> Iterator[tuple[str, dict[str, str]]]:
    token, _ = TokenStore().create("alice", groups=["users"])

    def factory() -> Any:
        registry = CachedRegistry(ModelStore(), ttl_seconds=300)  # the snapshot would outlive the test
        return create_app(SETTINGS, authorizer=Authorizer.from_settings(get_settings()), registry=registry)

    server = AppThread(factory)
    server.start()
    yield server.url, {"Authorization": f"Bearer {token}"}
    server.stop()


def register(name: str, endpoint: str) -> None:
    body = {"modelName": name, "hfModelId": f"fake/{name}", "inferenceContainer": "tgi", "endpointUrl": endpoint}
    ModelStore().create(CreateModelRequest.model_validate(body))


def change(name: str, **changes: Any) -> None:
    store = ModelStore()
    store.update(name, store.get(name).version, changes)


def chat(router: tuple[str, dict[str, str]], model: str, stream: bool = False) -> requests.Response:
    url, headers = router
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 3,
        "stream": stream,
    }
    return requests.post(f"{url}/v1/openai/chat/completions", json=body, headers=headers, timeout=30)


@pytest.mark.parametrize("stream", [False, True])
def test_a_model_stopped_since_the_snapshot_answers_model_stopped(
    router: tuple[str, dict[str, str]], stream: bool
) -> None:
    _, server, url = backend()
    register("nightly", url)
    assert chat(router, "nightly", stream).status_code == 200  # the router's snapshot: InService at `url`
    change("nightly", status=ModelStatus.STOPPED)
    server.stop()  # the engine is gone with it
    answer = chat(router, "nightly", stream)
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == "model_stopped"
    assert answer.json()["error"]["message"] == "model 'nightly' stopped"


def test_a_model_moved_since_the_snapshot_is_served_at_its_new_endpoint(router: tuple[str, dict[str, str]]) -> None:
    old_fake, old, old_url = backend()
    new_fake, new, new_url = backend()
    try:
        register("moving", old_url)
        assert chat(router, "moving").status_code == 200
        change("moving", endpoint_url=new_url)
        old.stop()
        answer = chat(router, "moving")
        assert answer.status_code == 200, answer.text
        assert [path for path, _ in new_fake.requests] == ["/v1/chat/completions"]
        assert len(old_fake.requests) == 1  # the first request only
    finally:
        new.stop()


def test_a_backend_down_with_an_unchanged_record_still_says_unreachable(router: tuple[str, dict[str, str]]) -> None:
    register("down", f"http://127.0.0.1:{free_port()}")
    answer = chat(router, "down")
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == "backend_unavailable"
    assert "is unreachable: cannot connect to 127.0.0.1" in answer.json()["error"]["message"]
