"""The engine's results as response models: TGI's own routes and its Messages API (`chalicelib.contracts.tgi`, the
models LISA's router reads them with), and the OpenAI completions route TGI also serves
(`chalicelib.contracts.openai`)."""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from chalicelib.contracts.openai import Completion, CompletionChoice, Usage
from chalicelib.contracts.tgi import (
    TgiBestOfSequence,
    TgiChatChoice,
    TgiChatChunkChoice,
    TgiChatCompletion,
    TgiChatCompletionChunk,
    TgiChatDelta,
    TgiChatLogprob,
    TgiChatLogprobs,
    TgiDetails,
    TgiOutputMessage,
    TgiPrefillToken,
    TgiStreamDetails,
    TgiStreamResponse,
    TgiToken,
    TgiTopLogprob,
    TgiUsage,
)
from workers.engine_io import GenerationResult, TokenEvent, TokenInfo

VERSION = "3.3.4"  # the TGI release whose API this worker follows
SYSTEM_FINGERPRINT = f"{VERSION}-lisa-cpu"


# -- TGI ----------------------------------------------------------------------------------------------------------
def token(info: TokenInfo) -> TgiToken:
    """A generated token as TGI writes it."""
    return TgiToken(id=info.id, text=info.text, logprob=info.logprob, special=info.special)


def _sequence_fields(result: GenerationResult) -> dict[str, Any]:
    """What `details` and each of its `best_of_sequences` say of one generation."""
    return {
        "finish_reason": result.finish_reason,
        "generated_tokens": result.generated_tokens,
        "seed": result.seed,
        "prefill": [TgiPrefillToken(id=t.id, text=t.text, logprob=t.logprob) for t in result.prefill],
        "tokens": [token(t) for t in result.tokens],
        "top_tokens": None if result.top_tokens is None else [[token(t) for t in step] for step in result.top_tokens],
    }


def details(result: GenerationResult, best_of_sequences: list[TgiBestOfSequence] | None = None) -> TgiDetails:
    """`details` of a /generate answer."""
    return TgiDetails(**_sequence_fields(result), best_of_sequences=best_of_sequences)


def best_of_sequence(text: str, result: GenerationResult) -> TgiBestOfSequence:
    """A sequence that lost to the best one, with its own details."""
    return TgiBestOfSequence(generated_text=text, **_sequence_fields(result))


def stream_event(event: TokenEvent, text: str | None) -> TgiStreamResponse:
    """One /generate_stream event; `text` (the generated text) and `details` only on the last."""
    result = event.final
    return TgiStreamResponse(
        index=event.index,
        token=token(event.token),
        top_tokens=None if event.top_tokens is None else [token(t) for t in event.top_tokens],
        generated_text=text,
        details=None
        if result is None
        else TgiStreamDetails(
            finish_reason=result.finish_reason,
            generated_tokens=result.generated_tokens,
            seed=result.seed,
            input_length=result.input_length,
        ),
    )


def timing_headers(result: GenerationResult, started: float) -> dict[str, str]:
    """TGI's `x-*` timing headers of a /generate answer."""
    total = time.monotonic() - started
    per_token = result.inference_time / max(result.generated_tokens, 1)
    return {
        "x-compute-type": "cpu",
        "x-total-time": str(round(total * 1000)),
        "x-queue-time": str(round(result.queue_time * 1000)),
        "x-inference-time": str(round(result.inference_time * 1000)),
        "x-time-per-token": str(round(per_token * 1000)),
        "x-prompt-tokens": str(result.input_length),
        "x-generated-tokens": str(result.generated_tokens),
    }


# -- OpenAI-compatible routes -------------------------------------------------------------------------------------
def usage(prompt_tokens: int, completion_tokens: int) -> Usage:
    """OpenAI's token counts."""
    return Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
    )


def result_usage(result: GenerationResult) -> TgiUsage:
    """The token counts of one generation, as the Messages API writes them."""
    return TgiUsage(
        prompt_tokens=result.input_length,
        completion_tokens=result.generated_tokens,
        total_tokens=result.input_length + result.generated_tokens,
    )


def openai_reason(reason: str) -> Literal["length", "stop"]:
    """TGI's finish reason in OpenAI's words: `length`, else `stop`."""
    return "length" if reason == "length" else "stop"


def completion_id(prefix: str = "chatcmpl") -> str:
    """A fresh response id, shaped as OpenAI's."""
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def chat_logprobs(tokens: list[TokenInfo], top_tokens: list[list[TokenInfo]] | None) -> TgiChatLogprobs:
    """OpenAI's chat `logprobs`: each token with its logprob and its top alternatives."""
    tops = top_tokens or [[] for _ in tokens]
    return TgiChatLogprobs(
        content=[
            TgiChatLogprob(
                token=t.text,
                logprob=t.logprob,
                top_logprobs=[TgiTopLogprob(token=c.text, logprob=c.logprob) for c in top],
            )
            for t, top in zip(tokens, tops, strict=False)
        ]
    )


def chat_completion(model: str, result: GenerationResult, *, logprobs: bool) -> TgiChatCompletion:
    """The answer of a chat completion that is not streamed."""
    choice = TgiChatChoice(
        index=0,
        message=TgiOutputMessage(role="assistant", content=result.generated_text),
        logprobs=chat_logprobs(result.tokens, result.top_tokens) if logprobs else None,
        finish_reason=openai_reason(result.finish_reason),
    )
    return TgiChatCompletion(
        id=completion_id(),
        object="chat.completion",
        created=int(time.time()),
        model=model,
        system_fingerprint=SYSTEM_FINGERPRINT,
        choices=[choice],
        usage=result_usage(result),
    )


def chat_chunk(
    header: dict[str, Any], choices: list[TgiChatChunkChoice], chunk_usage: TgiUsage | None = None
) -> TgiChatCompletionChunk:
    """One streamed chat chunk; `header` holds what every chunk of a stream repeats (id, created, model)."""
    return TgiChatCompletionChunk(
        **header,
        object="chat.completion.chunk",
        system_fingerprint=SYSTEM_FINGERPRINT,
        choices=choices,
        usage=chunk_usage,
    )


def chat_chunk_choice(event: TokenEvent, *, logprobs: bool) -> TgiChatChunkChoice:
    """The one choice of a streamed chat chunk: the token's text (empty for a special token)."""
    return TgiChatChunkChoice(
        index=0,
        delta=TgiChatDelta(role="assistant", content="" if event.token.special else event.token.text),
        logprobs=chat_logprobs([event.token], [event.top_tokens or []]) if logprobs else None,
        finish_reason=openai_reason(event.final.finish_reason) if event.final else None,
    )


def completion(
    header: dict[str, Any], choices: list[CompletionChoice], completion_usage: Usage | None = None
) -> Completion:
    """A completions answer, or one streamed chunk of it (same shape; `usage` left out unless given)."""
    fields: dict[str, Any] = {} if completion_usage is None else {"usage": completion_usage}
    return Completion(
        **header, object="text_completion", system_fingerprint=SYSTEM_FINGERPRINT, choices=choices, **fields
    )


def completion_choice(index: int, text: str, reason: str | None) -> CompletionChoice:
    """One choice of a completions answer or chunk."""
    return CompletionChoice(
        index=index, text=text, logprobs=None, finish_reason=None if reason is None else openai_reason(reason)
    )


def stream_header(model: str, prefix: str = "chatcmpl") -> dict[str, Any]:
    """What every response (and chunk) of one OpenAI-style request repeats: its id, time and model."""
    return {"id": completion_id(prefix), "created": int(time.time()), "model": model}
