"""The TGI worker's limits: flags first, then the environment variables TGI's launcher reads, then TGI's defaults."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from workers.common import env_int

LIMIT_FLAGS = (
    "max-concurrent-requests",
    "max-input-tokens",
    "max-total-tokens",
    "max-best-of",
    "max-stop-sequences",
    "max-top-n-tokens",
    "max-batch-size",
    "max-batch-total-tokens",
    "max-batch-prefill-tokens",
)


@dataclass(frozen=True)
class Limits:
    """What one request may ask (input, output, stops, best_of) and what the engine batches at once."""

    max_concurrent_requests: int = 128
    max_input_tokens: int = 4095
    max_total_tokens: int = 4096
    max_best_of: int = 2
    max_stop_sequences: int = 4
    max_top_n_tokens: int = 5
    max_client_batch_size: int = 4
    max_batch_size: int = 32
    max_batch_total_tokens: int = 32768
    max_batch_prefill_tokens: int = 4096


def _pick(flag: int | None, env: str, default: int) -> int:
    return flag or env_int(env) or default


def limits_from(args: argparse.Namespace, max_positions: int) -> Limits:
    """The limits of `args` (the `LIMIT_FLAGS`) and the environment; the total defaults to what the model holds."""
    total = args.max_total_tokens or env_int("MAX_TOTAL_TOKENS") or min(max_positions, 4096)
    max_input = args.max_input_tokens or env_int("MAX_INPUT_TOKENS", "MAX_INPUT_LENGTH") or total - 1
    if max_input >= total:
        raise SystemExit(f"max input tokens ({max_input}) must be < max total tokens ({total})")
    defaults = Limits()
    return Limits(
        max_concurrent_requests=_pick(
            args.max_concurrent_requests, "MAX_CONCURRENT_REQUESTS", defaults.max_concurrent_requests
        ),
        max_input_tokens=max_input,
        max_total_tokens=total,
        max_best_of=_pick(args.max_best_of, "MAX_BEST_OF", defaults.max_best_of),
        max_stop_sequences=_pick(args.max_stop_sequences, "MAX_STOP_SEQUENCES", defaults.max_stop_sequences),
        max_top_n_tokens=_pick(args.max_top_n_tokens, "MAX_TOP_N_TOKENS", defaults.max_top_n_tokens),
        max_client_batch_size=_pick(None, "MAX_CLIENT_BATCH_SIZE", defaults.max_client_batch_size),
        max_batch_size=_pick(args.max_batch_size, "MAX_BATCH_SIZE", defaults.max_batch_size),
        max_batch_total_tokens=_pick(
            args.max_batch_total_tokens, "MAX_BATCH_TOTAL_TOKENS", max(defaults.max_batch_total_tokens, total)
        ),
        max_batch_prefill_tokens=_pick(
            args.max_batch_prefill_tokens, "MAX_BATCH_PREFILL_TOKENS", max(defaults.max_batch_prefill_tokens, max_input)
        ),
    )
