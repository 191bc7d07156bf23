"""LISA-native v1: TGI answers → /v1/generate and /v1/generateStream bodies; native `text` checks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib.contracts.native import NativeStreamResponse, NativeToken
from chalicelib.contracts.openai import MAX_BATCH_PROMPTS
from chalicelib.serve.errors import invalid


def native_generate_response(tgi: Mapping[str, Any]) -> dict[str, Any]:
    """TGI /generate (`details: true`) → LISA /v1/generate."""
    details = tgi.get("details") or {}
    return {
        "generatedText": tgi.get("generated_text") or "",
        "generatedTokens": details.get("generated_tokens", 0),
        "finishReason": details.get("finish_reason", "length"),
    }


def native_stream_event(tgi: Mapping[str, Any]) -> dict[str, Any]:
    """One TGI stream event → one LISA /v1/generateStream event, exactly as the first LISA sent it.

    `{"token": {"text", "special"}}` per generated token; the last token's own event also carries
    `generatedTokens` and `finishReason`. (lisapy yields that final event with an empty token, so its users do not
    see the last token's text; other clients get every token. Wire compatibility with the first LISA wins.)
    """
    token = tgi.get("token") or {}
    details = tgi.get("details") or {}
    event = NativeStreamResponse(
        token=NativeToken(text=token.get("text", ""), special=bool(token.get("special"))),
        generated_tokens=details.get("generated_tokens", 0) if details else None,
        finish_reason=details.get("finish_reason", "length") if details else None,
    )
    return event.model_dump(by_alias=True, exclude_none=True)


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
