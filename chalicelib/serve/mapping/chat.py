"""OpenAI chat completions ↔ TGI's Messages API (/v1/chat/completions renders messages with the model's template)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from chalicelib.contracts.openai import ChatCompletionRequest
from chalicelib.contracts.tgi import TgiChatRequest
from chalicelib.serve.errors import unsupported
from chalicelib.serve.mapping.sampling import (
    OPENAI_FINISH,
    presence_to_repetition_penalty,
    refuse_common,
    sampling,
    stop_list,
)

# TGI-named model defaults (`defaultModelKwargs`) → the OpenAI chat parameter they stand for.
_DEFAULT_TO_CHAT = {
    "max_new_tokens": "max_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "seed": "seed",
    "stop_sequences": "stop",
    "frequency_penalty": "frequency_penalty",
}
# The fields of TGI's Messages API request, from its contract; TGI ignores any other, so none else is sent.
TGI_CHAT_FIELDS = frozenset(TgiChatRequest.model_fields)


def chat_request(req: ChatCompletionRequest, defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The body to POST to TGI's /v1/chat/completions for `req` (after the policy checks)."""
    refuse_common(req)
    if req.audio is not None or (req.modalities and set(req.modalities) != {"text"}):
        raise unsupported("modalities", "LISA's chat models produce text only")
    messages = [m if isinstance(m, dict) else m.model_dump(exclude_none=True) for m in req.messages]
    body: dict[str, Any] = {"model": "tgi", "messages": messages}
    _add_sampling(body, req, defaults)
    _add_penalties(body, req, defaults)
    _add_outputs(body, req)
    return body


def _add_sampling(body: dict[str, Any], req: ChatCompletionRequest, defaults: Mapping[str, Any] | None) -> None:
    """Length, temperature, top_p, stop and seed: the request's over the model's defaults."""
    for key, chat_key in _DEFAULT_TO_CHAT.items():
        if defaults and defaults.get(key) is not None:
            body[chat_key] = defaults[key]
    max_tokens = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if defaults and defaults.get("do_sample") is False and "temperature" not in body:
        body["temperature"] = 0.0
    do_sample, temperature, top_p = sampling(req)
    if do_sample is not None:
        body["temperature"] = temperature if do_sample else 0.0  # TGI's Messages API: 0 → greedy
    if top_p is not None:
        body["top_p"] = top_p
    if body.get("temperature") == 0.0:
        body.pop("top_p", None)
    if "stop" in body:
        body["stop"] = stop_list(body["stop"], "defaultModelKwargs.stop_sequences")
    if req.stop is not None:
        body["stop"] = stop_list(req.stop)
    if req.seed is not None:
        body["seed"] = req.seed


def _add_penalties(body: dict[str, Any], req: ChatCompletionRequest, defaults: Mapping[str, Any] | None) -> None:
    """Frequency and presence penalties, in the Messages API's terms (see docs/serving.md)."""
    if req.frequency_penalty:
        body["frequency_penalty"] = req.frequency_penalty
    repetition = defaults.get("repetition_penalty") if defaults else None
    if req.presence_penalty:
        repetition = presence_to_repetition_penalty(req.presence_penalty)
    if repetition is not None and repetition != 1.0:
        body["presence_penalty"] = repetition - 2.0  # TGI's chat: repetition_penalty = presence_penalty + 2


def _add_outputs(body: dict[str, Any], req: ChatCompletionRequest) -> None:
    """Logprobs, tools and structured output (forwarded; TGI implements them), and streaming."""
    if req.logprobs:
        body["logprobs"] = True
        if req.top_logprobs:
            body["top_logprobs"] = req.top_logprobs
    for key in ("tools", "tool_choice", "response_format"):
        value = getattr(req, key)
        if value is not None:
            body[key] = value
    body["stream"] = req.stream
    if req.stream:
        body["stream_options"] = {"include_usage": True}  # usage is always collected; sent if asked


def chat_completion(tgi: dict[str, Any], completion_id: str, model: str) -> dict[str, Any]:
    """A TGI chat completion → LISA's (the id and model are LISA's; finish reasons normalised)."""
    tgi["id"] = completion_id
    tgi["model"] = model
    tgi["object"] = "chat.completion"
    if not isinstance(tgi.get("created"), int):
        tgi["created"] = int(time.time())
    for choice in tgi.get("choices") or ():
        reason = choice.get("finish_reason")
        choice["finish_reason"] = OPENAI_FINISH.get(reason, reason)
        choice.setdefault("logprobs", None)
    if not isinstance(tgi.get("usage"), dict):
        tgi["usage"] = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    return tgi


def chat_chunk(tgi: dict[str, Any], completion_id: str, model: str, created: int) -> dict[str, Any]:
    """A TGI chat completion chunk → LISA's (in place)."""
    tgi["id"] = completion_id
    tgi["model"] = model
    tgi["created"] = created
    tgi["object"] = "chat.completion.chunk"
    for choice in tgi.get("choices") or ():
        reason = choice.get("finish_reason")
        if reason is not None:
            choice["finish_reason"] = OPENAI_FINISH.get(reason, reason)
    return tgi
