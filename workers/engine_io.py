"""What crosses between the event loop and the generation engine's thread: requests, token events, results.

Free of torch and transformers, so the HTTP side (validation, serializers) imports it without loading the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from chalicelib.contracts.tgi import FinishReason

FINISH_LENGTH: FinishReason = "length"
FINISH_EOS: FinishReason = "eos_token"
FINISH_STOP: FinishReason = "stop_sequence"


@dataclass(frozen=True)
class SamplingParams:
    """Per-request decoding parameters (TGI's names and semantics)."""

    do_sample: bool = False
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    typical_p: float | None = None
    repetition_penalty: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    seed: int | None = None
    top_n_tokens: int = 0

    @property
    def sampling(self) -> bool:
        """TGI samples when asked to, or when any warper would change the distribution."""
        return (
            self.do_sample
            or (self.temperature is not None and self.temperature != 1.0)
            or (self.top_k is not None and self.top_k != 0)
            or (self.top_p is not None and self.top_p < 1.0)
            or (self.typical_p is not None and self.typical_p < 1.0)
        )


@dataclass(frozen=True)
class GenerationRequest:
    """Token ids to continue and how; `prefill_details` asks for the prompt tokens' logprobs too."""

    input_ids: tuple[int, ...]
    params: SamplingParams
    max_new_tokens: int
    stop_sequences: tuple[str, ...] = ()
    prefill_details: bool = False


@dataclass(frozen=True)
class TokenInfo:
    """A generated token: its text is the delta it adds to the output (whole characters only)."""

    id: int
    text: str
    logprob: float | None
    special: bool


@dataclass(frozen=True)
class PrefillToken:
    """A prompt token and its logprob under the model (None for the first)."""

    id: int
    text: str
    logprob: float | None


@dataclass(frozen=True)
class GenerationResult:
    """What a finished sequence reports with its last token."""

    generated_text: str
    finish_reason: FinishReason
    generated_tokens: int
    seed: int | None
    input_length: int
    prefill: list[PrefillToken]
    tokens: list[TokenInfo]
    top_tokens: list[list[TokenInfo]] | None
    queue_time: float
    inference_time: float


@dataclass(frozen=True)
class TokenEvent:
    """One generated token (index counts from 1); `final` is set on the sequence's last token."""

    index: int
    token: TokenInfo
    top_tokens: list[TokenInfo] | None
    final: GenerationResult | None = None


class GenerationFailed(RuntimeError):
    """The engine could not complete a sequence (the message says why)."""


class GenerationStream:
    """The asyncio side of one request: iterate for token events; `cancel()` stops its generation."""

    def __init__(self, loop: asyncio.AbstractEventLoop, wake: Callable[[], None]) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[TokenEvent | GenerationFailed] = asyncio.Queue()
        self._wake = wake
        self.cancelled = threading.Event()
        self.done = False

    # engine thread -> event loop
    def push(self, event: TokenEvent | GenerationFailed) -> None:
        """Hand an event to the event loop (from the engine thread)."""
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is listening any more
            self._loop.call_soon_threadsafe(self._queue.put_nowait, event)

    def cancel(self) -> None:
        """Ask the engine to drop this sequence (no-op once finished)."""
        if not self.done:
            self.cancelled.set()
            self._wake()

    async def __aiter__(self) -> AsyncIterator[TokenEvent]:
        while True:
            event = await self._queue.get()
            if isinstance(event, GenerationFailed):
                self.done = True
                raise event
            if event.final is not None:
                self.done = True
            yield event
            if event.final is not None:
                return

    async def result(self) -> tuple[list[TokenEvent], GenerationResult]:
        """Wait for the whole generation."""
        events = [event async for event in self]
        final = events[-1].final
        assert final is not None
        return events, final


@dataclass
class EngineStats:
    """Counters exposed on /metrics."""

    requests: int = 0
    succeeded: int = 0
    cancelled: int = 0
    failed: int = 0
    generated_tokens: int = 0
    prompt_tokens: int = 0
    batch_size: int = 0
    queue_size: int = 0
    steps: int = 0
