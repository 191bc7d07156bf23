"""OpenAI chat completions ↔ TGI's Messages API (/v1/chat/completions renders messages with the model's template)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from pydantic import TypeAdapter, ValidationError

from chalicelib.contracts.openai import ChatCompletionRequest
from chalicelib.contracts.tgi import (
    TgiChatCompletion,
    TgiChatCompletionChunk,
    TgiChatMessage,
    TgiChatRequest,
    TgiStreamOptions,
)
from chalicelib.serve.errors import unsupported
from chalicelib.serve.mapping.sampling import (
    OPENAI_FINISH,
    presence_to_repetition_penalty,
    refuse_common,
    sampling,
    stop_list,
)
from chalicelib.serve.mapping.wire import body, read, unsendable

_MESSAGES = TypeAdapter(list[TgiChatMessage])  # a conversation validated in one call (the hot path)
# The fields a Messages API request may hold (TGI ignores any other, so the contract has no other).
TGI_CHAT_FIELDS = frozenset(TgiChatRequest.model_fields)


def chat_request(req: ChatCompletionRequest, defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The body to POST to TGI's /v1/chat/completions for `req` (after the policy checks): the request's values over
    the model's TGI-named `defaultModelKwargs`."""
    refuse_common(req)
    if req.audio is not None or (req.modalities and set(req.modalities) != {"text"}):
        raise unsupported("modalities", "LISA's chat models produce text only")
    defaults = defaults or {}
    temperature, top_p = _temperature_top_p(req, defaults)
    default_stop = defaults.get("stop_sequences")  # checked even when the request's `stop` wins, as always
    stop = None if default_stop is None else stop_list(default_stop, "defaultModelKwargs.stop_sequences")
    try:
        request = TgiChatRequest(
            model="tgi",
            messages=_MESSAGES.validate_python(
                [m if isinstance(m, dict) else m.model_dump(exclude_none=True) for m in req.messages]
            ),
            max_tokens=_first(req.max_completion_tokens, req.max_tokens, defaults.get("max_new_tokens")),
            temperature=temperature,
            top_p=top_p,
            stop=stop if req.stop is None else stop_list(req.stop),
            seed=_first(req.seed, defaults.get("seed")),
            frequency_penalty=req.frequency_penalty or defaults.get("frequency_penalty"),
            presence_penalty=_presence_penalty(req, defaults),
            logprobs=True if req.logprobs else None,
            top_logprobs=req.top_logprobs if req.logprobs and req.top_logprobs else None,
            tools=req.tools,
            tool_choice=req.tool_choice,
            response_format=req.response_format,
            stream=req.stream,
            # usage is always collected (metering); sent on to the caller only if asked
            stream_options=TgiStreamOptions(include_usage=True) if req.stream else None,
        )
    except ValidationError as error:
        raise unsendable(error) from None
    return body(request)


def _first(*values: Any) -> Any:
    return next((value for value in values if value is not None), None)


def _temperature_top_p(req: ChatCompletionRequest, defaults: Mapping[str, Any]) -> tuple[Any, Any]:
    """The request's sampling over the model's; temperature 0 means greedy in the Messages API (top_p dropped)."""
    temperature = defaults.get("temperature")
    if temperature is None and defaults.get("do_sample") is False:
        temperature = 0.0
    do_sample, req_temperature, req_top_p = sampling(req)
    if do_sample is not None:
        temperature = req_temperature if do_sample else 0.0
    top_p = req_top_p if req_top_p is not None else defaults.get("top_p")
    return temperature, None if temperature == 0.0 else top_p


def _presence_penalty(req: ChatCompletionRequest, defaults: Mapping[str, Any]) -> float | None:
    """Presence penalty in the Messages API's terms: TGI derives repetition_penalty = presence_penalty + 2."""
    repetition = defaults.get("repetition_penalty")
    if req.presence_penalty:
        repetition = presence_to_repetition_penalty(req.presence_penalty)
    return None if repetition is None or repetition == 1.0 else repetition - 2.0


def chat_completion(tgi: TgiChatCompletion | Mapping[str, Any], completion_id: str, model: str) -> dict[str, Any]:
    """A TGI chat completion → LISA's (the id and model are LISA's; finish reasons normalised; TGI's other fields
    kept). Read through the model, then LISA's fields are written into its dump (cheaper than model assignments)."""
    answer = read(TgiChatCompletion, tgi, "a chat completion").model_dump()
    answer["id"], answer["model"], answer["object"] = completion_id, model, "chat.completion"
    if answer["created"] is None:
        answer["created"] = int(time.time())
    _normalise_finish(answer["choices"])
    if answer["usage"] is None:
        answer["usage"] = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    return answer


def chat_chunk(
    tgi: TgiChatCompletionChunk | Mapping[str, Any], completion_id: str, model: str, created: int
) -> dict[str, Any]:
    """A TGI chat completion chunk → LISA's (TGI's other fields kept)."""
    chunk = read(TgiChatCompletionChunk, tgi, "a chat completion chunk").model_dump()
    chunk["id"], chunk["model"], chunk["created"], chunk["object"] = (
        completion_id,
        model,
        created,
        "chat.completion.chunk",
    )
    _normalise_finish(chunk["choices"])
    return chunk


def _normalise_finish(choices: list[dict[str, Any]]) -> None:
    for choice in choices:
        reason = choice["finish_reason"]
        if reason is not None:
            choice["finish_reason"] = OPENAI_FINISH.get(reason, reason)
