"""The TGI-compatible CPU worker, driven by HF's own `text_generation` clients, the OpenAI SDK and raw HTTP."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI
from text_generation import AsyncClient, Client
from text_generation.errors import OverloadedError, ValidationError
from text_generation.types import FinishReason

from tests.support.workers import HUGE, TGI_ENVIRONMENT, running_worker, small_while_huge
from workers.prepare import SMOLLM2_ID

pytestmark = pytest.mark.slow

COUNTING = "Count: 1, 2, 3,"  # SmolLM2 keeps counting under greedy decoding: a generation that does not stop early


@pytest.fixture(scope="module")
def client(tgi_worker: str) -> Client:
    return Client(tgi_worker, timeout=120)


@pytest.fixture(scope="module")
def http(tgi_worker: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=tgi_worker, timeout=120) as session:
        yield session


def metrics(http: httpx.Client) -> dict[str, float]:
    lines = http.get("/metrics").text.splitlines()
    return {name: float(value) for name, value in (line.split() for line in lines if line)}


def wait_idle(http: httpx.Client, attempts: int = 200) -> dict[str, float]:
    """Poll until no sequence is generating or queued (bounded), then return the metrics."""
    for _ in range(attempts):
        current = metrics(http)
        if current["tgi_batch_current_size"] == 0 and current["tgi_queue_size"] == 0:
            return current
        time.sleep(0.1)
    raise AssertionError(f"worker still busy: {current}")


def sse_events(lines: Iterator[str]) -> Iterator[dict[str, object]]:
    for line in lines:
        if line.startswith("data:") and line[5:].strip() != "[DONE]":
            yield json.loads(line[5:])


# -- /info, /health -----------------------------------------------------------------------------------------------
def test_info_reports_model_and_limits_with_tgi_field_names(http: httpx.Client) -> None:
    info = http.get("/info").json()
    assert info["model_id"] == SMOLLM2_ID
    assert info["model_pipeline_tag"] == "text-generation"
    assert info["max_input_tokens"] == int(TGI_ENVIRONMENT["MAX_INPUT_LENGTH"])
    assert info["max_total_tokens"] == int(TGI_ENVIRONMENT["MAX_TOTAL_TOKENS"])
    assert info["max_concurrent_requests"] == int(TGI_ENVIRONMENT["MAX_CONCURRENT_REQUESTS"])
    for key in ("max_best_of", "max_stop_sequences", "max_client_batch_size", "validation_workers", "version"):
        assert key in info
    assert http.get("/health").status_code == 200


# -- /generate through HF's client ----------------------------------------------------------------------------------
def test_generate_returns_details_consistent_with_text(client: Client) -> None:
    response = client.generate("The capital of France is", max_new_tokens=6)
    details = response.details
    assert details.finish_reason == FinishReason.Length
    assert details.generated_tokens == 6 == len(details.tokens)
    assert details.seed is None  # greedy
    assert "".join(t.text for t in details.tokens) == response.generated_text
    assert "Paris" in response.generated_text
    assert all(t.logprob is not None and t.logprob <= 0 for t in details.tokens)
    assert details.prefill == []


def test_generation_ends_on_the_eos_token(client: Client) -> None:
    prompt = (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    )
    response = client.generate(prompt, max_new_tokens=60)
    assert response.details.finish_reason == FinishReason.EndOfSequenceToken
    last = response.details.tokens[-1]
    assert last.special
    assert last.text == "<|im_end|>"
    assert "<|im_end|>" not in response.generated_text
    assert response.details.generated_tokens < 60


def test_stop_sequence_ends_generation_and_is_kept(client: Client) -> None:
    response = client.generate("The capital of France is", max_new_tokens=30, stop_sequences=["."])
    assert response.details.finish_reason == FinishReason.StopSequence
    assert response.generated_text.endswith(".")
    assert response.generated_text.count(".") == 1
    assert response.details.generated_tokens < 30


def test_seed_makes_sampling_reproducible(client: Client) -> None:
    kwargs = {"max_new_tokens": 16, "do_sample": True, "temperature": 0.9, "top_k": 50, "top_p": 0.95}
    first = client.generate("Once upon a time", seed=1234, **kwargs)
    again = client.generate("Once upon a time", seed=1234, **kwargs)
    other = client.generate("Once upon a time", seed=4321, **kwargs)
    assert first.generated_text == again.generated_text
    assert [t.id for t in first.details.tokens] == [t.id for t in again.details.tokens]
    assert first.details.seed == 1234
    assert other.generated_text != first.generated_text
    unseeded = client.generate("Once upon a time", max_new_tokens=2, do_sample=True)
    assert isinstance(unseeded.details.seed, int)  # TGI reports the seed it drew


def test_prompt_details_top_tokens_and_full_text(client: Client) -> None:
    response = client.generate(
        "The capital of France is",
        max_new_tokens=3,
        decoder_input_details=True,
        top_n_tokens=3,
        return_full_text=True,
    )
    prefill = response.details.prefill
    assert [t.text for t in prefill] == ["The", " capital", " of", " France", " is"]
    assert prefill[0].logprob is None
    assert all(t.logprob is not None and t.logprob <= 0 for t in prefill[1:])
    assert response.generated_text.startswith("The capital of France is")
    top = response.details.top_tokens
    assert top is not None
    assert len(top) == 3
    for step, chosen in zip(top, response.details.tokens, strict=True):
        assert len(step) == 3
        assert step[0].logprob >= step[1].logprob >= step[2].logprob
        assert chosen.id == step[0].id  # greedy picks the most likely token


def test_best_of_returns_the_best_sequence_and_the_others(http: httpx.Client) -> None:
    body = {"inputs": "Write a word:", "parameters": {"max_new_tokens": 4, "best_of": 2, "do_sample": True}}
    payload = http.post("/generate", json={**body, "parameters": {**body["parameters"], "details": True}}).json()
    best = payload["details"]
    others = best["best_of_sequences"]
    assert len(others) == 1
    assert sum(t["logprob"] for t in best["tokens"]) >= sum(t["logprob"] for t in others[0]["tokens"])


def test_truncate_keeps_the_last_tokens(client: Client) -> None:
    long_prompt = "word " * 3000 + "The capital of France is"
    response = client.generate(long_prompt, max_new_tokens=2, truncate=12, decoder_input_details=True)
    assert len(response.details.prefill) == 12
    assert "".join(t.text for t in response.details.prefill).endswith("The capital of France is")


def test_tokenize_returns_ids_and_offsets(http: httpx.Client) -> None:
    tokens = http.post("/tokenize", json={"inputs": "héllo world"}).json()
    assert "".join(t["text"] for t in tokens) == "héllo world"
    assert tokens[-1] == {"id": tokens[-1]["id"], "text": " world", "start": 5, "stop": 11}


# -- streaming --------------------------------------------------------------------------------------------------------
def test_generate_stream_yields_tokens_then_the_final_text(client: Client) -> None:
    events = list(client.generate_stream(COUNTING, max_new_tokens=12))
    assert len(events) == 12
    assert all(e.generated_text is None and e.details is None for e in events[:-1])
    final = events[-1]
    assert final.details is not None
    assert final.details.finish_reason == FinishReason.Length
    assert final.details.generated_tokens == 12
    assert final.generated_text == "".join(e.token.text for e in events if not e.token.special)
    assert final.generated_text.startswith(" 4, 5")


def test_stream_wire_format_matches_tgi(http: httpx.Client) -> None:
    body = {"inputs": COUNTING, "parameters": {"max_new_tokens": 3}}
    with http.stream("POST", "/generate_stream", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data:{") for line in raw)
    events = [json.loads(line[5:]) for line in raw]
    assert [e["index"] for e in events] == [1, 2, 3]
    assert set(events[0]) >= {"index", "token", "generated_text", "details"}
    assert set(events[0]["token"]) == {"id", "text", "logprob", "special"}
    assert events[-1]["details"]["finish_reason"] == "length"
    assert events[-1]["details"]["input_length"] == len(http.post("/tokenize", json={"inputs": COUNTING}).json())


def test_first_token_leaves_before_generation_ends(http: httpx.Client) -> None:
    wait_idle(http)
    body = {"inputs": COUNTING, "parameters": {"max_new_tokens": 40}}
    arrivals: list[float] = []
    still_generating = None
    with http.stream("POST", "/generate_stream", json=body) as response:
        for event in sse_events(response.iter_lines()):
            arrivals.append(time.monotonic())
            if still_generating is None:
                # The first token is in our hands: the worker must still be generating the rest of the sequence.
                still_generating = metrics(http)["tgi_batch_current_size"]
            if event["details"] is not None:
                break
    assert still_generating == 1
    assert len(arrivals) == 40
    assert arrivals[0] < arrivals[-1]


def test_async_client_generate_and_stream(tgi_worker: str) -> None:
    async def scenario() -> tuple[str, list[str]]:
        client = AsyncClient(tgi_worker, timeout=120)
        response = await client.generate("The capital of France is", max_new_tokens=4)
        tokens = [event.token.text async for event in client.generate_stream(COUNTING, max_new_tokens=5)]
        return response.generated_text, tokens

    text, tokens = asyncio.run(scenario())
    assert "Paris" in text
    assert len(tokens) == 5


def test_disconnect_stops_the_generation(http: httpx.Client, tgi_worker: str) -> None:
    before = wait_idle(http)
    with (
        httpx.Client(base_url=tgi_worker, timeout=120) as own,
        own.stream(
            "POST", "/generate_stream", json={"inputs": COUNTING, "parameters": {"max_new_tokens": 400}}
        ) as response,
    ):
        for received, _ in enumerate(sse_events(response.iter_lines()), start=1):
            if received == 3:
                break  # leaving the block closes the connection mid-stream
    after = wait_idle(http)
    assert after["tgi_request_cancelled"] == before["tgi_request_cancelled"] + 1
    assert after["tgi_request_success"] == before["tgi_request_success"]
    assert after["tgi_request_generated_tokens_total"] - before["tgi_request_generated_tokens_total"] < 100


def test_health_answers_while_generating(http: httpx.Client, tgi_worker: str) -> None:
    body = {"inputs": COUNTING, "parameters": {"max_new_tokens": 30}}
    with httpx.Client(base_url=tgi_worker, timeout=120) as own, own.stream("POST", "/generate_stream", json=body) as r:
        events = sse_events(r.iter_lines())  # keep a reference: a collected iterator would close the response
        next(events)
        assert metrics(http)["tgi_batch_current_size"] == 1
        assert http.get("/health").status_code == 200
        assert http.get("/info").status_code == 200


# -- concurrency ------------------------------------------------------------------------------------------------------
def test_sixteen_concurrent_requests_all_succeed_and_match_sequential(tgi_worker: str, client: Client) -> None:
    prompts = [f"Question {i}: what comes after {i}? Answer:" for i in range(16)]
    alone = client.generate(prompts[5], max_new_tokens=10).generated_text

    async def together() -> list[str]:
        async_client = AsyncClient(tgi_worker, timeout=300)
        responses = await asyncio.gather(*(async_client.generate(p, max_new_tokens=10) for p in prompts))
        assert all(r.details.generated_tokens >= 1 for r in responses)
        return [r.generated_text for r in responses]

    texts = asyncio.run(together())
    assert len(texts) == 16
    assert texts[5] == alone  # batching with 15 other sequences does not change a greedy result


def test_requests_beyond_the_concurrency_limit_are_refused(tmp_path: Path) -> None:
    environment = {**TGI_ENVIRONMENT, "MAX_CONCURRENT_REQUESTS": "1"}
    with running_worker("tgi", SMOLLM2_ID, tmp_path, environment=environment) as url:
        body = {"inputs": COUNTING, "parameters": {"max_new_tokens": 200}}
        with httpx.Client(base_url=url, timeout=120) as http, http.stream("POST", "/generate_stream", json=body) as r:
            events = sse_events(r.iter_lines())  # keep a reference: a collected iterator would close the response
            next(events)  # the first request is running
            refused = http.post("/generate", json={"inputs": "hi", "parameters": {"max_new_tokens": 1}})
            assert refused.status_code == 429
            assert refused.json() == {"error": "Model is overloaded", "error_type": "overloaded"}
            with pytest.raises(OverloadedError):
                Client(url).generate("hi", max_new_tokens=1)
            assert http.get("/health").status_code == 200


# -- Messages API ---------------------------------------------------------------------------------------------------
def test_chat_answers_the_capital_of_france(client: Client) -> None:
    response = client.chat(
        messages=[{"role": "user", "content": "What is the capital of France?"}], temperature=0, max_tokens=40
    )
    choice = response.choices[0]
    assert "Paris" in choice.message.content
    assert choice.message.role == "assistant"
    assert choice.finish_reason == "stop"
    assert response.usage["completion_tokens"] > 0
    assert response.usage["total_tokens"] == response.usage["prompt_tokens"] + response.usage["completion_tokens"]


def test_chat_uses_the_models_chat_template(http: httpx.Client) -> None:
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi"}]
    rendered = "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    tokens = http.post("/tokenize", json={"inputs": rendered}).json()
    chat = http.post("/v1/chat/completions", json={"messages": messages, "max_tokens": 1}).json()
    assert chat["usage"]["prompt_tokens"] == len(tokens)


def test_chat_stream_through_the_openai_sdk(tgi_worker: str) -> None:
    openai = OpenAI(base_url=f"{tgi_worker}/v1", api_key="unused")
    stream = openai.chat.completions.create(
        model="tgi",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        temperature=0,
        max_tokens=40,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Paris" in text
    finishing = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishing == ["stop"]
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0


def test_chat_stream_ends_with_done(http: httpx.Client) -> None:
    body = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3, "stream": True}
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[len("data: ") :]) for line in lines[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_completions_route(tgi_worker: str) -> None:
    openai = OpenAI(base_url=f"{tgi_worker}/v1", api_key="unused")
    response = openai.completions.create(model="tgi", prompt="The capital of France is", max_tokens=4, temperature=0)
    assert "Paris" in response.choices[0].text
    assert response.usage is not None
    assert response.usage.completion_tokens == 4


# -- validation -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("route", "body", "mentions"),
    [
        ("/generate", {"inputs": ""}, "`inputs` cannot be empty"),
        ("/generate", {"inputs": "hi", "parameters": {"temperature": 0}}, "temperature"),
        ("/generate", {"inputs": "hi", "parameters": {"temperature": "hot"}}, "parameters.temperature"),
        ("/generate", {"inputs": "hi", "parameters": {"top_p": 1.5}}, "top_p"),
        ("/generate", {"inputs": "hi", "parameters": {"top_k": -1}}, "top_k"),
        ("/generate", {"inputs": "hi", "parameters": {"max_new_tokens": 0}}, "max_new_tokens"),
        ("/generate", {"inputs": "hi", "parameters": {"max_new_tokens": 5000}}, "must be <= 2048"),
        ("/generate", {"inputs": "word " * 2000}, "must have less than 1536 tokens"),
        ("/generate", {"inputs": "hi", "parameters": {"stop": ["a", "b", "c", "d", "e"]}}, "stop"),
        ("/generate", {"inputs": "hi", "parameters": {"best_of": 3, "do_sample": True}}, "best_of"),
        ("/generate", {"inputs": "hi", "parameters": {"best_of": 2}}, "sampling"),
        ("/generate", {"inputs": "hi", "parameters": {"top_n_tokens": 9}}, "top_n_tokens"),
        ("/generate", {"inputs": "hi", "parameters": {"watermark": True}}, "watermark"),
        ("/generate", {"parameters": {}}, "`inputs`"),
        ("/generate_stream", {"inputs": "hi", "parameters": {"best_of": 2, "do_sample": True}}, "best_of"),
        ("/v1/chat/completions", {"messages": []}, "messages"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "n": 2}, "`n`"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "top_p": 0}, "top_p"),
        ("/v1/chat/completions", {"messages": [{"role": "user"}], "tools": [{"type": "function"}]}, "tools"),
        ("/v1/chat/completions", {"messages": [{"content": "no role"}]}, "messages.0.role"),
        # TGI's chat derives repetition_penalty = presence_penalty + 2, so -2 gives an invalid 0
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "presence_penalty": -2}, "repetit"),
    ],
)
def test_bad_input_is_a_422_naming_the_problem(http: httpx.Client, route: str, body: dict, mentions: str) -> None:
    response = http.post(route, json=body)
    assert response.status_code == 422, response.text
    payload = response.json()
    assert payload["error_type"] == "validation"
    assert mentions in payload["error"]


def test_malformed_json_is_a_422(http: httpx.Client) -> None:
    response = http.post("/generate", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "not valid JSON" in response.json()["error"]


@pytest.mark.parametrize(
    ("route", "body", "field"),
    [
        ("/generate", {"inputs": "a\ud800"}, "inputs"),
        ("/generate_stream", {"inputs": "x", "parameters": {"stop": ["\udc00"]}}, "parameters.stop.0"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "a\ud800"}]}, "messages.0.content"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "a", "name": "\ud800"}]}, "messages.0.name"),
        ("/v1/completions", {"prompt": ["ok", "\ud800"]}, "prompt.1"),
        ("/tokenize", {"inputs": "\ud800"}, "inputs"),
    ],
)
def test_lone_surrogates_are_a_422_naming_the_field(http: httpx.Client, route: str, body: dict, field: str) -> None:
    response = http.post(route, content=json.dumps(body), headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["error_type"] == "validation"
    assert f"{field}: contains a lone UTF-16 surrogate" in response.json()["error"]


@pytest.mark.parametrize("route", ["/generate", "/v1/chat/completions", "/v1/completions"])
def test_deeply_nested_json_is_a_422(http: httpx.Client, route: str) -> None:
    for raw in (b'{"inputs": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", b"[" * 50_000 + b"]" * 50_000):
        response = http.post(route, content=raw, headers={"content-type": "application/json"})
        assert response.status_code == 422, response.text
        assert "nested too deeply" in response.json()["error"]
    assert http.get("/health").status_code == 200


def _chat(content: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": content}], "max_tokens": 2, "temperature": 0}


def test_a_huge_prompt_is_refused_cheaply_and_never_stalls_a_concurrent_chat(tgi_worker: str) -> None:
    """Tokenizing all of HUGE takes seconds; it is refused after a bounded prefix, on the tokenizing thread, so a
    2-token chat sent meanwhile takes about as long as it does alone (bound: generous, relative to that)."""
    stall = small_while_huge(f"{tgi_worker}/v1/chat/completions", _chat("Hi"), _chat(HUGE))
    assert stall.huge.status_code == 422, stall.huge.text
    assert "must have less than 1536 tokens" in stall.huge.json()["error"]
    assert stall.small.status_code == 200, stall.small.text
    assert stall.loaded < 10 * stall.unloaded + 0.5, stall


def test_truncate_keeps_the_last_tokens_of_a_huge_input(http: httpx.Client) -> None:
    """`truncate` on a huge input tokenizes only its tail, and keeps exactly the tokens the whole text ends with."""
    params = {"truncate": 6, "max_new_tokens": 1, "details": True, "decoder_input_details": True}
    huge = http.post("/generate", json={"inputs": HUGE, "parameters": params})
    short = http.post("/generate", json={"inputs": HUGE[-200:], "parameters": params})
    assert huge.status_code == short.status_code == 200, huge.text
    prefill = [t["text"] for t in huge.json()["details"]["prefill"]]
    assert prefill == [t["text"] for t in short.json()["details"]["prefill"]]
    assert "".join(prefill) == " over the lazy dog. "


def test_hf_client_maps_422_to_validation_error(client: Client) -> None:
    with pytest.raises(ValidationError, match="must be <= 2048"):
        client.generate("hi", max_new_tokens=4000)


def test_unknown_route_is_a_json_404(http: httpx.Client) -> None:
    response = http.post("/nope", json={})
    assert response.status_code == 404
    assert "error" in response.json()
