"""The router over real HTTP: moto-backed auth and registry, a scriptable TGI/TEI stand-in as the backend.

Covers the wire contracts (OpenAI via the official SDK, LISA-native via plain requests as lisapy sends them) and
the error matrix: auth, unknown models, bad bodies, wrong model types, unavailable/down/slow backends, failures
in the middle of a stream, and client disconnects reaching the backend.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import openai
import pytest
import requests

from chalicelib.auth.authorizer import Authorizer
from chalicelib.auth.tokens import TokenStore
from chalicelib.contracts.native import ModelMetadata
from chalicelib.contracts.openai import ChatCompletion, ChatCompletionChunk, Completion, ErrorResponse
from chalicelib.registry.models import CreateModelRequest, ModelStatus
from chalicelib.registry.resolver import CachedRegistry
from chalicelib.registry.store import ModelStore
from chalicelib.settings import get_settings
from router.app import create_app
from router.settings import RouterSettings
from tests.support import lisapy
from tests.support.fake_backends import FakeBackend
from tests.support.servers import AppThread
from workers.launch import free_port


@dataclass
class Lisa:
    url: str
    token: str
    fake: FakeBackend
    server: AppThread

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def client(self, **kwargs: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1/openai", api_key=self.token, max_retries=0, **kwargs)

    def post(self, path: str, body: Any, **kwargs: Any) -> requests.Response:
        headers = kwargs.pop("headers", self.headers)
        return requests.post(f"{self.url}{path}", json=body, headers=headers, timeout=30, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(f"{self.url}{path}", headers=kwargs.pop("headers", self.headers), timeout=30, **kwargs)


@pytest.fixture(scope="module")
def fake_server() -> Iterator[tuple[FakeBackend, str]]:
    fake = FakeBackend()
    server = AppThread(fake.app)
    url = server.start()
    yield fake, url
    server.stop()


def register(name: str, container: str, endpoint: str | None, **fields: Any) -> None:
    request = CreateModelRequest.model_validate(
        {
            "modelName": name,
            "hfModelId": f"fake/{name}",
            "inferenceContainer": container,
            "endpointUrl": endpoint,
            **fields,
        }
    )
    status = ModelStatus.CREATING if endpoint is None else None
    ModelStore().create(request, status=status)


def start_router(settings: RouterSettings, **kwargs: Any) -> AppThread:
    def factory() -> Any:
        return create_app(
            settings,
            authorizer=Authorizer.from_settings(get_settings()),
            registry=CachedRegistry(ModelStore(), ttl_seconds=60),
            **kwargs,
        )

    server = AppThread(factory)
    server.start()
    return server


SETTINGS = RouterSettings(
    connect_timeout=2.0, request_timeout=1.5, stream_idle_timeout=1.5, max_body_bytes=64 * 1024, access_log=False
)


@pytest.fixture
def lisa(aws_env: str, fake_server: tuple[FakeBackend, str]) -> Iterator[Lisa]:
    fake, url = fake_server
    fake.reset()
    register("fake-chat", "tgi", url, defaultModelKwargs={"max_new_tokens": 5})
    register("fake-embed", "tei", url)
    register("fake-instructor", "instructor", url, defaultModelKwargs={"instruction": "Represent the query:"})
    register("fake-down", "tgi", f"http://127.0.0.1:{free_port()}")
    register("fake-creating", "tgi", None)
    register("fake-nostream", "tgi", url, streaming=False)
    token, _ = TokenStore().create("alice", groups=["users"])
    server = start_router(SETTINGS)
    yield Lisa(server.url, token, fake, server)
    server.stop()


def error_of(response: requests.Response) -> dict[str, Any]:
    body = response.json()
    ErrorResponse.model_validate(body)
    return body["error"]  # type: ignore[no-any-return]


def sse_data(response: requests.Response) -> list[str]:
    return [
        line[len("data:") :].strip() for line in response.iter_lines(decode_unicode=True) if line.startswith("data:")
    ]


# -- health and auth ---------------------------------------------------------------------------------------------
def test_health_needs_no_credentials(lisa: Lisa) -> None:
    response = requests.get(f"{lisa.url}/health", timeout=5)
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer lisa_not-a-real-token"}, {"Api-Key": "wrong"}, {"Authorization": "Basic abc"}],
)
def test_requests_without_a_valid_credential_are_401(lisa: Lisa, headers: dict[str, str]) -> None:
    for response in (
        lisa.get("/v1/openai/models", headers=headers),
        lisa.post("/v1/openai/chat/completions", {"model": "fake-chat"}, headers=headers),
        lisa.get("/v1/listModels", headers=headers),
    ):
        assert response.status_code == 401
        assert error_of(response)["type"] == "authentication_error"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert lisa.fake.requests == []


def test_api_key_header_and_bearer_both_work(lisa: Lisa) -> None:
    assert lisa.get("/v1/openai/models", headers={"Api-Key": lisa.token}).status_code == 200
    assert lisa.get("/v1/openai/models").status_code == 200


def test_openai_sdk_refuses_a_bad_key(lisa: Lisa) -> None:
    client = openai.OpenAI(base_url=f"{lisa.url}/v1/openai", api_key="lisa_wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.models.list()


# -- OpenAI API through the official SDK -------------------------------------------------------------------------
def test_models_lists_available_models(lisa: Lisa) -> None:
    ids = {m.id for m in lisa.client().models.list()}
    assert {"fake-chat", "fake-embed", "fake-instructor", "fake-down", "fake-nostream"} <= ids
    assert "fake-creating" not in ids


def test_chat_completion(lisa: Lisa) -> None:
    completion = lisa.client().chat.completions.create(
        model="fake-chat",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        temperature=0,
        max_tokens=3,
        stop=["\n"],
        presence_penalty=2,
    )
    ChatCompletion.model_validate(completion.model_dump())
    assert completion.choices[0].message.content == "echo: hi"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "fake-chat"
    assert completion.id.startswith("chatcmpl-")
    assert completion.usage is not None
    assert completion.usage.total_tokens == 10
    path, sent = lisa.fake.requests[-1]
    assert path == "/v1/chat/completions"
    assert sent["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert (sent["temperature"], sent["max_tokens"], sent["stop"], sent["presence_penalty"]) == (0.0, 3, ["\n"], 0.0)
    assert "repetition_penalty" not in sent  # TGI's chat derives it: presence_penalty + 2


def test_chat_model_named_with_its_provider(lisa: Lisa) -> None:
    completion = lisa.client().chat.completions.create(
        model="fake-chat (ecs.textgen.tgi)", messages=[{"role": "user", "content": "x"}]
    )
    assert completion.model == "fake-chat"


def test_chat_stream(lisa: Lisa) -> None:
    stream = lisa.client().chat.completions.create(
        model="fake-chat",
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=4,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk.model_dump())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "tok0 tok1 tok2 tok3"
    assert len({c.id for c in chunks}) == 1
    assert chunks[-2].choices[0].finish_reason == "length"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 4


def test_chat_stream_without_usage_sends_no_usage_chunk(lisa: Lisa) -> None:
    response = lisa.post(
        "/v1/openai/chat/completions",
        {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}], "stream": True},
        stream=True,
    )
    assert response.headers["Content-Type"].startswith("text/event-stream")
    data = sse_data(response)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert all(c["choices"] for c in chunks)
    assert len(chunks) == 5  # the model's default max_new_tokens


def test_completions(lisa: Lisa) -> None:
    completion = lisa.client().completions.create(
        model="fake-chat", prompt=["Once upon", "In a"], max_tokens=2, echo=True, seed=4
    )
    Completion.model_validate(completion.model_dump())
    assert [c.text for c in completion.choices] == ["Once upontok0 tok1", "In atok0 tok1"]
    assert [c.finish_reason for c in completion.choices] == ["length", "length"]
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (4, 4)
    sent = [body for path, body in lisa.fake.requests if path == "/generate"]
    assert sorted(b["inputs"] for b in sent) == ["In a", "Once upon"]
    assert sent[0]["parameters"]["seed"] == 4


def test_completions_logprobs(lisa: Lisa) -> None:
    completion = lisa.client().completions.create(model="fake-chat", prompt="x", max_tokens=2, logprobs=2)
    logprobs = completion.choices[0].logprobs
    assert logprobs is not None
    assert logprobs.tokens == ["tok0", " tok1"]
    assert logprobs.token_logprobs == [-0.5, -0.5]
    assert logprobs.text_offset == [0, 4]
    assert logprobs.top_logprobs == [{"tok0": -0.5, "alt": -2.0}, {" tok1": -0.5, "alt": -2.0}]


def test_completions_stream(lisa: Lisa) -> None:
    chunks = list(
        lisa.client().completions.create(
            model="fake-chat", prompt=["a", "b"], max_tokens=3, stream=True, stream_options={"include_usage": True}
        )
    )
    texts = {0: "", 1: ""}
    for chunk in chunks[:-1]:
        texts[chunk.choices[0].index] += chunk.choices[0].text
    assert texts == {0: "tok0 tok1 tok2", 1: "tok0 tok1 tok2"}
    finished = [c.choices[0].finish_reason for c in chunks[:-1] if c.choices[0].finish_reason]
    assert finished == ["length", "length"]
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 6


@pytest.mark.parametrize("encoding_format", ["float", "base64"])
def test_embeddings(lisa: Lisa, encoding_format: str) -> None:
    result = lisa.client().embeddings.create(
        model="fake-embed",
        input=["one two", "three"],
        encoding_format=encoding_format,  # type: ignore[arg-type]
    )
    vectors = [d.embedding for d in result.data]
    if encoding_format == "base64":  # the SDK hands back the base64 string as sent
        import base64
        import struct

        vectors = [list(struct.unpack("<4f", base64.b64decode(v))) for v in vectors]  # type: ignore[arg-type]
    assert vectors == [[7.0, 8.0, 9.0, 10.0], [5.0, 6.0, 7.0, 8.0]]
    assert result.usage.prompt_tokens == 3
    assert result.model == "fake-embed"
    assert lisa.fake.requests[-1] == ("/embed", {"inputs": ["one two", "three"], "normalize": True, "truncate": True})


def test_embeddings_sdk_default_encoding_decodes_to_floats(lisa: Lisa) -> None:
    result = lisa.client().embeddings.create(model="fake-embed", input="abc")
    assert result.data[0].embedding == [3.0, 4.0, 5.0, 6.0]


def test_instructor_embeddings_use_the_model_instruction(lisa: Lisa) -> None:
    result = lisa.client().embeddings.create(model="fake-instructor", input="q", encoding_format="float")
    assert len(result.data[0].embedding) == 4
    assert lisa.fake.requests[-1] == ("/predictions/model", {"instruction": "Represent the query:", "text": ["q"]})


def test_chat_hook_can_rewrite_the_request(aws_env: str, fake_server: tuple[FakeBackend, str]) -> None:
    fake, url = fake_server
    fake.reset()
    register("fake-chat", "tgi", url)
    token, _ = TokenStore().create("bob")
    seen: list[tuple[str, Any]] = []

    async def augment(principal: Any, raw: dict[str, Any], req: Any, record: Any) -> Any:
        seen.append((principal.username, raw.get("repositoryId")))
        context = {"role": "system", "content": "Context: Paris is the capital of France."}
        return req.model_copy(update={"messages": [context, *req.messages]})

    server = start_router(SETTINGS, augment_chat=augment)
    try:
        body = {"model": "fake-chat", "messages": [{"role": "user", "content": "q"}], "repositoryId": "docs"}
        response = requests.post(
            f"{server.url}/v1/openai/chat/completions", json=body, headers={"Api-Key": token}, timeout=10
        )
        assert response.status_code == 200
    finally:
        server.stop()
    assert seen == [("bob", "docs")]
    assert fake.requests[-1][1]["messages"][0]["content"].startswith("Context: Paris")


def test_concurrent_requests_share_the_pool(lisa: Lisa) -> None:
    client = lisa.client()

    def one(i: int) -> str:
        answer = client.chat.completions.create(model="fake-chat", messages=[{"role": "user", "content": f"n{i}"}])
        return answer.choices[0].message.content or ""

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(one, range(48)))
    assert answers == [f"echo: n{i}" for i in range(48)]


# -- LISA-native v1 (the lisapy SDK's requests) ------------------------------------------------------------------
def test_native_list_and_describe(lisa: Lisa) -> None:
    listing = lisa.get("/v1/listModels").json()
    assert listing["textgen"]["ecs.textgen.tgi"] == ["fake-chat", "fake-down", "fake-nostream"]
    assert listing["embedding"] == {
        "ecs.embedding.instructor": ["fake-instructor"],
        "ecs.embedding.tei": ["fake-embed"],
    }
    assert list(lisa.get("/v1/listModels", params={"modelTypes": "embedding"}).json()) == ["embedding"]

    described = lisa.get("/v1/describeModel", params={"provider": "ecs.textgen.tgi", "modelName": "fake-chat"}).json()
    ModelMetadata.model_validate(described)
    assert described["modelType"] == "textgen"
    assert described["streaming"] is True
    assert described["modelKwargs"]["max_new_tokens"] == 5

    everything = lisa.get("/v1/describeModels").json()
    names = [m["modelName"] for m in everything["embedding"]["ecs.embedding.instructor"]]
    assert names == ["fake-instructor"]
    assert everything["embedding"]["ecs.embedding.instructor"][0]["modelKwargs"] == {
        "instruction": "Represent the query:"
    }


@pytest.mark.parametrize(
    ("params", "status", "param"),
    [
        ({"provider": "ecs.textgen.tgi"}, 400, "modelName"),
        ({"modelName": "fake-chat"}, 400, "provider"),
        ({"provider": "ecs.embedding.tei", "modelName": "fake-chat"}, 404, "provider"),
        ({"provider": "ecs.textgen.tgi", "modelName": "nope"}, 404, "modelName"),
    ],
)
def test_native_describe_errors(lisa: Lisa, params: dict[str, str], status: int, param: str) -> None:
    response = lisa.get("/v1/describeModel", params=params)
    assert response.status_code == status
    assert error_of(response)["param"] == param


def test_native_list_rejects_unknown_types(lisa: Lisa) -> None:
    response = lisa.get("/v1/listModels", params={"modelTypes": "images"})
    assert (response.status_code, error_of(response)["param"]) == (422, "modelTypes")


def test_native_generate(lisa: Lisa) -> None:
    body = {"provider": "ecs.textgen.tgi", "modelName": "fake-chat", "text": "Hi", "modelKwargs": {"max_new_tokens": 3}}
    response = lisa.post("/v1/generate", body)
    assert response.json() == {"generatedText": "tok0 tok1 tok2", "generatedTokens": 3, "finishReason": "length"}
    sent = lisa.fake.requests[-1][1]
    assert sent["inputs"] == "Hi"
    assert sent["parameters"]["max_new_tokens"] == 3


def test_native_generate_stream_is_one_event_per_token_as_the_first_lisa_sent(lisa: Lisa) -> None:
    body = {"provider": "ecs.textgen.tgi", "modelName": "fake-chat", "text": "Hi", "modelKwargs": {}}
    events = [json.loads(d) for d in sse_data(lisa.post("/v1/generateStream", body, stream=True))]
    assert events == [
        {"token": {"text": "tok0", "special": False}},
        {"token": {"text": " tok1", "special": False}},
        {"token": {"text": " tok2", "special": False}},
        {"token": {"text": " tok3", "special": False}},
        {"token": {"text": " tok4", "special": False}, "generatedTokens": 5, "finishReason": "length"},
    ]


def test_native_generate_stream_through_lisapy(lisa: Lisa) -> None:
    """lisapy's own test: one token asked, one event back, yielded with an empty token (lisapy drops its text)."""
    sdk = lisapy.Lisa(lisa.url, lisa.headers)
    model = next(m for m in sdk.list_textgen_models() if m.provider == "ecs.textgen.tgi" and m.streaming)
    model.model_kwargs["max_new_tokens"] = 1
    assert list(sdk.generate_stream("what is deep learning?", model)) == [
        lisapy.StreamingResponse(token="", finish_reason="length", generated_tokens=1)
    ]
    model.model_kwargs["max_new_tokens"] = 3
    responses = list(sdk.generate_stream("what is deep learning?", model))
    assert [r.token for r in responses] == ["tok0", " tok1", ""]
    assert (responses[-1].finish_reason, responses[-1].generated_tokens) == ("length", 3)


def test_native_embeddings(lisa: Lisa) -> None:
    body = {
        "provider": "ecs.embedding.tei",
        "modelName": "fake-embed",
        "text": "ab",
        "modelKwargs": {"normalize": False},
    }
    assert lisa.post("/v1/embeddings", body).json() == {"embeddings": [[2.0, 3.0, 4.0, 5.0]]}
    assert lisa.fake.requests[-1][1]["normalize"] is False
    body = {"provider": "ecs.embedding.instructor", "modelName": "fake-instructor", "text": ["a", "b"]}
    assert len(lisa.post("/v1/embeddings", {**body, "modelKwargs": {"instruction": "Doc:"}}).json()["embeddings"]) == 2
    assert lisa.fake.requests[-1][1] == {"instruction": "Doc:", "text": ["a", "b"]}


@pytest.mark.parametrize(
    ("path", "body", "status", "param"),
    [
        ("/v1/generate", {"provider": "ecs.textgen.tgi", "text": "x"}, 422, "modelName"),
        ("/v1/generate", {"provider": "ecs.textgen.tgi", "modelName": "fake-chat", "text": ["a"]}, 400, "text"),
        (
            "/v1/generate",
            {"provider": "ecs.textgen.tgi", "modelName": "fake-chat", "text": "x", "modelKwargs": {"top_p": 2}},
            422,
            "modelKwargs.top_p",
        ),
        ("/v1/generate", {"provider": "ecs.embedding.tei", "modelName": "fake-chat", "text": "x"}, 404, "provider"),
        ("/v1/embeddings", {"provider": "ecs.textgen.tgi", "modelName": "fake-chat", "text": "x"}, 400, "modelName"),
        (
            "/v1/generateStream",
            {"provider": "ecs.textgen.tgi", "modelName": "fake-nostream", "text": "x"},
            400,
            "modelName",
        ),
        ("/v1/generate", {"provider": "ecs.textgen.tgi", "modelName": "ghost", "text": "x"}, 404, "modelName"),
        ("/v1/embeddings", {"provider": "ecs.embedding.tei", "modelName": "ghost", "text": "x"}, 404, "modelName"),
    ],
)
def test_native_errors(lisa: Lisa, path: str, body: dict[str, Any], status: int, param: str) -> None:
    response = lisa.post(path, body)
    assert response.status_code == status, response.text
    assert error_of(response)["param"] == param


# -- error matrix ------------------------------------------------------------------------------------------------
def test_unknown_model_is_404_naming_known_models(lisa: Lisa) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        lisa.client().chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "x"}])
    error = caught.value.body
    assert isinstance(error, dict)
    assert "'gpt-4'" in error["message"]
    assert "fake-chat" in error["message"]
    assert (error["param"], error["code"]) == ("model", "model_not_found")


@pytest.mark.parametrize(
    ("raw", "status", "param"),
    [
        (b"{oops", 400, None),
        (b'"a string"', 400, None),
        (b'{"model": "fake-chat"}', 422, "messages"),
        (b'{"model": "fake-chat", "messages": [{"role": "user", "content": 5}]}', 422, "messages.0.content"),
        (b'{"model": "fake-chat", "messages": [{"role": "user", "content": "x"}], "n": 2}', 400, "n"),
        (
            b'{"model": "fake-chat", "messages": [{"role": "user", "content": "x"}], "temperature": -1}',
            422,
            "temperature",
        ),
        (b'{"model": "fake-embed", "messages": [{"role": "user", "content": "x"}]}', 400, "model"),
    ],
)
def test_bad_chat_bodies(lisa: Lisa, raw: bytes, status: int, param: str | None) -> None:
    response = requests.post(
        f"{lisa.url}/v1/openai/chat/completions",
        data=raw,
        headers={**lisa.headers, "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == status
    error = error_of(response)
    assert error["param"] == param
    if param:
        assert param.split(".")[0] in error["message"]
    assert lisa.fake.requests == []


_CHAT = {"model": "fake-chat", "messages": [{"role": "user", "content": "x"}]}
_NATIVE = {"provider": "ecs.textgen.tgi", "modelName": "fake-chat", "text": "x"}
_NATIVE_EMBED = {"provider": "ecs.embedding.tei", "modelName": "fake-embed", "text": "x"}
_DATA_PLANE_BODIES = [
    ("/v1/openai/chat/completions", _CHAT, "messages"),
    ("/v1/openai/completions", {"model": "fake-chat", "prompt": "x"}, "prompt"),
    ("/v1/openai/embeddings", {"model": "fake-embed", "input": "x"}, "input"),
    ("/v1/generate", _NATIVE, "text"),
    ("/v1/generateStream", _NATIVE, "text"),
    ("/v1/embeddings", _NATIVE_EMBED, "text"),
]


def _post_raw(lisa: Lisa, path: str, raw: bytes) -> requests.Response:
    headers = {**lisa.headers, "Content-Type": "application/json"}
    return requests.post(f"{lisa.url}{path}", data=raw, headers=headers, timeout=30)


@pytest.mark.parametrize(("path", "body", "field"), _DATA_PLANE_BODIES)
def test_deeply_nested_bodies_are_400_naming_the_field(lisa: Lisa, path: str, body: dict[str, Any], field: str) -> None:
    nested = json.dumps(body).replace(f'"{field}": ', f'"{field}": ' + "[" * 5000, 1).rstrip("}") + "]" * 5000 + "}"
    for raw in (nested.encode(), b"[" * 30_000 + b"]" * 30_000):
        response = _post_raw(lisa, path, raw)
        assert response.status_code == 400, response.text
        error = error_of(response)
        assert "nested too deeply" in error["message"]
        assert error["param"] == (field if raw.startswith(b"{") else None)
    assert lisa.fake.requests == []


_S = "a\ud800"  # a lone UTF-16 surrogate: json.dumps writes it as the escape "\\ud800", as an attacker would


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/openai/chat/completions", {**_CHAT, "messages": [{"role": "user", "content": _S}]}, "messages.0.content"),
        (
            "/v1/openai/chat/completions",
            {**_CHAT, "messages": [{"role": "user", "content": "a", "name": _S}]},
            "messages.0.name",
        ),
        (
            "/v1/openai/chat/completions",
            {**_CHAT, "messages": [{"role": "user", "content": [{"type": "text", "text": _S}]}]},
            "messages.0.content.0.text",
        ),
        ("/v1/openai/completions", {"model": "fake-chat", "prompt": _S}, "prompt"),
        ("/v1/openai/completions", {"model": "fake-chat", "prompt": ["ok", _S]}, "prompt.1"),
        ("/v1/openai/embeddings", {"model": "fake-embed", "input": _S}, "input"),
        ("/v1/generate", {**_NATIVE, "text": _S}, "text"),
        ("/v1/generateStream", {**_NATIVE, "text": _S}, "text"),
        ("/v1/embeddings", {**_NATIVE_EMBED, "text": ["ok", _S]}, "text.1"),
        ("/v1/openai/chat/completions", {**_CHAT, _S: 1}, None),  # a key: the body as a whole
    ],
)
def test_lone_surrogates_are_400_naming_the_field(
    lisa: Lisa, path: str, body: dict[str, Any], param: str | None
) -> None:
    response = _post_raw(lisa, path, json.dumps(body).encode())
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert (error["param"], error["code"]) == (param, "invalid_json")
    assert "lone UTF-16 surrogate" in error["message"]
    assert lisa.fake.requests == []


def test_surrogate_pairs_and_non_utf8_bodies(lisa: Lisa) -> None:
    """A valid pair (ensure_ascii JSON of an emoji) is text; bytes that are not UTF-8 (CESU-8 surrogates) are not."""
    raw = b'{"model": "fake-chat", "prompt": "\\ud83d\\ude00"}'
    assert _post_raw(lisa, "/v1/openai/completions", raw).status_code == 200
    assert lisa.fake.requests[-1][1]["inputs"] == "\U0001f600"
    response = _post_raw(lisa, "/v1/openai/completions", b'{"model": "fake-chat", "prompt": "\xed\xa0\x80"}')
    assert response.status_code == 400
    assert "not valid UTF-8" in error_of(response)["message"]


@pytest.mark.parametrize("value", [b"Bearer lisa_\xff\xfe", "Bearer lisa_ü".encode(), b"Bearer \xed\xa0\x80"])
def test_a_non_ascii_credential_is_401(lisa: Lisa, value: bytes) -> None:
    for response in (
        requests.get(f"{lisa.url}/v1/openai/models", headers={"Authorization": value}, timeout=10),
        requests.post(f"{lisa.url}/v1/generate", json=_NATIVE, headers={"Api-Key": value[7:]}, timeout=10),
    ):
        assert response.status_code == 401, response.text
        assert "ASCII" in error_of(response)["message"]


def test_embeddings_on_a_chat_model_is_400(lisa: Lisa) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        lisa.client().embeddings.create(model="fake-chat", input="x")
    assert "textgen" in str(caught.value)


def test_body_too_large_is_413(lisa: Lisa) -> None:
    big = {"model": "fake-chat", "messages": [{"role": "user", "content": "x" * 100_000}]}
    response = lisa.post("/v1/openai/chat/completions", big)
    assert response.status_code == 413
    assert error_of(response)["code"] == "too_large"


def test_model_not_in_service_is_503(lisa: Lisa) -> None:
    response = lisa.post(
        "/v1/openai/chat/completions", {"model": "fake-creating", "messages": [{"role": "user", "content": "x"}]}
    )
    assert response.status_code == 503
    assert "Creating" in error_of(response)["message"]


@pytest.mark.parametrize("stream", [False, True])
def test_backend_down_is_503(lisa: Lisa, stream: bool) -> None:
    body = {"model": "fake-down", "messages": [{"role": "user", "content": "x"}], "stream": stream}
    response = lisa.post("/v1/openai/chat/completions", body)
    assert response.status_code == 503
    assert error_of(response)["code"] == "backend_unavailable"


@pytest.mark.parametrize(
    ("path", "stream"),
    [("/v1/openai/chat/completions", False), ("/v1/openai/chat/completions", True), ("/v1/openai/embeddings", False)],
)
def test_slow_backend_is_504(lisa: Lisa, path: str, stream: bool) -> None:
    lisa.fake.mode, lisa.fake.delay = "slow", 4.0
    body: dict[str, Any] = {"model": "fake-chat", "messages": [{"role": "user", "content": "x"}], "stream": stream}
    if "embeddings" in path:
        body = {"model": "fake-embed", "input": "x"}
    response = lisa.post(path, body)
    assert response.status_code == 504
    assert error_of(response)["code"] == "backend_timeout"


_CHAT = {"model": "fake-chat", "messages": [{"role": "user", "content": "x"}]}
_BACKEND_CALLS = [
    ("/v1/openai/chat/completions", _CHAT),
    ("/v1/openai/completions", {"model": "fake-chat", "prompt": "x"}),
    ("/v1/openai/embeddings", {"model": "fake-embed", "input": "x"}),
    ("/v1/generate", {"provider": "ecs.textgen.tgi", "modelName": "fake-chat", "text": "x"}),
    ("/v1/embeddings", {"provider": "ecs.embedding.tei", "modelName": "fake-embed", "text": "x"}),
]


@pytest.mark.parametrize(("path", "body"), _BACKEND_CALLS)
def test_backend_json_that_is_not_an_object_is_502(lisa: Lisa, path: str, body: dict[str, Any]) -> None:
    lisa.fake.mode = "not_object"  # type: ignore[assignment]
    response = lisa.post(path, body)
    assert response.status_code == 502, response.text
    assert error_of(response)["type"] == "backend_error"
    assert "not" in error_of(response)["message"]


@pytest.mark.parametrize(("path", "body", "sends"), [(*_BACKEND_CALLS[0], 1), (*_BACKEND_CALLS[2], 2)])
def test_a_dropped_generation_is_never_sent_twice(lisa: Lisa, path: str, body: dict[str, Any], sends: int) -> None:
    lisa.fake.mode = "drop"  # type: ignore[assignment]
    response = lisa.post(path, body)
    assert response.status_code == 502, response.text
    assert len(lisa.fake.requests) == sends  # embeddings are idempotent and retried once; generation is not


def test_backend_refusal_is_400_with_its_message(lisa: Lisa) -> None:
    lisa.fake.mode = "error"
    with pytest.raises(openai.BadRequestError) as caught:
        lisa.client().completions.create(model="fake-chat", prompt="x")
    assert "must have less than 2048 tokens" in str(caught.value)
    lisa.fake.mode, lisa.fake.error_status = "error", 429
    response = lisa.post("/v1/generate", {"provider": "ecs.textgen.tgi", "modelName": "fake-chat", "text": "x"})
    assert response.status_code == 429


@pytest.mark.parametrize("mode", ["fail_midstream", "drop_midstream", "stall_midstream"])
def test_failure_mid_stream_is_an_error_event_then_done(lisa: Lisa, mode: str) -> None:
    lisa.fake.mode, lisa.fake.fail_after, lisa.fake.delay = mode, 2, 4.0  # type: ignore[assignment]
    body = {"model": "fake-chat", "messages": [{"role": "user", "content": "x"}], "stream": True, "max_tokens": 6}
    response = lisa.post("/v1/openai/chat/completions", body, stream=True)
    assert response.status_code == 200
    data = sse_data(response)
    assert data[-1] == "[DONE]"
    tokens = [json.loads(d)["choices"][0]["delta"]["content"] for d in data[:2]]
    assert tokens == ["tok0", " tok1"]
    error = json.loads(data[2])
    ErrorResponse.model_validate(error)
    expected = {"fail_midstream": "out of memory", "drop_midstream": "broke off", "stall_midstream": "sent nothing"}
    assert expected[mode] in error["error"]["message"]
    assert len(data) == 4


def test_openai_sdk_raises_on_a_mid_stream_error(lisa: Lisa) -> None:
    lisa.fake.mode = "fail_midstream"
    stream = lisa.client().chat.completions.create(
        model="fake-chat", messages=[{"role": "user", "content": "x"}], stream=True
    )
    with pytest.raises(openai.APIError, match="out of memory"):
        list(stream)


def test_native_stream_failure_is_a_final_error_event(lisa: Lisa) -> None:
    lisa.fake.mode = "fail_midstream"
    body = {"provider": "ecs.textgen.tgi", "modelName": "fake-chat", "text": "x"}
    data = sse_data(lisa.post("/v1/generateStream", body, stream=True))
    assert [json.loads(d)["token"]["text"] for d in data[:2]] == ["tok0", " tok1"]
    assert "out of memory" in json.loads(data[2])["error"]["message"]
    assert len(data) == 3


def _raw_request(url: str, path: str, token: str, body: dict[str, Any]) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    payload = json.dumps(body).encode()
    sock = socket.create_connection((host, int(port)), timeout=10)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    sock.sendall(head.encode() + payload)
    return sock


def test_client_disconnect_mid_stream_cancels_the_backend(lisa: Lisa) -> None:
    lisa.fake.tokens, lisa.fake.token_interval = 200, 0.05
    body = {"model": "fake-chat", "messages": [{"role": "user", "content": "x"}], "stream": True, "max_tokens": 200}
    sock = _raw_request(lisa.url, "/v1/openai/chat/completions", lisa.token, body)
    received = b""
    while b"tok1" not in received:  # the stream is flowing
        received += sock.recv(4096)
    sock.close()
    assert lisa.fake.disconnected.wait(10), "the backend never saw the client go away"
    assert lisa.fake.finished_streams == 0


def test_client_disconnect_during_a_call_cancels_the_backend(lisa: Lisa) -> None:
    lisa.fake.mode, lisa.fake.delay = "slow", 1.2
    body = {"provider": "ecs.textgen.tgi", "modelName": "fake-chat", "text": "x"}
    sock = _raw_request(lisa.url, "/v1/generate", lisa.token, body)
    deadline = time.monotonic() + 5
    while not lisa.fake.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    assert lisa.fake.requests, "the request never reached the backend"
    sock.close()
    assert lisa.fake.disconnected.wait(5), "the backend call was not cancelled"
