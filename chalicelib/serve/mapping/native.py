"""LISA-native v1: TGI answers → /v1/generate and /v1/generateStream bodies; native `text` checks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib.contracts.native import NativeStreamResponse, NativeToken
from chalicelib.contracts.openai import MAX_BATCH_PROMPTS
from chalicelib.contracts.tgi import TgiGenerateResponse, TgiStreamResponse
from chalicelib.serve.errors import invalid
from chalicelib.serve.mapping.wire import read


def native_generate_response(tgi: TgiGenerateResponse | Mapping[str, Any]) -> dict[str, Any]:
    """TGI /generate (`details: true`) → LISA /v1/generate."""
    answer = read(TgiGenerateResponse, tgi, "a generate response")
    details = answer.details
    return {
        "generatedText": answer.generated_text,
        "generatedTokens": details.generated_tokens if details else 0,
        "finishReason": details.finish_reason if details else "length",
    }


def native_stream_event(tgi: TgiStreamResponse | Mapping[str, Any]) -> dict[str, Any]:
    """One TGI stream event → one LISA /v1/generateStream event, exactly as the first LISA sent it.

    `{"token": {"text", "special"}}` per generated token; the last token's own event also carries
    `generatedTokens` and `finishReason`. (lisapy yields that final event with an empty token, so its users do not
    see the last token's text; other clients get every token. Wire compatibility with the first LISA wins.)
    """
    event = read(TgiStreamResponse, tgi, "a generate_stream event")
    details = event.details
    native = NativeStreamResponse(
        token=NativeToken(text=event.token.text, special=event.token.special),
        generated_tokens=details.generated_tokens if details else None,
        finish_reason=details.finish_reason if details else None,
    )
    return native.model_dump(by_alias=True, exclude_none=True)


def native_text(text: str | list[str], param: str = "text") -> str:
    """The one prompt of a native generate request."""
    if not isinstance(text, str):
        raise invalid("'text' must be one string for text generation", param)
    if not text:
        raise invalid("'text' must not be empty", param)
    return text


def native_texts(text: str | list[str]) -> list[str]:
    """The texts of a native embeddings request."""
    texts = [text] if isinstance(text, str) else text
    if not 0 < len(texts) <= MAX_BATCH_PROMPTS:
        raise invalid(f"'text' must hold 1 to {MAX_BATCH_PROMPTS} texts, got {len(texts)}", "text")
    if any(not t for t in texts):
        raise invalid("'text' entries must not be empty", "text")
    return texts
