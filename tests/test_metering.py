"""Acceptance: the router meters real requests. The real router on loopback in front of the session's CPU workers
(SmolLM2 on TGI, MiniLM on TEI), the official `openai` SDK as the client, moto's DynamoDB for tokens, registry and
the usage table; the router's clock is fixed, so the day figures land on is known."""

from __future__ import annotations

import json
import queue
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import openai
import pytest
import requests

from chalicelib.auth.authorizer import Authorizer
from chalicelib.auth.tokens import TokenStore
from chalicelib.config import parse_config
from chalicelib.registry.resolver import CachedRegistry
from chalicelib.registry.store import ModelStore
from chalicelib.registry.sync import sync_models
from chalicelib.settings import get_settings
from chalicelib.usage.store import UsageStore
from router.accounting import CLIENT_CLOSED, RequestUsage, add_listener
from router.app import create_app
from router.metering import Meter
from router.settings import RouterSettings
from tests.support.configs import CHAT_MODEL, tgi_config
from tests.support.servers import AppThread
from tests.support.vllm import VLLM_MODEL, VllmStack, vllm_model

pytestmark = pytest.mark.slow

EMBED_MODEL = "all-minilm-l6-v2"
DAY = date(2026, 12, 3)
NOW = datetime(2026, 12, 3, 23, 59, 0, tzinfo=UTC).timestamp()


class Metered:
    """The router with a Meter (flushed by the test) and a queue of every finished request."""

    def __init__(self, token: str) -> None:
        self.lines: list[str] = []
        self.meter = Meter(UsageStore(), flush_seconds=3600, emit=self.lines.append, clock=lambda: NOW)
        self.finished: queue.Queue[RequestUsage] = queue.Queue()
        self.server = AppThread(self._app)
        self.url = self.server.start()
        self.client = openai.OpenAI(base_url=f"{self.url}/v1/openai", api_key=token, max_retries=0, timeout=120)
        self.token = token

    def _app(self) -> Any:
        app = create_app(
            RouterSettings(access_log=False),
            authorizer=Authorizer.from_settings(get_settings()),
            registry=CachedRegistry(ModelStore(), ttl_seconds=60),
            clock=lambda: NOW,
            meter=self.meter,
        )
        add_listener(app, self.finished.put)
        return app

    def ended(self) -> RequestUsage:
        """The next request the router finished (the listeners have seen it)."""
        return self.finished.get(timeout=120)

    def figures(self, model: str = CHAT_MODEL) -> tuple[int, int, int, int]:
        """Flush, then the table's (requests, errors, prompt tokens, completion tokens) of carol today."""
        assert self.server.call(self.meter.flush()) == 0
        days = UsageStore().days("token:carol", DAY - timedelta(days=1), DAY + timedelta(days=1), model)
        if not days:
            return (0, 0, 0, 0)
        (day,) = days
        assert day.date == DAY.isoformat()
        return day.requests, day.errors, day.prompt_tokens, day.completion_tokens


@pytest.fixture
def metered(aws_env: str, tgi_worker: str, tei_worker: str) -> Iterator[Metered]:
    sync_models(tgi_config(), {CHAT_MODEL: tgi_worker, EMBED_MODEL: tei_worker})
    token, _ = TokenStore().create("carol", groups=["users"])
    lisa = Metered(token)
    yield lisa
    lisa.server.stop()


@pytest.fixture
def metered_vllm(aws_env: str, vllm_stack: VllmStack) -> Iterator[Metered]:
    """The same, in front of the session's real vLLM engine (registered here under VLLM_MODEL)."""
    config = {"deploymentName": "lisa", "s3BucketModels": "lisa-models", "ecsModels": [vllm_model(VLLM_MODEL)]}
    sync_models(parse_config(config), {VLLM_MODEL: vllm_stack.engine_url()})
    token, _ = TokenStore().create("carol")
    lisa = Metered(token)
    yield lisa
    lisa.server.stop()


def chat(lisa: Metered, question: str, model: str = CHAT_MODEL, **kwargs: Any) -> Any:
    messages: list[Any] = [{"role": "user", "content": question}]
    return lisa.client.chat.completions.create(model=model, messages=messages, temperature=0, **kwargs)


def read_then_hang_up(stream: Any, chunks: int) -> None:
    """Read `chunks` chunks with text (a token each), then close the connection (the client goes away mid-stream)."""
    received = 0
    for chunk in stream:
        received += bool(chunk.choices and chunk.choices[0].delta.content)
        if received == chunks:
            break
    stream.close()


def test_streamed_and_plain_chats_are_counted_with_their_tokens(metered: Metered) -> None:
    plain = chat(metered, "What is the capital of France?", max_tokens=12)
    first = metered.ended()
    assert (first.route, first.status, first.model) == ("createChatCompletion", 200, CHAT_MODEL)
    assert first.token_id is not None
    assert metered.figures() == (1, 0, plain.usage.prompt_tokens, plain.usage.completion_tokens)

    stream = chat(metered, "Name three colours.", max_tokens=20, stream=True, stream_options={"include_usage": True})
    usage = [chunk.usage for chunk in stream if chunk.usage is not None][-1]
    metered.ended()
    assert metered.figures() == (
        2,
        0,
        plain.usage.prompt_tokens + usage.prompt_tokens,
        plain.usage.completion_tokens + usage.completion_tokens,
    )
    unasked = list(chat(metered, "Say hi.", max_tokens=6, stream=True))  # no usage for the client; still counted
    counted = metered.ended()
    assert 0 < counted.completion_tokens <= 6
    assert counted.completion_tokens >= len([c for c in unasked if c.choices and c.choices[0].delta.content])
    assert counted.prompt_tokens > 5
    assert metered.figures()[0] == 3


def test_a_disconnected_stream_counts_what_was_produced(metered: Metered) -> None:
    read_then_hang_up(chat(metered, "Count from one to one hundred in words.", max_tokens=200, stream=True), 3)
    cut = metered.ended()
    assert cut.disconnected
    assert cut.status == CLIENT_CLOSED
    assert 3 <= cut.completion_tokens < 200
    requests_, errors, _, completion = metered.figures()
    assert (requests_, errors, completion) == (1, 1, cut.completion_tokens)


def test_embeddings_and_native_calls_are_counted(metered: Metered) -> None:
    embedded = metered.client.embeddings.create(model=EMBED_MODEL, input=["a cat", "a dog on a mat"])
    metered.ended()
    assert metered.figures(EMBED_MODEL) == (1, 0, embedded.usage.prompt_tokens, 0)
    assert embedded.usage.prompt_tokens > 0

    body: dict[str, Any] = {
        "provider": "ecs.textgen.tgi",
        "modelName": CHAT_MODEL,
        "text": "Hello",
        "modelKwargs": {"max_new_tokens": 5},
    }
    answer = requests.post(f"{metered.url}/v1/generate", json=body, headers={"Api-Key": metered.token}, timeout=120)
    assert answer.status_code == 200
    native = metered.ended()
    assert native.route == "generate"
    assert native.completion_tokens == answer.json()["generatedTokens"]
    assert native.prompt_tokens > 0

    streamed = requests.post(
        f"{metered.url}/v1/generateStream", json=body, headers={"Api-Key": metered.token}, timeout=120, stream=True
    )
    events = [json.loads(line[5:]) for line in streamed.iter_lines() if line.startswith(b"data:")]
    counted = metered.ended()
    assert counted.completion_tokens == events[-1]["generatedTokens"] == len(events)
    assert counted.prompt_tokens == native.prompt_tokens
    assert metered.figures() == (2, 0, 2 * native.prompt_tokens, native.completion_tokens + len(events))


def test_refusals_count_as_errors_and_emf_names_no_user(metered: Metered, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "lisa-router")  # as a container may set it: still no dimension
    with pytest.raises(openai.BadRequestError):  # an embedding model asked to chat
        metered.client.chat.completions.create(model=EMBED_MODEL, messages=[{"role": "user", "content": "Hi"}])
    assert metered.ended().status == 400
    list(metered.client.models.list())
    assert metered.ended().model is None
    assert metered.figures(EMBED_MODEL) == (1, 1, 0, 0)
    assert metered.figures() == (0, 0, 0, 0)  # the listing used no model
    documents = [json.loads(line) for line in metered.lines]
    assert {(d["model"], d["route"]) for d in documents} == {
        (EMBED_MODEL, "createChatCompletion"),
        ("none", "listOpenAIModels"),
    }
    for document in documents:
        (directive,) = document["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "LISA"
        assert directive["Dimensions"] == [["model", "route"]]
        assert set(document) == {
            "_aws",
            "model",
            "route",
            "Requests",
            "Errors",
            "PromptTokens",
            "CompletionTokens",
            "LatencyMs",
        }
    assert "carol" not in "".join(metered.lines)


@pytest.mark.vllm
def test_vllm_calls_are_counted_streams_cut_short_included(metered_vllm: Metered) -> None:
    lisa, question = metered_vllm, "Count from one to one hundred in words."
    plain = chat(lisa, question, VLLM_MODEL, max_tokens=8)
    lisa.ended()
    assert lisa.figures(VLLM_MODEL) == (1, 0, plain.usage.prompt_tokens, plain.usage.completion_tokens)

    streamed = list(chat(lisa, question, VLLM_MODEL, max_tokens=8, stream=True, stream_options={"include_usage": True}))
    assert all(chunk.usage is None for chunk in streamed[:-1])  # the running usage the router asks for stays inside
    assert streamed[-1].usage == plain.usage
    lisa.ended()

    read_then_hang_up(chat(lisa, question, VLLM_MODEL, max_tokens=200, stream=True), 3)
    cut = lisa.ended()
    assert cut.status == CLIENT_CLOSED
    assert cut.prompt_tokens == plain.usage.prompt_tokens  # vLLM's running usage: exact even when cut short
    assert 3 <= cut.completion_tokens < 200
    expected = (3, 1, 3 * plain.usage.prompt_tokens, 2 * plain.usage.completion_tokens + cut.completion_tokens)
    assert lisa.figures(VLLM_MODEL) == expected

    body: dict[str, Any] = {
        "provider": "ecs.textgen.vllm",
        "modelName": VLLM_MODEL,
        "text": "Hello",
        "modelKwargs": {"max_new_tokens": 5},
    }
    answer = requests.post(
        f"{lisa.url}/v1/generateStream", json=body, headers={"Api-Key": lisa.token}, timeout=120, stream=True
    )
    events = [json.loads(line[5:]) for line in answer.iter_lines() if line.startswith(b"data:")]
    native = lisa.ended()
    assert (native.route, native.completion_tokens) == ("generateStream", events[-1]["generatedTokens"])
    assert native.prompt_tokens > 0
