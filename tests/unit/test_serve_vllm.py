"""The vLLM mapping (chalicelib/serve/mapping/vllm.py): request bodies from the contracts, TGI-named defaults,
native kwargs as vLLM sampling parameters, finish reasons as TGI's. The real engine: tests/test_vllm_router.py."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.contracts.openai import ChatCompletionRequest, CompletionRequest, EngineCompletion
from chalicelib.serve.errors import ServeError
from chalicelib.serve.mapping import vllm

GREEDY = {"max_new_tokens": 256, "temperature": 0}


def chat(**fields: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}
    )


def test_chat_body_is_the_validated_request_with_served_name_and_defaults() -> None:
    body = vllm.chat_body(chat(stop=["."], n=2, seed=3, logprobs=True, top_logprobs=2, unknown=1), "served", GREEDY)
    assert body == {
        "model": "served",
        "messages": [{"role": "user", "content": "hi"}],
        "stop": ["."],
        "n": 2,
        "seed": 3,
        "logprobs": True,
        "top_logprobs": 2,
        "max_tokens": 256,
        "temperature": 0,
    }  # `unknown` is not in the contract: not forwarded


def test_request_values_win_over_defaults_and_streams_always_ask_for_usage() -> None:
    body = vllm.chat_body(chat(max_completion_tokens=9, temperature=0.7, stream=True), "s", GREEDY)
    assert (body["max_completion_tokens"], body["temperature"]) == (9, 0.7)
    assert "max_tokens" not in body
    assert body["stream_options"] == {"include_usage": True, "continuous_usage_stats": True}
    unasked = vllm.chat_body(chat(stream_options={"include_usage": False}), "s", None)
    assert "stream_options" not in unasked  # vLLM refuses stream_options without stream


def test_tools_and_json_schema_are_forwarded_as_sent() -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "default": None}}}
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    body = vllm.chat_body(chat(tools=[tool], tool_choice="required", response_format=schema), "s", None)
    assert (body["tools"], body["tool_choice"], body["response_format"]) == ([tool], "required", schema)


def test_audio_output_is_refused() -> None:
    with pytest.raises(ServeError) as refused:
        vllm.chat_body(chat(modalities=["text", "audio"]), "s", None)
    assert (refused.value.status, refused.value.param) == (400, "modalities")


def test_completion_prompts_are_bounded() -> None:
    many = CompletionRequest.model_validate({"model": "m", "prompt": ["p"] * 33})
    with pytest.raises(ServeError) as refused:
        vllm.completion_body(many, "s", None)
    assert refused.value.param == "prompt"
    tokens = CompletionRequest.model_validate({"model": "m", "prompt": [1, 2, 3], "echo": True})
    assert vllm.completion_body(tokens, "s", {"repetition_penalty": 1.2})["prompt"] == [1, 2, 3]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, {"temperature": 0.0, "max_tokens": 50}),  # TGI's defaults: greedy, 50 tokens
        ({"temperature": 0.5}, {"temperature": 0.5, "max_tokens": 50}),  # a warper means sampling
        ({"do_sample": True, "top_k": 5}, {"temperature": 1.0, "top_k": 5, "max_tokens": 50}),
        ({"do_sample": True, "temperature": 0}, {"temperature": 0.0, "max_tokens": 50}),
        ({"stop_sequences": ["x"], "truncate": 9}, {"temperature": 0.0, "stop": ["x"], "truncate_prompt_tokens": 9}),
    ],
)
def test_native_kwargs_become_vllm_sampling_parameters(kwargs: dict[str, Any], expected: dict[str, Any]) -> None:
    body = vllm.native_body("p", vllm.native_kwargs(kwargs, None), "s", stream=False)
    assert {k: v for k, v in body.items() if k in expected} == expected
    assert (body["model"], body["prompt"]) == ("s", "p")


def test_native_kwargs_vllm_cannot_honour_are_refused() -> None:
    for kwargs, param in (
        ({"typical_p": 0.5}, "modelKwargs.typical_p"),
        ({"watermark": True}, "modelKwargs.watermark"),
    ):
        with pytest.raises(ServeError) as refused:
            vllm.native_body("p", vllm.native_kwargs(kwargs, None), "s", stream=False)
        assert (refused.value.status, refused.value.param) == (400, param)
    with pytest.raises(ServeError) as invalid:
        vllm.native_kwargs({"top_k": "many"}, None)
    assert (invalid.value.status, invalid.value.param) == (422, "modelKwargs.top_k")


def _chunk(finish: str | None, stop: Any = None, text: str = "", tokens: int = 3) -> EngineCompletion:
    choice = {"index": 0, "text": text, "finish_reason": finish, "stop_reason": stop}
    usage = {"prompt_tokens": 1, "completion_tokens": tokens, "total_tokens": 1 + tokens}
    return EngineCompletion.model_validate({"choices": [choice], "usage": usage})


def test_finish_reasons_are_tgis() -> None:
    assert vllm.native_generate(_chunk("length", text="a"))["finishReason"] == "length"
    assert vllm.native_generate(_chunk("stop", " Paris", "a"))["finishReason"] == "stop_sequence"
    assert vllm.native_generate(_chunk("stop", None, "a"))["finishReason"] == "eos_token"
    assert vllm.native_generate(_chunk("stop", 2, "a"))["finishReason"] == "eos_token"  # a stop token id
    with pytest.raises(ServeError):
        vllm.native_generate(_chunk("abort"))


def test_native_stream_events() -> None:
    assert vllm.native_event(_chunk(None, text="Hi")) == {"token": {"text": "Hi", "special": False}}
    assert vllm.native_event(_chunk(None)) is None
    assert vllm.native_event(EngineCompletion.model_validate({"choices": []})) is None
    assert vllm.native_event(_chunk("stop", tokens=7)) == {
        "token": {"text": "", "special": True},
        "generatedTokens": 7,
        "finishReason": "eos_token",
    }
