"""Acceptance: the router in front of the real CPU workers (SmolLM2-135M-Instruct on TGI, all-MiniLM-L6-v2 on TEI
and the instructor protocol), registered from config.yaml (its chat model on the TGI worker), with moto-backed API
tokens. Clients are the official `openai` SDK (unmodified) and plain HTTP as the lisapy SDK sends it."""

from __future__ import annotations

import json
import math
import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
import requests

from chalicelib.auth.tokens import TokenStore
from chalicelib.registry.models import CreateModelRequest
from chalicelib.registry.store import ModelStore
from chalicelib.registry.sync import sync_models
from router.settings import RouterSettings
from tests.support.configs import tgi_config
from tests.support.servers import AppThread
from tests.test_router import start_router

pytestmark = pytest.mark.slow

CHAT_MODEL = "smollm2-135m-instruct"
EMBED_MODEL = "all-minilm-l6-v2"
INSTRUCTOR_MODEL = "minilm-instructor"


class Lisa:
    def __init__(self, server: AppThread, token: str, tgi: str, tei: str) -> None:
        self.url, self.token, self.tgi, self.tei = server.url, token, tgi, tei
        self.client = openai.OpenAI(base_url=f"{self.url}/v1/openai", api_key=token, max_retries=0, timeout=120)
        self.headers = {"Api-Key": token}

    def post(self, path: str, body: Any, **kwargs: Any) -> requests.Response:
        return requests.post(f"{self.url}{path}", json=body, headers=self.headers, timeout=120, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(f"{self.url}{path}", headers=self.headers, timeout=30, **kwargs)


@pytest.fixture
def lisa(aws_env: str, tgi_worker: str, tei_worker: str) -> Iterator[Lisa]:
    sync_models(tgi_config(), {CHAT_MODEL: tgi_worker, EMBED_MODEL: tei_worker})  # config.yaml, chat on TGI
    ModelStore().create(
        CreateModelRequest.model_validate(
            {
                "modelName": INSTRUCTOR_MODEL,
                "hfModelId": "sentence-transformers/all-MiniLM-L6-v2",
                "inferenceContainer": "instructor",
                "endpointUrl": tei_worker,
            }
        )
    )
    token, _ = TokenStore().create("carol", groups=["users"])
    server = start_router(RouterSettings(access_log=False))
    yield Lisa(server, token, tgi_worker, tei_worker)
    server.stop()


def ask(lisa: Lisa, question: str, **kwargs: Any) -> Any:
    return lisa.client.chat.completions.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": question}], temperature=0, **kwargs
    )


def test_chat_answers_the_capital_of_france(lisa: Lisa) -> None:
    completion = ask(lisa, "What is the capital of France?", max_tokens=32)
    answer = completion.choices[0].message.content or ""
    assert "Paris" in answer
    assert completion.model == CHAT_MODEL
    assert completion.choices[0].finish_reason in ("stop", "length")
    assert completion.usage is not None
    assert completion.usage.prompt_tokens > 5  # the chat template wrapped the question
    assert completion.usage.completion_tokens > 0


def test_chat_stream_comes_in_pieces_with_usage_last(lisa: Lisa) -> None:
    # That the first piece leaves before the generation ends is proven on the wire by the next test.
    stream = ask(lisa, "Name three colours.", max_tokens=40, stream=True, stream_options={"include_usage": True})
    pieces: list[str] = []
    usage = None
    for chunk in stream:
        assert usage is None, "a chunk came after the usage chunk"
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if chunk.usage is not None:
            usage = chunk.usage
            assert not chunk.choices
    assert len(pieces) > 3
    assert usage is not None
    assert usage.completion_tokens >= len(pieces)


def test_stream_first_bytes_come_before_the_end(lisa: Lisa) -> None:
    """On the wire: the first read of the response holds the first chunk, not the finished stream."""
    host, port = lisa.url.removeprefix("http://").split(":")
    body = json.dumps(
        {
            "model": CHAT_MODEL,
            "messages": [{"role": "user", "content": "Count from one to twenty in words."}],
            "max_tokens": 60,
            "temperature": 0,
            "stream": True,
        }
    ).encode()
    with socket.create_connection((host, int(port)), timeout=120) as sock:
        sock.sendall(
            f"POST /v1/openai/chat/completions HTTP/1.1\r\nHost: x\r\nApi-Key: {lisa.token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        received = b""
        while b'"delta"' not in received:
            received += sock.recv(65536)
        assert b"[DONE]" not in received
        while b"[DONE]" not in received:
            chunk = sock.recv(65536)
            assert chunk, "the stream ended without [DONE]"
            received += chunk
    assert received.count(b'"delta"') > 5


def test_greedy_chat_is_the_same_streamed_or_not(lisa: Lisa) -> None:
    whole = ask(lisa, "Say hello in French.", max_tokens=16).choices[0].message.content
    streamed = "".join(
        c.choices[0].delta.content or ""
        for c in ask(lisa, "Say hello in French.", max_tokens=16, stream=True)
        if c.choices
    )
    assert whole == streamed


def test_completions(lisa: Lisa) -> None:
    completion = lisa.client.completions.create(
        model=CHAT_MODEL, prompt="The capital of France is", max_tokens=8, temperature=0
    )
    assert completion.choices[0].text.strip()
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 5
    assert completion.usage.completion_tokens == 8
    assert completion.choices[0].finish_reason == "length"
    streamed = lisa.client.completions.create(
        model=CHAT_MODEL, prompt="The capital of France is", max_tokens=8, temperature=0, stream=True
    )
    assert "".join(c.choices[0].text for c in streamed) == completion.choices[0].text


def test_embeddings_match_the_backend(lisa: Lisa) -> None:
    texts = ["The cat sits on the mat.", "Paris is the capital of France."]
    result = lisa.client.embeddings.create(model=EMBED_MODEL, input=texts)  # the SDK asks for base64
    direct = requests.post(f"{lisa.tei}/embed", json={"inputs": texts}, timeout=60).json()
    assert len(result.data) == 2
    for item, expected in zip(result.data, direct, strict=True):
        assert len(item.embedding) == 384
        assert item.embedding == pytest.approx(expected, abs=1e-6)
        assert math.isclose(math.fsum(x * x for x in item.embedding), 1.0, rel_tol=1e-4)
    assert result.usage.prompt_tokens > len(texts)


def test_native_api(lisa: Lisa) -> None:
    listing = lisa.get("/v1/listModels").json()
    assert listing["textgen"] == {"ecs.textgen.tgi": [CHAT_MODEL]}
    assert listing["embedding"]["ecs.embedding.tei"] == [EMBED_MODEL]
    described = lisa.get("/v1/describeModel", params={"provider": "ecs.textgen.tgi", "modelName": CHAT_MODEL}).json()
    assert described["modelKwargs"]["max_new_tokens"] == 256  # config.yaml's defaultModelKwargs
    assert described["streaming"] is True

    body = {
        "provider": "ecs.textgen.tgi",
        "modelName": CHAT_MODEL,
        "text": "The capital of France is",
        "modelKwargs": {"max_new_tokens": 12, "temperature": 0},
    }
    generated = lisa.post("/v1/generate", body).json()
    assert generated["generatedTokens"] == 12
    assert generated["finishReason"] == "length"
    with lisa.post("/v1/generateStream", body, stream=True) as streamed:
        events = [json.loads(line.removeprefix(b"data:")) for line in streamed.iter_lines() if line]
    assert len(events) == 12  # one event per generated token, the last with the counts (the first LISA's format)
    assert all(set(e) == {"token"} for e in events[:-1])
    assert (events[-1]["generatedTokens"], events[-1]["finishReason"]) == (12, "length")
    assert "".join(e["token"]["text"] for e in events) == generated["generatedText"]

    tei = lisa.post("/v1/embeddings", {"provider": "ecs.embedding.tei", "modelName": EMBED_MODEL, "text": ["a", "b"]})
    assert [len(v) for v in tei.json()["embeddings"]] == [384, 384]
    instructor = lisa.post(
        "/v1/embeddings",
        {
            "provider": "ecs.embedding.instructor",
            "modelName": INSTRUCTOR_MODEL,
            "text": "a",
            "modelKwargs": {"instruction": "Represent the question:"},
        },
    ).json()["embeddings"]
    assert len(instructor[0]) == 384
    assert instructor[0] != tei.json()["embeddings"][0]  # the instruction changes the embedding


def test_backend_validation_error_reaches_the_caller(lisa: Lisa) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        lisa.client.completions.create(model=CHAT_MODEL, prompt="word " * 1600, max_tokens=8)
    assert "tokens" in str(caught.value)


def _cancelled(tgi: str) -> int:
    metrics = requests.get(f"{tgi}/metrics", timeout=10).text
    found = re.search(r"^tgi_request_cancelled (\d+)", metrics, re.MULTILINE)
    assert found is not None
    return int(found.group(1))


def test_disconnect_cancels_generation_on_the_worker(lisa: Lisa) -> None:
    before = _cancelled(lisa.tgi)
    response = lisa.post(
        "/v1/openai/chat/completions",
        {
            "model": CHAT_MODEL,
            "messages": [{"role": "user", "content": "Write a long story about a dragon."}],
            "max_tokens": 400,
            "stream": True,
        },
        stream=True,
    )
    lines = response.iter_lines()
    assert next(line for line in lines if line.startswith(b"data:"))
    response.close()
    deadline = time.monotonic() + 30
    while _cancelled(lisa.tgi) == before:
        assert time.monotonic() < deadline, "the worker kept generating after the client left"
        time.sleep(0.2)
