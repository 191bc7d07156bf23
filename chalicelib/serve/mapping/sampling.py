"""The sampling policy chat and completions share (docs/serving.md): refusals, temperature/top_p, stop, penalties."""

from __future__ import annotations

import secrets

from chalicelib.contracts.openai import MAX_STOP_SEQUENCES, ChatCompletionRequest, CompletionRequest
from chalicelib.serve.errors import invalid, unsupported

OPENAI_FINISH = {"length": "length", "eos_token": "stop", "stop_sequence": "stop"}


def stop_list(stop: str | list[str] | None, param: str = "stop") -> list[str]:
    """`stop` as TGI's list: at most MAX_STOP_SEQUENCES non-empty strings."""
    if stop is None:
        return []
    stops = [stop] if isinstance(stop, str) else list(stop)
    if len(stops) > MAX_STOP_SEQUENCES:
        raise invalid(f"'{param}' takes at most {MAX_STOP_SEQUENCES} sequences, got {len(stops)}", param)
    if any(not s for s in stops):
        raise invalid(f"'{param}' sequences must not be empty", param)
    return stops


def presence_to_repetition_penalty(presence_penalty: float) -> float:
    """OpenAI presence_penalty (-2..2) → TGI repetition_penalty: `2 ** (p / 2)` (0 → 1.0, i.e. off)."""
    return float(2.0 ** (presence_penalty / 2.0))


def refuse_common(req: ChatCompletionRequest | CompletionRequest) -> None:
    """Refuse what neither chat nor completions can honour on TGI (400 `unsupported_parameter`)."""
    if req.n is not None and req.n > 1:
        raise unsupported("n", "LISA returns one choice per request; send n requests (with different seeds)")
    if req.logit_bias:
        raise unsupported("logit_bias", "TGI backends cannot bias token logits")


def sampling(req: ChatCompletionRequest | CompletionRequest) -> tuple[bool | None, float | None, float | None]:
    """(do_sample, temperature, top_p) by the policy above; do_sample None means "the model's default"."""
    top_p = None if req.top_p is None or req.top_p >= 1.0 else req.top_p
    if req.temperature is None:
        return None, None, top_p
    if req.temperature == 0.0:
        return False, None, None
    return True, req.temperature, top_p


def finish_reason(tgi_reason: str | None) -> str | None:
    """TGI's finish reason → OpenAI's."""
    return None if tgi_reason is None else OPENAI_FINISH.get(tgi_reason, "stop")


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    """OpenAI `usage`."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def new_id(prefix: str) -> str:
    """`prefix-<24 hex>`: chatcmpl-…, cmpl-…"""
    return f"{prefix}-{secrets.token_hex(12)}"
