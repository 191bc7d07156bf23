"""The /models API through the Chalice app and the real authorizer, with real API tokens in DynamoDB on moto.

Chalice's own test client (TOKEN-style gateway, `Authorization: Bearer`) for the contract; the runner's
REQUEST-style gateway (`Api-Key`, as deployed) for concurrent writers on real threads.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from chalice.local import LocalGatewayException
from chalice.test import Client

from app import app
from chalicelib.auth.authorizer import get_authorizer
from chalicelib.auth.tokens import TokenStore
from chalicelib.registry.models import ModelStatus
from chalicelib.registry.resolver import get_registry, reset_registry
from chalicelib.registry.store import ModelStore
from runner.chalice_gateway import make_gateway

SMOL = {
    "modelName": "smollm2",
    "hfModelId": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "inferenceContainer": "tgi",
    "endpointUrl": "http://127.0.0.1:8081",
    "defaultModelKwargs": {"max_new_tokens": 64, "temperature": 0.2},
    "containerConfig": {
        "image": "ghcr.io/huggingface/text-generation-inference:3.3.4",
        "environment": {"HF_TOKEN": "hf_secret", "MAX_INPUT_LENGTH": "1536"},
    },
}


class Caller:
    """One credential against the app through chalice's test client."""

    def __init__(self, client: Client, token: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def __call__(self, method: str, path: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        response = self.client.http.request(method, path, headers=self.headers, body=data or b"")
        return response.status_code, response.json_body


@pytest.fixture
def client(aws_env: str) -> Iterator[Client]:
    get_authorizer().clear_cache()
    reset_registry()
    with Client(app) as test_client:
        yield test_client
    reset_registry()


@pytest.fixture
def admin(client: Client) -> Caller:
    token, _ = TokenStore().create("root", is_admin=True)
    return Caller(client, token)


@pytest.fixture
def user(client: Client) -> Caller:
    token, _ = TokenStore().create("alice", groups=["users"])
    return Caller(client, token)


def message(body: Any) -> str:
    return str(body.get("Message") or body.get("message"))


def test_model_lifecycle(admin: Caller, user: Caller) -> None:
    status, created = admin("POST", "/models", SMOL)
    assert status == 201, created
    assert (created["modelId"], created["provider"], created["modelType"]) == ("smollm2", "ecs.textgen.tgi", "textgen")
    assert (created["status"], created["version"], created["streaming"]) == ("InService", 1, True)
    assert created["containerConfig"]["environment"] == {"HF_TOKEN": "hf_secret", "MAX_INPUT_LENGTH": "1536"}

    # Every authenticated user can read; only admins see the container's environment.
    status, listed = user("GET", "/models")
    assert status == 200
    assert [m["modelId"] for m in listed["models"]] == ["smollm2"]
    assert listed["models"][0]["containerConfig"]["environment"] == {"MAX_INPUT_LENGTH": "1536"}
    assert "hf_secret" not in json.dumps(listed)
    assert listed["models"][0]["defaultModelKwargs"] == {"max_new_tokens": 64, "temperature": 0.2}
    status, one = user("GET", "/models/smollm2")
    assert (status, one["endpointUrl"]) == (200, "http://127.0.0.1:8081")
    assert one["containerConfig"]["environment"] == {"MAX_INPUT_LENGTH": "1536"}
    assert admin("GET", "/models/smollm2")[1] == created

    status, refused = admin("PUT", "/models/smollm2", {"version": 1, "status": "Stopped"})
    assert (status, message(refused).startswith("status: ")) == (400, True), refused  # the workflows own it
    status, updated = admin("PUT", "/models/smollm2", {"version": 1, "enabled": False})
    assert status == 200, updated  # registered by URL: stopped at once, no workflow
    assert (updated["status"], updated["statusReason"], updated["version"]) == (
        "Stopped",
        "stopped by an administrator",
        2,
    )
    assert [e["status"] for e in updated["history"]] == ["InService", "Stopped"]
    status, stale = admin("PUT", "/models/smollm2", {"version": 1, "streaming": False})
    assert status == 409
    assert "at version 2, not 1" in message(stale)
    assert admin("GET", "/models/smollm2")[1]["streaming"] is True  # the stale write changed nothing
    started = {"version": 2, "endpointUrl": "http://127.0.0.1:8082", "enabled": True}
    status, moved = admin("PUT", "/models/smollm2", started)
    assert (status, moved["endpointUrl"], moved["status"], moved["statusReason"]) == (
        200,
        started["endpointUrl"],
        "InService",
        None,
    )

    assert admin("DELETE", "/models/smollm2?version=1")[0] == 409
    status, deleted = admin("DELETE", "/models/smollm2?version=3")
    assert (status, deleted["deleted"], deleted["model"]["version"]) == (200, "smollm2", 3)
    assert user("GET", "/models/smollm2")[0] == 404
    assert admin("DELETE", "/models/smollm2")[0] == 404
    assert user("GET", "/models") == (200, {"models": []})


def test_non_admins_cannot_write(admin: Caller, user: Caller) -> None:
    assert admin("POST", "/models", SMOL)[0] == 201
    for method, path, body in (
        ("POST", "/models", {**SMOL, "modelName": "other"}),
        ("PUT", "/models/smollm2", {"version": 1, "streaming": False}),
        ("DELETE", "/models/smollm2", None),
    ):
        status, reply = user(method, path, body)
        assert status == 403, (method, reply)
        assert "'alice' is not an administrator" in message(reply)
    record = ModelStore().get("smollm2")
    assert (record.version, record.streaming) == (1, True)
    assert [r.model_name for r in ModelStore().list()] == ["smollm2"]


def test_unauthenticated_requests_are_refused(client: Client) -> None:
    assert client.http.get("/models").status_code == 401
    assert client.http.get("/models", headers={"Authorization": "Bearer lisa_nope"}).status_code == 403


def _nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "modelName"),
        ({**SMOL, "modelName": "has spaces"}, "modelName"),
        ({**SMOL, "hfModelId": "no-slash"}, "hfModelId"),
        ({**SMOL, "inferenceContainer": "sglang"}, "inferenceContainer"),
        ({**SMOL, "modelType": "embedding"}, "modelType"),
        ({**SMOL, "endpointUrl": "127.0.0.1:8081"}, "endpointUrl"),
        ({**SMOL, "defaultModelKwargs": []}, "defaultModelKwargs"),
        ({**SMOL, "containerConfig": {"environment": {}}}, "containerConfig.image"),
        ({**SMOL, "status": "InService"}, "status"),
        ({**SMOL, "modelId": "smollm2"}, "modelId"),
        ({**SMOL, "defaultModelKwargs": {"temperature": 1e-200}}, "defaultModelKwargs"),  # DynamoDB underflow
        ({**SMOL, "defaultModelKwargs": {"seed": 10**50}}, "defaultModelKwargs"),  # over 38 digits
        ({**SMOL, "defaultModelKwargs": {"x": _nested(33)}}, "defaultModelKwargs"),  # DynamoDB: 32 levels
    ],
)
def test_create_validation_names_the_field(admin: Caller, body: Any, field: str) -> None:
    status, reply = admin("POST", "/models", body)
    assert status == 400, reply
    assert f"{field}:" in message(reply)
    assert ModelStore().list() == []


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/models/smollm2", {"streaming": False}, "version"),
        ("/models/smollm2", {"version": 0, "streaming": False}, "version"),
        ("/models/smollm2", {"version": 1}, "nothing to change"),
        ("/models/smollm2", {"version": 1, "modelName": "renamed"}, "modelName"),
        ("/models/smollm2", {"version": 1, "hfModelId": None}, "hfModelId"),
        ("/models/smollm2", {"version": 1, "status": "Running"}, "status"),
        ("/models/smollm2", {"version": 1, "modelType": "embedding"}, "modelType"),
        ("/models/smollm2", {"version": 1, "defaultModelKwargs": {"x": 1e400}}, "defaultModelKwargs"),
        ("/models/bad%20id!", {"version": 1, "streaming": False}, "modelId"),
    ],
)
def test_update_validation_names_the_field(admin: Caller, path: str, body: Any, field: str) -> None:
    assert admin("POST", "/models", SMOL)[0] == 201
    status, reply = admin("PUT", path, body)
    assert status == 400, reply
    assert field in message(reply)
    assert ModelStore().get("smollm2").version == 1


def test_malformed_bodies_and_parameters(admin: Caller) -> None:
    status, reply = admin("POST", "/models", raw=b"{not json")
    assert (status, "not valid JSON" in message(reply)) == (400, True)
    status, reply = admin("POST", "/models", raw=b"[" * 5000 + b"]" * 5000)
    assert (status, "nested too deeply" in message(reply)) == (400, True)
    status, reply = admin("POST", "/models", raw=b"[1, 2]")
    assert (status, "must be a JSON object" in message(reply)) == (400, True)
    assert admin("POST", "/models", SMOL)[0] == 201
    for bad in ("abc", "%C2%B2", "%D9%A1", "1_0"):  # "²" passes str.isdigit; int() takes Arabic-Indic digits, "1_0"
        status, reply = admin("DELETE", f"/models/smollm2?version={bad}")
        assert (status, "version:" in message(reply)) == (400, True), reply
    assert admin("GET", "/models/smollm2")[0] == 200


def test_conflicts_and_unknown_ids(admin: Caller) -> None:
    assert admin("POST", "/models", SMOL)[0] == 201
    status, reply = admin("POST", "/models", {**SMOL, "hfModelId": "other/model"})
    assert status == 409
    assert "already exists" in message(reply)
    assert admin("GET", "/models/smollm2")[1]["hfModelId"] == SMOL["hfModelId"]
    status, reply = admin("PUT", "/models/ghost", {"version": 1, "streaming": False})
    assert (status, message(reply)) == (404, "model 'ghost' is not registered")
    assert admin("GET", "/models/ghost")[0] == 404


def test_writes_reach_this_processs_resolver_at_once(admin: Caller) -> None:
    registry = get_registry()
    registry.list_models()  # a snapshot is cached (empty)
    assert admin("POST", "/models", {**SMOL, "modelName": "fresh"})[0] == 201
    assert registry.resolve("fresh (ecs.textgen.tgi)").status is ModelStatus.IN_SERVICE
    assert admin("PUT", "/models/fresh", {"version": 1, "enabled": False})[0] == 200
    assert registry.resolve("fresh").status is ModelStatus.STOPPED


def test_concurrent_admin_updates_over_the_gateway_never_lose_one(aws_env: str) -> None:
    """Writers on real threads, each adding its own kwarg with GET, PUT(version) and retry on 409."""
    get_authorizer().clear_cache()
    token, _ = TokenStore().create("root", is_admin=True)
    gateway = make_gateway(app)
    headers = {"api-key": token, "content-type": "application/json"}

    def call(method: str, path: str, body: Any = None) -> tuple[int, Any]:
        raw = b"" if body is None else json.dumps(body).encode()
        try:
            response = gateway.handle_request(method, path, headers, raw)
        except LocalGatewayException as error:
            return error.CODE, json.loads(error.body or b"null")
        return response["statusCode"], json.loads(response["body"])

    assert call("POST", "/models", {**SMOL, "defaultModelKwargs": {}})[0] == 201
    n = 8
    barrier = threading.Barrier(n)
    conflicts: list[int] = []

    def writer(i: int) -> None:
        barrier.wait()
        while True:
            _, current = call("GET", "/models/smollm2")
            kwargs = {**current["defaultModelKwargs"], f"w{i}": i}
            status, _ = call("PUT", "/models/smollm2", {"version": current["version"], "defaultModelKwargs": kwargs})
            if status == 200:
                return
            assert status == 409
            conflicts.append(i)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    _, final = call("GET", "/models/smollm2")
    assert final["defaultModelKwargs"] == {f"w{i}": i for i in range(n)}
    assert final["version"] == 1 + n
    assert conflicts  # the race happened and was answered with 409s
