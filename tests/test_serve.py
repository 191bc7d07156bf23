"""chalicelib.serve: the parameter policy, response mapping, SSE, and the sync clients against a real HTTP backend."""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator

import pytest

from chalicelib.contracts.native import NativeStreamResponse
from chalicelib.contracts.openai import ChatCompletionRequest, CompletionRequest, EmbeddingRequest, EmbeddingResponse
from chalicelib.contracts.tgi import TgiParameters
from chalicelib.serve import mapping, sse
from chalicelib.serve.clients import InstructorClient, TeiClient, embedder_for
from chalicelib.serve.errors import ServeError, from_backend
from tests.support.fake_backends import FakeBackend
from tests.support.servers import AppThread
from workers.launch import free_port


def chat(**fields: object) -> ChatCompletionRequest:
    return mapping.validate(
        ChatCompletionRequest, {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}
    )


def completion(**fields: object) -> CompletionRequest:
    return mapping.validate(CompletionRequest, {"model": "m", "prompt": "Once", **fields})


def refused(call: object, *args: object, **kwargs: object) -> ServeError:
    with pytest.raises(ServeError) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    return caught.value


# -- edge validation ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        (b"", 400, None),
        (b"{not json", 400, None),
        (b"[1, 2]", 400, None),
    ],
)
def test_body_must_be_a_json_object(body: bytes, status: int, param: str | None) -> None:
    error = refused(mapping.parse_json_object, body)
    assert (error.status, error.param, error.type) == (status, param, "invalid_request_error")


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
        ({"temperature": 3}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"frequency_penalty": -2.5}, "frequency_penalty"),
        ({"seed": -1}, "seed"),
        ({"stream": "sometimes"}, "stream"),
    ],
)
def test_chat_fields_are_validated_by_name(fields: dict[str, object], param: str) -> None:
    data = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}
    error = refused(mapping.validate, ChatCompletionRequest, data)
    assert error.status == 422
    assert error.param == param
    assert param in error.message


def test_missing_model_is_named() -> None:
    error = refused(mapping.validate, ChatCompletionRequest, {"messages": [{"role": "user", "content": "x"}]})
    assert (error.status, error.param) == (422, "model")


# -- OpenAI chat → TGI Messages API ------------------------------------------------------------------------------
def test_chat_request_maps_sampling_parameters() -> None:
    body = mapping.chat_request(chat(max_tokens=12, temperature=0.7, top_p=0.9, stop="END", seed=3, stream=True))
    assert body["messages"] == [{"role": "user", "content": "hi"}]
    assert (body["max_tokens"], body["temperature"], body["top_p"], body["stop"], body["seed"]) == (
        12,
        0.7,
        0.9,
        ["END"],
        3,
    )
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


def test_chat_temperature_zero_is_greedy_and_drops_top_p() -> None:
    body = mapping.chat_request(chat(temperature=0, top_p=0.5))
    assert body["temperature"] == 0.0
    assert "top_p" not in body


def test_chat_unset_temperature_leaves_sampling_to_openai_default() -> None:
    body = mapping.chat_request(chat(top_p=1.0))
    assert "temperature" not in body
    assert "top_p" not in body  # 1.0 means no nucleus filtering; TGI refuses 1.0


def test_chat_max_completion_tokens_wins_over_max_tokens() -> None:
    assert mapping.chat_request(chat(max_tokens=5, max_completion_tokens=9))["max_tokens"] == 9


@pytest.mark.parametrize(("presence", "expected"), [(2.0, 2.0), (-2.0, 0.5), (1.0, 2**0.5)])
def test_presence_penalty_reaches_tgi_chat_as_its_presence_penalty(presence: float, expected: float) -> None:
    # TGI's Messages API has no repetition_penalty field: it derives repetition_penalty = presence_penalty + 2.
    body = mapping.chat_request(chat(presence_penalty=presence, frequency_penalty=0.5))
    assert "repetition_penalty" not in body
    assert body["presence_penalty"] + 2.0 == pytest.approx(expected)
    assert body["frequency_penalty"] == 0.5


def test_default_repetition_penalty_reaches_tgi_chat_as_presence_penalty() -> None:
    body = mapping.chat_request(chat(), {"repetition_penalty": 1.2, "top_k": 5, "typical_p": 0.9, "truncate": 10})
    assert body["presence_penalty"] == pytest.approx(1.2 - 2.0)
    assert "repetition_penalty" not in body
    assert "presence_penalty" not in mapping.chat_request(chat(), {"repetition_penalty": 1.0})


def test_chat_body_holds_only_tgi_chat_request_fields() -> None:
    defaults = {key: 1 for key in ("max_new_tokens", "top_k", "typical_p", "truncate", "watermark", "seed")}
    req = chat(
        presence_penalty=1,
        frequency_penalty=1,
        max_completion_tokens=4,
        logprobs=True,
        top_logprobs=2,
        stop=["x"],
        seed=1,
        temperature=0.5,
        top_p=0.5,
        parallel_tool_calls=False,
        tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
        tool_choice="auto",
        response_format={"type": "text"},
        stream=True,
        user="u",
    )
    body = mapping.chat_request(req, defaults | {"repetition_penalty": 1.3, "temperature": 0.7, "top_p": 0.9})
    assert set(body) <= mapping.TGI_CHAT_FIELDS, set(body) - mapping.TGI_CHAT_FIELDS


def test_zero_penalties_are_dropped() -> None:
    body = mapping.chat_request(chat(presence_penalty=0, frequency_penalty=0))
    assert "repetition_penalty" not in body
    assert "presence_penalty" not in body
    assert "frequency_penalty" not in body


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"n": 2}, "n"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"stop": ["a", ""]}, "stop"),
    ],
)
def test_chat_refuses_what_cannot_be_honoured(fields: dict[str, object], param: str) -> None:
    error = refused(mapping.chat_request, chat(**fields))
    assert (error.status, error.param) == (400, param)


def test_chat_forwards_tools_and_logprobs_and_keeps_message_fields() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "hi"}], "name": "ann"},
    ]
    body = mapping.chat_request(chat(messages=messages, tools=tools, tool_choice="auto", logprobs=True, top_logprobs=2))
    assert body["tools"] == tools
    assert body["tool_choice"] == "auto"
    assert (body["logprobs"], body["top_logprobs"]) == (True, 2)
    assert body["messages"][1] == {"role": "user", "content": [{"type": "text", "text": "hi"}], "name": "ann"}


def test_chat_model_defaults_apply_under_the_request() -> None:
    defaults = {"max_new_tokens": 64, "temperature": 0.3, "stop_sequences": ["###"], "top_k": 5}
    body = mapping.chat_request(chat(), defaults)
    assert (body["max_tokens"], body["temperature"], body["stop"]) == (64, 0.3, ["###"])
    assert "top_k" not in body  # no Messages API equivalent
    body = mapping.chat_request(chat(max_tokens=8, temperature=0), defaults)
    assert (body["max_tokens"], body["temperature"]) == (8, 0.0)


def test_chat_completion_uses_lisa_id_model_and_openai_finish_reason() -> None:
    tgi = {
        "id": "",
        "object": "chat.completion",
        "created": 1,
        "model": "HuggingFaceTB/SmolLM2",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris"}, "finish_reason": "eos_token"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
    out = mapping.chat_completion(tgi, "chatcmpl-x", "smollm2")
    assert (out["id"], out["model"], out["choices"][0]["finish_reason"]) == ("chatcmpl-x", "smollm2", "stop")
    chunk = mapping.chat_chunk({"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}, "c", "m", 5)
    assert (chunk["id"], chunk["object"], chunk["created"], chunk["choices"][0]["finish_reason"]) == (
        "c",
        "chat.completion.chunk",
        5,
        "length",
    )


# -- OpenAI completions → TGI /generate --------------------------------------------------------------------------
def test_generate_parameters_follow_the_policy() -> None:
    params = mapping.generate_parameters(completion(max_tokens=7, temperature=0.5, top_p=0.8, stop=["\n"], seed=1))
    assert params == {
        "max_new_tokens": 7,
        "do_sample": True,
        "temperature": 0.5,
        "top_p": 0.8,
        "stop": ["\n"],
        "seed": 1,
        "details": True,
    }
    TgiParameters.model_validate(params)  # what TGI accepts


def test_generate_temperature_zero_is_greedy() -> None:
    params = mapping.generate_parameters(completion(temperature=0, top_p=0.5))
    assert params["do_sample"] is False
    assert "temperature" not in params
    assert "top_p" not in params


def test_generate_unset_temperature_samples_like_openai_unless_the_model_says_otherwise() -> None:
    assert mapping.generate_parameters(completion())["do_sample"] is True
    greedy_default = mapping.generate_parameters(completion(), {"temperature": 0, "max_new_tokens": 20})
    assert greedy_default["do_sample"] is False
    assert greedy_default["max_new_tokens"] == 20


def test_generate_logprobs_and_penalties() -> None:
    params = mapping.generate_parameters(completion(logprobs=3, presence_penalty=2, frequency_penalty=-1))
    assert (params["top_n_tokens"], params["repetition_penalty"], params["frequency_penalty"]) == (3, 2.0, -1)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"n": 3}, "n"),
        ({"best_of": 2}, "best_of"),
        ({"suffix": "end"}, "suffix"),
        ({"echo": True, "logprobs": 1}, "logprobs"),
        ({"logit_bias": {"1": 1}}, "logit_bias"),
    ],
)
def test_completions_refuse_what_cannot_be_honoured(fields: dict[str, object], param: str) -> None:
    error = refused(mapping.generate_parameters, completion(**fields))
    assert (error.status, error.param, error.code) == (400, param, "unsupported_parameter")


def test_completion_prompts() -> None:
    assert mapping.completion_prompts(completion(prompt=["a", "b"])) == ["a", "b"]
    assert refused(mapping.completion_prompts, completion(prompt=[1, 2, 3])).param == "prompt"
    assert refused(mapping.completion_prompts, completion(prompt=[])).param == "prompt"


def test_completion_choice_with_echo_and_logprobs() -> None:
    tgi = {
        "generated_text": " there",
        "details": {
            "finish_reason": "stop_sequence",
            "generated_tokens": 2,
            "tokens": [{"id": 1, "text": " the", "logprob": -0.1}, {"id": 2, "text": "re", "logprob": -0.2}],
            "top_tokens": [[{"text": " the", "logprob": -0.1}], [{"text": "re", "logprob": -0.2}]],
        },
    }
    choice = mapping.completion_choice(0, "Hi", tgi, echo=True, logprobs=None)
    assert (choice["text"], choice["finish_reason"], choice["logprobs"]) == ("Hi there", "stop", None)
    choice = mapping.completion_choice(1, "Hi", tgi, echo=False, logprobs=1)
    assert choice["logprobs"] == {
        "tokens": [" the", "re"],
        "token_logprobs": [-0.1, -0.2],
        "top_logprobs": [{" the": -0.1}, {"re": -0.2}],
        "text_offset": [0, 4],
    }


@pytest.mark.parametrize(("tgi", "openai"), [("length", "length"), ("eos_token", "stop"), ("stop_sequence", "stop")])
def test_finish_reasons(tgi: str, openai: str) -> None:
    assert mapping.finish_reason(tgi) == openai


# -- embeddings --------------------------------------------------------------------------------------------------
def test_embeddings_base64_is_little_endian_float32() -> None:
    vectors = [[0.5, -1.25, 3.0]]
    out = mapping.embeddings_response(vectors, "e", "base64", 3)
    EmbeddingResponse.model_validate(out)
    raw = base64.b64decode(out["data"][0]["embedding"])
    assert list(struct.unpack("<3f", raw)) == vectors[0]
    assert out["usage"] == {"prompt_tokens": 3, "completion_tokens": 0, "total_tokens": 3}


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"input": [1, 2]}, "input"),
        ({"input": ""}, "input"),
        ({"input": ["a", ""]}, "input.1"),
        ({"dimensions": 8}, "dimensions"),
    ],
)
def test_embedding_inputs_refused(fields: dict[str, object], param: str) -> None:
    req = mapping.validate(EmbeddingRequest, {"model": "e", "input": "x", **fields})
    assert refused(mapping.embedding_inputs, req).param == param


def test_backend_vectors_are_checked() -> None:
    assert mapping.check_vectors([[1.0, 2.0]], 1) == [[1.0, 2.0]]
    for bad in ({"error": "x"}, [[1.0]], [[]], [["a"]]):
        assert refused(mapping.check_vectors, bad, 2 if bad == [[1.0]] else 1).status == 502


# -- LISA-native -------------------------------------------------------------------------------------------------
def test_native_parameters_use_tgi_names_over_model_defaults() -> None:
    params = mapping.native_tgi_parameters({"stop_sequences": ["\n"], "temperature": 0}, {"max_new_tokens": 9, "x": 1})
    assert params["stop"] == ["\n"]
    assert params["do_sample"] is False
    assert "temperature" not in params
    assert params["max_new_tokens"] == 9
    assert params["details"] is True
    TgiParameters.model_validate(params)


def test_native_parameters_name_the_bad_kwarg() -> None:
    error = refused(mapping.native_tgi_parameters, {"max_new_tokens": 0})
    assert (error.status, error.param) == (422, "modelKwargs.max_new_tokens")
    error = refused(mapping.native_tgi_parameters, {"n": 2})
    assert error.param == "modelKwargs.n"


def test_native_stream_event_per_token_the_last_with_counts() -> None:
    middle = mapping.native_stream_event({"token": {"id": 1, "text": " Paris", "special": False}, "details": None})
    assert middle == {"token": {"text": " Paris", "special": False}}
    last = mapping.native_stream_event(
        {"token": {"text": "</s>", "special": True}, "details": {"finish_reason": "eos_token", "generated_tokens": 4}}
    )
    assert last == {"token": {"text": "</s>", "special": True}, "generatedTokens": 4, "finishReason": "eos_token"}
    assert list(last) == ["token", "generatedTokens", "finishReason"]  # the first LISA's field order
    for event in (middle, last):
        NativeStreamResponse.model_validate(event)


def test_default_model_kwargs_are_complete() -> None:
    tgi = mapping.default_model_kwargs("ecs.textgen.tgi", {"max_new_tokens": 128, "unknown": 1})
    assert tgi["max_new_tokens"] == 128
    assert "unknown" not in tgi
    assert {"top_p", "temperature", "stop_sequences", "seed"} <= set(tgi)
    assert mapping.default_model_kwargs("ecs.embedding.instructor") == {"instruction": "Represent the document:"}
    assert mapping.default_model_kwargs("ecs.embedding.tei") == {"normalize": True, "truncate": True}


# -- backend errors ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "expected"), [(422, 400), (400, 400), (413, 413), (429, 429), (503, 503), (424, 502), (500, 502)]
)
def test_backend_statuses(status: int, expected: int) -> None:
    error = from_backend(status, b'{"error": "boom", "error_type": "x"}', "the backend")
    assert error.status == expected
    assert "boom" in error.message


# -- SSE ---------------------------------------------------------------------------------------------------------
def test_sse_roundtrip_survives_any_chunking() -> None:
    payloads = [{"a": 1}, {"text": "multi\nline é"}, {"b": [1, 2]}]
    stream = b": comment\r\n" + b"".join(sse.encode(p) for p in payloads) + b"event: x\r\ndata: 1\r\ndata: 2\r\n\r\n"
    stream += sse.DONE
    expected = [*payloads, None, None]
    for size in (1, 2, 3, 7, len(stream)):
        chunks = [stream[i : i + size] for i in range(0, len(stream), size)]
        events = list(sse.iter_events(chunks))
        assert [e.json() for e in events[:3]] == expected[:3]
        assert (events[3].event, events[3].data) == ("x", "1\n2")
        assert events[4].data == sse.DONE_DATA


def test_sse_delivers_an_unterminated_last_event() -> None:
    decoder = sse.SSEDecoder()
    assert decoder.feed(b"data:{}") == []
    assert [e.data for e in decoder.close()] == ["{}"]


# -- sync clients against a real HTTP backend --------------------------------------------------------------------
@pytest.fixture(scope="module")
def fake_server() -> Iterator[tuple[FakeBackend, str]]:
    fake = FakeBackend()
    server = AppThread(fake.app)
    url = server.start()
    yield fake, url
    server.stop()


@pytest.fixture
def fake(fake_server: tuple[FakeBackend, str]) -> tuple[FakeBackend, str]:
    fake_server[0].reset()
    return fake_server


def test_embed_request_is_one_builder_for_both_providers() -> None:
    assert mapping.embed_request("ecs.embedding.tei", ["a"], {}, {"normalize": False, "max_new_tokens": 3}) == (
        "/embed",
        {"inputs": ["a"], "normalize": False, "truncate": True},
    )
    assert mapping.embed_request("ecs.embedding.instructor", ["a"], {"instruction": "Q:"}) == (
        "/predictions/model",
        {"instruction": "Q:", "text": ["a"]},
    )
    assert refused(mapping.embed_request, "ecs.textgen.tgi", ["a"]).param == "provider"


def test_embedding_clients(fake: tuple[FakeBackend, str]) -> None:
    backend, url = fake
    tei = embedder_for("ecs.embedding.tei", url, {"normalize": False})
    assert isinstance(tei, TeiClient)
    assert tei.embed(["ab", "abc"]) == [[2.0, 3.0, 4.0, 5.0], [3.0, 4.0, 5.0, 6.0]]
    assert backend.requests[-1] == ("/embed", {"inputs": ["ab", "abc"], "normalize": False, "truncate": True})
    instructor = embedder_for("ecs.embedding.instructor", url, {"instruction": "Q:"})
    assert isinstance(instructor, InstructorClient)
    assert instructor.embed(["x"]) == [[3.0, 4.0, 5.0, 6.0]]
    assert backend.requests[-1] == ("/predictions/model", {"instruction": "Q:", "text": ["x"]})
    assert refused(embedder_for, "ecs.textgen.tgi", url).param == "provider"


def test_client_errors(fake: tuple[FakeBackend, str]) -> None:
    backend, url = fake
    backend.mode = "error"
    error = refused(TeiClient(url).embed, ["x"])
    assert error.status == 400
    assert "must have less than 2048 tokens" in error.message

    backend.mode, backend.delay = "slow", 2.0
    assert refused(TeiClient(url, timeout=0.3).embed, ["x"]).status == 504

    closed = f"http://127.0.0.1:{free_port()}"
    assert refused(TeiClient(closed).embed, ["x"]).status == 503
    assert not TeiClient(closed).health()
