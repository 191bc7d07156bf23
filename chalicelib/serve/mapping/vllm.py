"""OpenAI and LISA-native requests → vLLM's OpenAI server; its answers → LISA's (docs/serving.md, "vLLM").

vLLM speaks the OpenAI protocol itself, so OpenAI requests go nearly untouched: the validated request with the
model's served name, the model's `defaultModelKwargs` (TGI names, as for TGI models) where the request leaves a
parameter unset, and usage always asked for in streams (sent to the client only if it asked). LISA-native requests
become /v1/completions calls whose answers take the TGI shapes lisapy reads. Pure functions over the contracts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from chalicelib.config import PROVIDERS, InferenceContainer
from chalicelib.contracts.native import NativeGenerateResponse, NativeStreamResponse, NativeToken, TgiModelKwargs
from chalicelib.contracts.openai import (
    MAX_BATCH_PROMPTS,
    ChatCompletionRequest,
    CompletionRequest,
    EngineChoice,
    EngineCompletion,
    Usage,
)
from chalicelib.serve.errors import ServeError, invalid, unsupported
from chalicelib.serve.mapping.sampling import stop_list, usage
from chalicelib.serve.mapping.validation import validate

PROVIDER = PROVIDERS[InferenceContainer.VLLM]

# TGI-named model defaults (`defaultModelKwargs`) → the vLLM request field they set (vLLM takes `top_k`,
# `repetition_penalty` and `truncate_prompt_tokens` beside OpenAI's fields).
_DEFAULTS = {
    "max_new_tokens": "max_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "seed": "seed",
    "stop_sequences": "stop",
    "frequency_penalty": "frequency_penalty",
    "repetition_penalty": "repetition_penalty",
    "truncate": "truncate_prompt_tokens",
}
# Never forwarded as the client sent them: the router sets the model and the stream's usage request.
_ROUTER_FIELDS = {"model", "stream_options"}
# The running usage on every chunk: a stream cut short is metered with the tokens it produced.
_STREAM_USAGE = {"include_usage": True, "continuous_usage_stats": True}


def chat_body(req: ChatCompletionRequest, served_name: str, defaults: Mapping[str, Any] | None) -> dict[str, Any]:
    """The body to POST to vLLM's /v1/chat/completions for `req`."""
    if req.audio is not None or (req.modalities and set(req.modalities) != {"text"}):
        raise unsupported("modalities", "LISA's chat models produce text only")
    body = req.model_dump(exclude_unset=True, exclude=_ROUTER_FIELDS | {"audio", "modalities"})
    return _finish(body, served_name, defaults, req.stream)


def completion_body(req: CompletionRequest, served_name: str, defaults: Mapping[str, Any] | None) -> dict[str, Any]:
    """The body to POST to vLLM's /v1/completions for `req` (text or token-id prompts, up to MAX_BATCH_PROMPTS)."""
    prompt = req.prompt
    batch = isinstance(prompt, list) and bool(prompt) and not isinstance(prompt[0], int)
    if batch and len(prompt) > MAX_BATCH_PROMPTS:
        raise invalid(f"'prompt' must hold 1 to {MAX_BATCH_PROMPTS} prompts, got {len(prompt)}", "prompt")
    if not prompt:
        raise invalid("'prompt' must not be empty", "prompt")
    body = req.model_dump(exclude_unset=True, exclude=_ROUTER_FIELDS)
    return _finish(body, served_name, defaults, req.stream)


def _finish(body: dict[str, Any], served_name: str, defaults: Mapping[str, Any] | None, stream: bool) -> dict[str, Any]:
    """The served name, the model's defaults under the request's values, and usage in streams."""
    body["model"] = served_name
    for key, name in _DEFAULTS.items():
        value = (defaults or {}).get(key)
        if value is not None and body.get(name) is None:
            body[name] = value
    if body.get("max_completion_tokens") is not None:
        body.pop("max_tokens", None)  # the request's own limit, not the default's
    if (defaults or {}).get("do_sample") is False and body.get("temperature") is None:
        body["temperature"] = 0.0  # a model whose default is greedy stays greedy
    if "stop" in body and not isinstance(body["stop"], str):
        body["stop"] = stop_list(body["stop"], "stop")
    if stream:
        body["stream_options"] = dict(_STREAM_USAGE)  # usage is always collected; sent to the client if it asked
    return body


def read_answer(raw: Any, backend_label: str) -> EngineCompletion:
    """vLLM's completion or chunk as far as the router reads it; 502 if it is not one."""
    try:
        return EngineCompletion.model_validate(raw)
    except ValidationError:
        raise ServeError(502, f"{backend_label} answered something that is not a completion") from None


def openai_answer(raw: dict[str, Any], completion_id: str, model: str) -> dict[str, Any]:
    """vLLM's (non-streamed) answer as LISA's: LISA's id and model name, everything else as vLLM sent it."""
    raw["id"] = completion_id
    raw["model"] = model
    if not isinstance(raw.get("usage"), dict):
        raw["usage"] = usage(0, 0)
    return raw


def openai_chunk(raw: dict[str, Any], completion_id: str, model: str, created: int) -> dict[str, Any]:
    """A vLLM stream chunk as LISA's (in place): LISA's id, model name and one creation time for the stream."""
    raw["id"] = completion_id
    raw["model"] = model
    raw["created"] = created
    return raw


# -- LISA-native -------------------------------------------------------------------------------------------------


def native_kwargs(model_kwargs: Mapping[str, Any], defaults: Mapping[str, Any] | None) -> TgiModelKwargs:
    """A native request's `modelKwargs` (TGI names) over the model's defaults; 422 naming the kwarg."""
    known = {k: v for k, v in (defaults or {}).items() if k in TgiModelKwargs.model_fields}
    return validate(TgiModelKwargs, {**known, **model_kwargs}, "modelKwargs")


def native_body(text: str, kwargs: TgiModelKwargs, served_name: str, *, stream: bool) -> dict[str, Any]:
    """vLLM /v1/completions body for a native request: the TGI kwargs as vLLM sampling parameters, with TGI's rule
    that setting any warper means sampling; 400 for what vLLM cannot do."""
    if kwargs.typical_p is not None:
        raise unsupported("modelKwargs.typical_p", "vLLM has no typical-p sampling; use top_p or top_k")
    if kwargs.watermark:
        raise unsupported("modelKwargs.watermark", "vLLM does not watermark its output")
    body: dict[str, Any] = {"model": served_name, "prompt": text, "max_tokens": kwargs.max_new_tokens}
    warped = kwargs.top_k is not None or kwargs.top_p is not None or kwargs.temperature not in (None, 1.0)
    if (kwargs.do_sample or warped) and kwargs.temperature != 0:
        body["temperature"] = kwargs.temperature if kwargs.temperature is not None else 1.0
        for key in ("top_k", "top_p"):
            if getattr(kwargs, key) is not None:
                body[key] = getattr(kwargs, key)
    else:
        body["temperature"] = 0.0  # TGI's greedy default
    if kwargs.stop_sequences:
        body["stop"] = stop_list(kwargs.stop_sequences, "modelKwargs.stop_sequences")
        body["include_stop_str_in_output"] = True  # TGI's text ends with the stop sequence it matched
    for key, name in (
        ("repetition_penalty", "repetition_penalty"),
        ("frequency_penalty", "frequency_penalty"),
        ("seed", "seed"),
        ("truncate", "truncate_prompt_tokens"),
    ):
        if getattr(kwargs, key) is not None:
            body[name] = getattr(kwargs, key)
    if stream:  # every chunk carries the running count: the finishing one tells `generatedTokens`
        body.update(stream=True, stream_options={"include_usage": True, "continuous_usage_stats": True})
    return body


def native_finish_reason(choice: EngineChoice) -> str:
    """vLLM's finish reason as TGI's: `length`; `stop_sequence` when a stop string matched; else `eos_token`."""
    if choice.finish_reason == "length":
        return "length"
    if choice.finish_reason == "stop":
        return "stop_sequence" if isinstance(choice.stop_reason, str) else "eos_token"
    raise ServeError(502, f"the engine ended the generation with {choice.finish_reason!r}", code="backend_error")


def native_generate(answer: EngineCompletion, prefix: str = "") -> dict[str, Any]:
    """vLLM's completion → LISA /v1/generate (`prefix`: the prompt, for `return_full_text`)."""
    if not answer.choices:
        raise ServeError(502, "the engine answered a completion without choices", code="backend_error")
    choice = answer.choices[0]
    response = NativeGenerateResponse(
        generated_text=prefix + (choice.text or ""),
        generated_tokens=_tokens(answer.usage),
        finish_reason=native_finish_reason(choice),
    )
    return response.model_dump(by_alias=True)


def native_event(chunk: EngineCompletion) -> dict[str, Any] | None:
    """One vLLM completions chunk → one /v1/generateStream event (None: nothing to send, e.g. the usage chunk).

    The finishing chunk carries `generatedTokens` and `finishReason`; an end-of-sequence token, whose text vLLM
    leaves out, is a special token with empty text (TGI would show its text, e.g. `<|im_end|>`)."""
    if not chunk.choices:
        return None
    choice = chunk.choices[0]
    text = choice.text or ""
    if choice.finish_reason is None:
        if not text:
            return None
        event = NativeStreamResponse(token=NativeToken(text=text, special=False))
    else:
        reason = native_finish_reason(choice)
        event = NativeStreamResponse(
            token=NativeToken(text=text, special=reason == "eos_token" and not text),
            generated_tokens=_tokens(chunk.usage),
            finish_reason=reason,
        )
    return event.model_dump(by_alias=True, exclude_none=True)


def _tokens(usage: Usage | None) -> int:
    return usage.completion_tokens if usage else 0
