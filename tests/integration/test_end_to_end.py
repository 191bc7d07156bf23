"""End-to-end checks a deployed LISA must pass: OpenAI SDK (models, chat, streaming, embeddings), LISA-native
generate, sessions CRUD, refusal without credentials, unknown model, the chat UI on the same origin. Run against
--url, or the local stack."""

from __future__ import annotations

import math
import re
import uuid
from typing import Any

import httpx
import openai
import pytest

from tests.integration.conftest import Target

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def catalog(target: Target) -> dict[str, Any]:
    """`{"textgen": {provider: [name]}, "embedding": {...}}` from the LISA-native listing."""
    with target.authed() as client:
        response = client.get("v1/listModels")
    assert response.status_code == 200, response.text
    listing: dict[str, Any] = response.json()
    return listing


def _first(catalog: dict[str, Any], model_type: str) -> tuple[str, str]:
    for provider, names in catalog.get(model_type, {}).items():
        if names:
            return provider, names[0]
    pytest.fail(f"the deployment serves no {model_type} model: {catalog}")


@pytest.fixture(scope="module")
def sdk(target: Target) -> openai.OpenAI:
    http_client = httpx.Client(verify=target.verify, timeout=120.0)
    return openai.OpenAI(base_url=target.url + "v1/openai", api_key=target.api_key, http_client=http_client)


def test_models_are_listed_by_both_apis(sdk: openai.OpenAI, catalog: dict[str, Any]) -> None:
    ids = {model.id for model in sdk.models.list()}
    assert _first(catalog, "textgen")[1] in ids
    assert _first(catalog, "embedding")[1] in ids


def test_chat_completion(sdk: openai.OpenAI, catalog: dict[str, Any]) -> None:
    model = _first(catalog, "textgen")[1]
    completion = sdk.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Say hello."}], max_tokens=8, temperature=0
    )
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert completion.usage is not None
    assert 0 < completion.usage.completion_tokens <= 8


def test_chat_completion_stream(sdk: openai.OpenAI, catalog: dict[str, Any]) -> None:
    model = _first(catalog, "textgen")[1]
    stream = sdk.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Count to five."}], max_tokens=8, stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(chunks) > 2  # tokens arrive as separate events, not one buffered body
    assert text
    assert any(c.choices and c.choices[0].finish_reason for c in chunks)  # the stream ends properly


def test_embeddings(sdk: openai.OpenAI, catalog: dict[str, Any]) -> None:
    model = _first(catalog, "embedding")[1]
    result = sdk.embeddings.create(model=model, input=["a cat sat on the mat", "quarterly revenue grew"])
    vectors = [item.embedding for item in result.data]
    assert len(vectors) == 2
    assert len(vectors[0]) == len(vectors[1]) > 0
    assert all(math.isfinite(x) for x in vectors[0])
    assert vectors[0] != vectors[1]


def test_lisa_native_generate(target: Target, catalog: dict[str, Any]) -> None:
    provider, name = _first(catalog, "textgen")
    body = {"provider": provider, "modelName": name, "text": "Hello", "modelKwargs": {"max_new_tokens": 5}}
    with target.authed() as client:
        response = client.post("v1/generate", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert isinstance(result["generatedText"], str)
    assert 0 < result["generatedTokens"] <= 5
    assert result["finishReason"] in {"length", "eos_token", "stop_sequence"}


def test_sessions_crud(target: Target) -> None:
    session_id = str(uuid.uuid4())
    with target.authed() as client:
        created = client.put(
            f"sessions/{session_id}",
            json={"name": "integration", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert created.status_code == 201, created.text
        appended = client.post(
            f"sessions/{session_id}/messages", json={"messages": [{"role": "assistant", "content": "hello"}]}
        )
        assert appended.status_code == 200, appended.text
        fetched = client.get(f"sessions/{session_id}")
        assert fetched.status_code == 200
        assert [m["content"] for m in fetched.json()["messages"]] == ["hi", "hello"]
        listed = client.get("sessions/")
        assert session_id in {s["sessionId"] for s in listed.json()["sessions"]}
        assert client.delete(f"sessions/{session_id}").status_code == 200
        assert client.get(f"sessions/{session_id}").status_code == 404


@pytest.mark.parametrize("path", ["v1/openai/models", "v1/listModels", "sessions/", "models/"])
def test_requests_without_credentials_are_refused(target: Target, path: str) -> None:
    with target.client() as client:
        response = client.get(path)
    assert response.status_code == 401
    with target.client(Authorization="Bearer not-a-real-token") as client:
        assert client.get(path).status_code == 401


def test_unknown_model_is_404(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        sdk.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    assert "no-such-model" in str(raised.value)


def test_chat_ui_is_served_on_the_same_origin(target: Target) -> None:
    """The page, its script and its style load without credentials, relative to the API's URL (e.g. /prod/)."""
    with target.client() as client:
        page = client.get("")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        bundles = re.findall(r'(?:src|href)="\./(assets/[^"]+\.(?:js|css))"', page.text)
        assert {b.rsplit(".", 1)[1] for b in bundles} == {"js", "css"}, page.text[:500]
        for bundle in bundles:
            response = client.get(bundle)
            assert response.status_code == 200, bundle
            kind = "javascript" if bundle.endswith(".js") else "css"
            assert kind in response.headers["content-type"], (bundle, response.headers["content-type"])
        config = client.get("ui/config")
        assert config.status_code == 200
        assert "authority" in config.json()
