"""OpenAI completions ↔ TGI /generate and /generate_stream (one TGI request per prompt)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chalicelib.contracts.openai import MAX_BATCH_PROMPTS, CompletionRequest
from chalicelib.serve.errors import invalid, unsupported
from chalicelib.serve.mapping.sampling import (
    finish_reason,
    presence_to_repetition_penalty,
    refuse_common,
    sampling,
    stop_list,
)

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
    """TGI `parameters` for a completions request (after the policy checks)."""
    refuse_common(req)
    if req.best_of is not None and req.best_of > 1:
        raise unsupported("best_of", "LISA generates one sequence per prompt")
    if req.suffix:
        raise unsupported("suffix", "TGI models do not insert text between a prompt and a suffix")
    if req.echo and req.logprobs is not None:
        raise unsupported("logprobs", "prompt-token logprobs (echo with logprobs) are not available")
    params = _default_parameters(defaults)
    _add_sampling(params, req)
    if req.stop is not None:
        params["stop"] = stop_list(req.stop)
    if req.seed is not None:
        params["seed"] = req.seed
    if req.frequency_penalty:
        params["frequency_penalty"] = req.frequency_penalty
    if req.presence_penalty:
        params["repetition_penalty"] = presence_to_repetition_penalty(req.presence_penalty)
    params["details"] = True
    if req.logprobs:
        params["top_n_tokens"] = req.logprobs
    return params


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


def _add_sampling(params: dict[str, Any], req: CompletionRequest) -> None:
    """Length, temperature and top_p: the request's over the defaults; greedy drops the sampling knobs."""
    if req.max_tokens is not None:
        params["max_new_tokens"] = req.max_tokens
    do_sample, temperature, top_p = sampling(req)
    if do_sample is None:
        params.setdefault("do_sample", "temperature" not in params or params["temperature"] > 0)
    else:
        params["do_sample"] = do_sample
        params.pop("temperature", None)
        if temperature is not None:
            params["temperature"] = temperature
    if top_p is not None:
        params["top_p"] = top_p
    if not params["do_sample"]:
        for key in ("temperature", "top_p", "top_k", "typical_p"):
            params.pop(key, None)


def completion_logprobs(
    tokens: Sequence[Mapping[str, Any]], top_tokens: Sequence[Sequence[Mapping[str, Any]]] | None, offset: int
) -> dict[str, Any]:
    """OpenAI completions `logprobs` for generated TGI tokens; `offset` is the text offset of the first."""
    texts, logprobs, offsets, tops = [], [], [], []
    for i, token in enumerate(tokens):
        text = token.get("text", "")
        texts.append(text)
        logprobs.append(token.get("logprob"))
        offsets.append(offset)
        offset += len(text)
        if top_tokens is not None:
            step = top_tokens[i] if i < len(top_tokens) else ()
            tops.append({t.get("text", ""): t.get("logprob") for t in step})
    return {
        "tokens": texts,
        "token_logprobs": logprobs,
        "top_logprobs": tops if top_tokens is not None else None,
        "text_offset": offsets,
    }


def completion_choice(
    index: int, prompt: str, tgi: Mapping[str, Any], echo: bool, logprobs: int | None
) -> dict[str, Any]:
    """One completions choice from a TGI /generate response (`details: true`)."""
    text = tgi.get("generated_text") or ""
    details = tgi.get("details") or {}
    prefix = prompt if echo else ""
    choice: dict[str, Any] = {
        "index": index,
        "text": prefix + text,
        "logprobs": None,
        "finish_reason": finish_reason(details.get("finish_reason")) or "stop",
    }
    if logprobs is not None:
        tops = details.get("top_tokens") if logprobs else None
        choice["logprobs"] = completion_logprobs(details.get("tokens") or [], tops, len(prefix))
    return choice
