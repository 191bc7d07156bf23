"""OpenAI completions ↔ TGI /generate and /generate_stream (one TGI request per prompt)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from chalicelib.contracts.openai import MAX_BATCH_PROMPTS, CompletionRequest
from chalicelib.contracts.tgi import TgiGenerateRequest, TgiGenerateResponse, TgiParameters, TgiStreamResponse, TgiToken
from chalicelib.serve.errors import invalid, unsupported
from chalicelib.serve.mapping.sampling import (
    finish_reason,
    presence_to_repetition_penalty,
    refuse_common,
    sampling,
    stop_list,
)
from chalicelib.serve.mapping.wire import body, read, unsendable

_GENERATE_DEFAULTS = (
    "max_new_tokens",
    "temperature",
    "top_k",
    "top_p",
    "typical_p",
    "repetition_penalty",
    "frequency_penalty",
    "seed",
    "truncate",
    "do_sample",
    "watermark",
)


def completion_prompts(req: CompletionRequest) -> list[str]:
    """The prompts of a completions request (1..MAX_BATCH_PROMPTS strings)."""
    prompt = req.prompt
    if isinstance(prompt, str):
        return [prompt]
    if any(not isinstance(p, str) for p in prompt):
        raise unsupported("prompt", "token-id prompts cannot be sent to TGI; send text")
    prompts: list[str] = list(prompt)  # type: ignore[arg-type]
    if not 0 < len(prompts) <= MAX_BATCH_PROMPTS:
        raise invalid(f"'prompt' must hold 1 to {MAX_BATCH_PROMPTS} prompts, got {len(prompts)}", "prompt")
    return prompts


def generate_parameters(req: CompletionRequest, defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """TGI `parameters` for a completions request (after the policy checks): the request's values over the model's
    TGI-named `defaultModelKwargs`; greedy drops the sampling knobs."""
    refuse_common(req)
    if req.best_of is not None and req.best_of > 1:
        raise unsupported("best_of", "LISA generates one sequence per prompt")
    if req.suffix:
        raise unsupported("suffix", "TGI models do not insert text between a prompt and a suffix")
    if req.echo and req.logprobs is not None:
        raise unsupported("logprobs", "prompt-token logprobs (echo with logprobs) are not available")
    given = _default_parameters(defaults)
    do_sample, temperature, top_p = _sampling(req, given)
    try:
        params = TgiParameters(
            max_new_tokens=req.max_tokens if req.max_tokens is not None else given.get("max_new_tokens"),
            do_sample=do_sample,
            temperature=temperature if do_sample else None,
            top_p=top_p if do_sample else None,
            top_k=given.get("top_k") if do_sample else None,
            typical_p=given.get("typical_p") if do_sample else None,
            seed=req.seed if req.seed is not None else given.get("seed"),
            frequency_penalty=req.frequency_penalty or given.get("frequency_penalty"),
            repetition_penalty=presence_to_repetition_penalty(req.presence_penalty)
            if req.presence_penalty
            else given.get("repetition_penalty"),
            truncate=given.get("truncate"),
            details=True,
            top_n_tokens=req.logprobs or None,
        )
    except ValidationError as error:
        raise unsendable(error) from None
    # fields TGI cannot take as null: set only when the policy gives them a value
    stop = given.get("stop") if req.stop is None else stop_list(req.stop)
    if stop is not None:
        params.stop = stop
    if given.get("watermark") is not None:
        params.watermark = given["watermark"]
    return body(params)


def _default_parameters(defaults: Mapping[str, Any] | None) -> dict[str, Any]:
    """The TGI parameters a model's `defaultModelKwargs` set (temperature 0 means greedy)."""
    params: dict[str, Any] = {}
    if defaults:
        params.update((k, defaults[k]) for k in _GENERATE_DEFAULTS if defaults.get(k) is not None)
        if defaults.get("stop_sequences"):
            params["stop"] = stop_list(defaults["stop_sequences"], "defaultModelKwargs.stop_sequences")
        if params.get("temperature") == 0:
            del params["temperature"]
            params["do_sample"] = False
    return params


def _sampling(req: CompletionRequest, given: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    """(do_sample, temperature, top_p): the request's over the model's; unset, the model's temperature decides."""
    do_sample, temperature, top_p = sampling(req)
    if do_sample is None:
        default_temperature = given.get("temperature")
        do_sample = given.get("do_sample", default_temperature is None or default_temperature > 0)
        temperature = default_temperature
    return do_sample, temperature, top_p if top_p is not None else given.get("top_p")


def generate_request(inputs: str, parameters: Mapping[str, Any], *, stream: bool = False) -> dict[str, Any]:
    """The body to POST to TGI's /generate (or /generate_stream) for one prompt."""
    try:
        request = TgiGenerateRequest(inputs=inputs, parameters=TgiParameters.model_validate(parameters))
    except ValidationError as error:
        raise unsendable(error) from None
    if stream:  # /generate_stream; /generate is sent no `stream`
        request.stream = True
    return body(request)


def generate_response(tgi: TgiGenerateResponse | Mapping[str, Any]) -> TgiGenerateResponse:
    """A TGI /generate answer, read (a 502 if it is not one)."""
    return read(TgiGenerateResponse, tgi, "a generate response")


def stream_response(tgi: TgiStreamResponse | Mapping[str, Any]) -> TgiStreamResponse:
    """One TGI /generate_stream event, read (a 502 if it is not one)."""
    return read(TgiStreamResponse, tgi, "a generate_stream event")


def completion_logprobs(
    tokens: Sequence[TgiToken], top_tokens: Sequence[Sequence[TgiToken]] | None, offset: int
) -> dict[str, Any]:
    """OpenAI completions `logprobs` for generated TGI tokens; `offset` is the text offset of the first."""
    texts, logprobs, offsets, tops = [], [], [], []
    for i, token in enumerate(tokens):
        texts.append(token.text)
        logprobs.append(token.logprob)
        offsets.append(offset)
        offset += len(token.text)
        if top_tokens is not None:
            step = top_tokens[i] if i < len(top_tokens) else ()
            tops.append({t.text: t.logprob for t in step})
    return {
        "tokens": texts,
        "token_logprobs": logprobs,
        "top_logprobs": tops if top_tokens is not None else None,
        "text_offset": offsets,
    }


def completion_choice(
    index: int, prompt: str, tgi: TgiGenerateResponse | Mapping[str, Any], echo: bool, logprobs: int | None
) -> dict[str, Any]:
    """One completions choice from a TGI /generate response (`details: true`)."""
    answer = generate_response(tgi)
    details = answer.details
    prefix = prompt if echo else ""
    choice: dict[str, Any] = {
        "index": index,
        "text": prefix + answer.generated_text,
        "logprobs": None,
        "finish_reason": (finish_reason(details.finish_reason) if details else None) or "stop",
    }
    if logprobs is not None:
        tops = details.top_tokens if details and logprobs else None
        choice["logprobs"] = completion_logprobs(details.tokens if details else [], tops, len(prefix))
    return choice
