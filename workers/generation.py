"""Continuous-batching text generation on CPU with transformers: one engine thread, many concurrent streams.

Requests wait in a queue; at every step the engine admits what fits (batch size and token budgets), prefills the
newcomers together (left-padded), merges their KV caches into the running batch, and runs one decode step for
every active sequence. Each sequence has its own sampling parameters, seed (a private torch.Generator), stop
sequences and length limit, and leaves the batch the step it finishes or is cancelled. Tokens are handed to the
asyncio side as they are produced, so the first token of a stream leaves long before the last is computed.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from aws_lambda_powertools import Logger
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    DynamicCache,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.cache_utils import DynamicLayer
from transformers.generation.logits_process import (
    LogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
    TypicalLogitsWarper,
)

FINISH_LENGTH = "length"
FINISH_EOS = "eos_token"
FINISH_STOP = "stop_sequence"


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
    id: int
    text: str
    logprob: float | None
    special: bool


@dataclass(frozen=True)
class PrefillToken:
    id: int
    text: str
    logprob: float | None


@dataclass(frozen=True)
class Final:
    """What a finished sequence reports with its last token."""

    generated_text: str
    finish_reason: str
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
    final: Final | None = None


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

    async def result(self) -> tuple[list[TokenEvent], Final]:
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


class _Detokenizer:
    """Incremental decoding (TGI's prefix/read offsets) so multi-token characters are emitted whole."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, prompt_ids: Iterable[int]) -> None:
        self._tokenizer = tokenizer
        self._ids = list(prompt_ids)[-5:]
        self._prefix = 0
        self._read = len(self._ids)

    def push(self, token_id: int) -> str:
        self._ids.append(token_id)
        prefix_text = _text(self._tokenizer, self._ids[self._prefix : self._read])
        new_text = _text(self._tokenizer, self._ids[self._prefix :])
        if len(new_text) > len(prefix_text) and not new_text.endswith("\ufffd"):
            self._prefix, self._read = self._read, len(self._ids)
            return new_text[len(prefix_text) :]
        return ""


class _PenaltyProcessor(LogitsProcessor):
    """TGI's frequency penalty (token frequency over the whole sequence) and OpenAI's presence penalty."""

    def __init__(self, frequency: float | None, presence: float | None, prompt_length: int) -> None:
        self._frequency = frequency or 0.0
        self._presence = presence or 0.0
        self._prompt_length = prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self._frequency:
            counts = torch.zeros_like(scores).scatter_add_(1, input_ids, torch.ones_like(input_ids, dtype=scores.dtype))
            scores = cast(torch.FloatTensor, scores - self._frequency * counts / input_ids.shape[1])
        generated = input_ids[:, self._prompt_length :]
        if self._presence and generated.numel():
            present = torch.zeros_like(scores).scatter_(1, generated, 1.0)
            scores = cast(torch.FloatTensor, scores - self._presence * present)
        return scores


@dataclass
class _Sequence:
    """Engine-side state of one request."""

    request: GenerationRequest
    stream: GenerationStream
    submitted: float
    processors: list[LogitsProcessor] = field(default_factory=list)
    generator: torch.Generator | None = None
    seed: int | None = None
    ids: list[int] = field(default_factory=list)  # prompt + generated
    generated: list[int] = field(default_factory=list)
    tokens: list[TokenInfo] = field(default_factory=list)
    top_tokens: list[list[TokenInfo]] = field(default_factory=list)
    prefill: list[PrefillToken] = field(default_factory=list)
    text: str = ""
    detokenizer: _Detokenizer | None = None
    started: float = 0.0
    finished: bool = False

    @property
    def budget(self) -> int:
        return len(self.request.input_ids) + self.request.max_new_tokens


class GenerationEngine:
    """A causal LM served to many concurrent requests by one background thread (continuous batching)."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        logger: Logger,
        max_batch_size: int = 32,
        max_batch_total_tokens: int = 32768,
        max_batch_prefill_tokens: int = 4096,
    ) -> None:
        model.eval()  # type: ignore[no-untyped-call]
        self.model = model
        self.tokenizer = tokenizer
        self.logger = logger
        self.max_batch_size = max_batch_size
        self.max_batch_total_tokens = max_batch_total_tokens
        self.max_batch_prefill_tokens = max_batch_prefill_tokens
        self.eos_token_ids = self._eos_ids()
        self.special_ids = set(tokenizer.all_special_ids)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_token_ids, default=0)
        self.pad_token_id = int(pad)
        self.stats = EngineStats()
        self._pending: deque[_Sequence] = deque()
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._batch: _Batch | None = None
        self._prefilling: list[_Sequence] = []

    @classmethod
    def load(cls, model_dir: Path, *, dtype: str = "float32", logger: Logger, **options: Any) -> GenerationEngine:
        """Load a HF folder (safetensors + tokenizer) for CPU inference."""
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype))
        return cls(model, tokenizer, logger=logger, **options)

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        for source in (self.model.generation_config, self.model.config, self.tokenizer):
            value = getattr(source, "eos_token_id", None)
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, list | tuple):
                ids.update(int(v) for v in value)
        return ids

    # -- lifecycle -----------------------------------------------------------------------------------------
    def start(self) -> None:
        self._warmup()
        self._thread = threading.Thread(target=self._run, name="generation-engine", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=10)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @torch.inference_mode()
    def _warmup(self) -> None:
        ids = torch.tensor([[self.pad_token_id] * 4])
        self.model(input_ids=ids, use_cache=False, logits_to_keep=1)

    # -- event-loop side -----------------------------------------------------------------------------------
    def submit(self, request: GenerationRequest) -> GenerationStream:
        """Queue a request; call from the event loop. Iterate the returned stream for its tokens."""
        stream = GenerationStream(asyncio.get_running_loop(), self._wake)
        sequence = _Sequence(request=request, stream=stream, submitted=time.monotonic())
        with self._cond:
            self._pending.append(sequence)
            self.stats.requests += 1
            self.stats.queue_size = len(self._pending)
            self._cond.notify()
        return stream

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify()

    # -- engine thread -------------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._iteration()
            except Exception as error:  # never let the thread die: fail what was running, keep serving
                self.logger.exception("generation step failed")
                self._fail_all(f"generation failed: {error}")

    @torch.inference_mode()
    def _iteration(self) -> None:
        self._drop_cancelled()
        admitted = self._admit()
        if admitted:
            self._prefilling = admitted
            self._prefill(admitted)
            self._prefilling = []
            self._compact()
        if self._batch is not None:
            self._decode(self._batch)

    def _admit(self) -> list[_Sequence]:
        with self._cond:
            rows = self._batch.rows if self._batch is not None else []
            if not rows and not self._pending:
                self._cond.wait(timeout=0.5)
            admitted: list[_Sequence] = []
            used = sum(row.budget for row in rows)
            prefill_tokens = 0
            while self._pending:
                candidate = self._pending[0]
                if candidate.stream.cancelled.is_set():
                    self._pending.popleft()
                    self.stats.cancelled += 1
                    continue
                longest = max([len(s.request.input_ids) for s in admitted] + [len(candidate.request.input_ids)])
                fits = (
                    len(rows) + len(admitted) < self.max_batch_size
                    and used + candidate.budget <= self.max_batch_total_tokens
                    and longest * (len(admitted) + 1) <= self.max_batch_prefill_tokens
                )
                if not fits and (admitted or rows):
                    break
                self._pending.popleft()
                admitted.append(candidate)
                used += candidate.budget
                prefill_tokens = longest * len(admitted)
            self.stats.queue_size = len(self._pending)
            self.stats.batch_size = len(rows) + len(admitted)  # counted before their first token leaves
        if admitted:
            self.logger.debug("admitted", extra={"count": len(admitted), "prefill_tokens": prefill_tokens})
        return admitted

    def _prepare(self, sequence: _Sequence) -> None:
        request = sequence.request
        params = request.params
        sequence.started = time.monotonic()
        sequence.ids = list(request.input_ids)
        sequence.detokenizer = _Detokenizer(self.tokenizer, request.input_ids)
        processors: list[LogitsProcessor] = []
        if params.repetition_penalty is not None and params.repetition_penalty != 1.0:
            processors.append(RepetitionPenaltyLogitsProcessor(params.repetition_penalty))
        if params.frequency_penalty or params.presence_penalty:
            processors.append(
                _PenaltyProcessor(params.frequency_penalty, params.presence_penalty, len(request.input_ids))
            )
        if params.sampling:
            if params.temperature is not None and params.temperature != 1.0:
                processors.append(TemperatureLogitsWarper(params.temperature))
            if params.top_k:
                processors.append(TopKLogitsWarper(params.top_k))
            if params.top_p is not None and params.top_p < 1.0:
                processors.append(TopPLogitsWarper(params.top_p))
            if params.typical_p is not None and params.typical_p < 1.0:
                processors.append(TypicalLogitsWarper(params.typical_p))
            sequence.seed = params.seed if params.seed is not None else random.getrandbits(63)
            sequence.generator = torch.Generator().manual_seed(sequence.seed)
        sequence.processors = processors
        self.stats.prompt_tokens += len(request.input_ids)

    def _prefill(self, sequences: list[_Sequence]) -> None:
        """Run the prompts (left-padded together; the ones wanting prompt logprobs alone), then join the batch."""
        for sequence in sequences:
            self._prepare(sequence)
        plain = [s for s in sequences if not s.request.prefill_details]
        groups = ([plain] if plain else []) + [[s] for s in sequences if s.request.prefill_details]
        for group in groups:
            self._prefill_group(group)

    def _prefill_group(self, group: list[_Sequence]) -> None:
        longest = max(len(s.request.input_ids) for s in group)
        ids = torch.full((len(group), longest), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(group), longest), dtype=torch.long)
        for row, sequence in enumerate(group):
            prompt = sequence.request.input_ids
            ids[row, longest - len(prompt) :] = torch.tensor(prompt)
            mask[row, longest - len(prompt) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        details = group[0].request.prefill_details
        cache = DynamicCache(config=self.model.config)
        output = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=0 if details else 1,
        )
        logits = output.logits[:, -1, :].float()
        if details:
            group[0].prefill = self._prefill_tokens(group[0].request.input_ids, output.logits[0].float())
        next_ids = self._choose(group, logits)
        keep = [row for row, sequence in enumerate(group) if not sequence.finished]
        if not keep:
            return
        self._merge(cache, mask, torch.tensor([[next_ids[row]] for row in keep]), [group[row] for row in keep], keep)

    def _prefill_tokens(self, prompt: tuple[int, ...], logits: torch.Tensor) -> list[PrefillToken]:
        logprobs = torch.log_softmax(logits[:-1], dim=-1)
        targets = torch.tensor(prompt[1:], dtype=torch.long)
        picked = logprobs.gather(1, targets[:, None])[:, 0].tolist() if len(prompt) > 1 else []
        tokens = [PrefillToken(prompt[0], _text(self.tokenizer, [prompt[0]]), None)]
        for token, logprob in zip(prompt[1:], picked, strict=True):
            tokens.append(PrefillToken(token, _text(self.tokenizer, [token]), float(logprob)))
        return tokens

    def _merge(
        self, cache: DynamicCache, mask: torch.Tensor, next_ids: torch.Tensor, rows: list[_Sequence], keep: list[int]
    ) -> None:
        """Add freshly prefilled rows (their cache, mask, next inputs) to the running batch."""
        if len(keep) != mask.shape[0]:
            index = torch.tensor(keep)
            cache.batch_select_indices(index)
            mask = mask[index]
        incoming = _Batch(list(rows), cache, mask, next_ids)
        if self._batch is None:
            self._batch = incoming
        else:
            self._batch.extend(incoming)

    def _decode(self, batch: _Batch) -> None:
        mask = torch.cat([batch.mask, batch.mask.new_ones((batch.mask.shape[0], 1))], dim=1)
        positions = batch.mask.sum(dim=1, keepdim=True)
        output = self.model(
            input_ids=batch.next_ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=batch.cache,
            use_cache=True,
        )
        batch.mask = mask
        self.stats.steps += 1
        next_ids = self._choose(batch.rows, output.logits[:, -1, :].float())
        batch.next_ids = torch.tensor([[token] for token in next_ids])
        self._compact()

    def _choose(self, rows: list[_Sequence], logits: torch.Tensor) -> list[int]:
        """Pick each row's next token with its own processors/generator, then emit it."""
        chosen: list[int] = []
        plain_logprobs = torch.log_softmax(logits, dim=-1)
        for row, sequence in enumerate(rows):
            if sequence.processors:
                scores = logits[row : row + 1]
                history = torch.tensor([sequence.ids], dtype=torch.long)
                for processor in sequence.processors:
                    scores = processor(history, scores)
                logprobs = torch.log_softmax(scores, dim=-1)[0]
            else:
                logprobs = plain_logprobs[row]
            if sequence.generator is not None:
                token = int(torch.multinomial(logprobs.exp(), 1, generator=sequence.generator))
            else:
                token = int(torch.argmax(logprobs))
            top: list[TokenInfo] | None = None
            if sequence.request.params.top_n_tokens:
                values, indices = torch.topk(logprobs, sequence.request.params.top_n_tokens)
                top = [self._token(int(i), float(v)) for v, i in zip(values.tolist(), indices.tolist(), strict=True)]
            self._emit(sequence, token, float(logprobs[token]), top)
            chosen.append(token)
        return chosen

    def _token(self, token: int, logprob: float | None) -> TokenInfo:
        return TokenInfo(token, _text(self.tokenizer, [token]), logprob, token in self.special_ids)

    def _emit(self, sequence: _Sequence, token: int, logprob: float, top: list[TokenInfo] | None) -> None:
        assert sequence.detokenizer is not None
        special = token in self.special_ids
        delta = sequence.detokenizer.push(token)
        if special:
            delta = _text(self.tokenizer, [token])
        else:
            sequence.text += delta
        info = TokenInfo(token, delta, logprob, special)
        sequence.ids.append(token)
        sequence.generated.append(token)
        sequence.tokens.append(info)
        if top is not None:
            sequence.top_tokens.append(top)
        self.stats.generated_tokens += 1
        reason = self._finish_reason(sequence, token, len(delta))
        final = None
        if reason is not None:
            sequence.finished = True
            final = self._final(sequence, reason)
            self.stats.succeeded += 1
        sequence.stream.push(TokenEvent(len(sequence.generated), info, top, final))

    def _finish_reason(self, sequence: _Sequence, token: int, delta_length: int) -> str | None:
        """TGI's order: length first, then the EOS token, then stop sequences (searched where new text landed)."""
        if len(sequence.generated) >= sequence.request.max_new_tokens:
            return FINISH_LENGTH
        if token in self.eos_token_ids:
            return FINISH_EOS
        for stop in sequence.request.stop_sequences:
            if delta_length and stop in sequence.text[-(delta_length + len(stop)) :]:
                return FINISH_STOP
        return None

    def _final(self, sequence: _Sequence, reason: str) -> Final:
        now = time.monotonic()
        return Final(
            generated_text=_text(self.tokenizer, sequence.generated, skip_special=True),
            finish_reason=reason,
            generated_tokens=len(sequence.generated),
            seed=sequence.seed,
            input_length=len(sequence.request.input_ids),
            prefill=sequence.prefill,
            tokens=sequence.tokens,
            top_tokens=sequence.top_tokens if sequence.request.params.top_n_tokens else None,
            queue_time=sequence.started - sequence.submitted,
            inference_time=now - sequence.started,
        )

    def _drop_cancelled(self) -> None:
        if self._batch is None:
            return
        dropped = 0
        for sequence in self._batch.rows:
            if not sequence.finished and sequence.stream.cancelled.is_set():
                sequence.finished = True
                dropped += 1
        if dropped:
            self.stats.cancelled += dropped
            self.logger.info("cancelled", extra={"sequences": dropped})
            self._compact()

    def _compact(self) -> None:
        """Drop finished rows from the batch (and the left padding no remaining row needs)."""
        if self._batch is not None and not self._batch.compact():
            self._batch = None
        self.stats.batch_size = len(self._batch.rows) if self._batch is not None else 0

    def _fail_all(self, message: str) -> None:
        rows = self._batch.rows if self._batch is not None else []
        for sequence in {id(s): s for s in [*rows, *self._prefilling]}.values():
            if not sequence.finished:
                sequence.finished = True
                sequence.stream.push(GenerationFailed(message))
                self.stats.failed += 1
        self._batch, self._prefilling = None, []
        self.stats.batch_size = 0


class _Batch:
    """The running batch: sequences, their KV cache [B, heads, L, dim], attention mask [B, L], next input ids."""

    def __init__(self, rows: list[_Sequence], cache: DynamicCache, mask: torch.Tensor, next_ids: torch.Tensor) -> None:
        self.rows = rows
        self.cache = cache
        self.mask = mask
        self.next_ids = next_ids

    def extend(self, other: _Batch) -> None:
        """Append `other`'s rows, left-padding whichever side is shorter so positions line up."""
        current, incoming = self.mask.shape[1], other.mask.shape[1]
        if incoming < current:
            _pad_left(other.cache, current - incoming)
            other.mask = F.pad(other.mask, (current - incoming, 0))
        elif incoming > current:
            _pad_left(self.cache, incoming - current)
            self.mask = F.pad(self.mask, (incoming - current, 0))
        for mine, theirs in zip(_layers(self.cache), _layers(other.cache), strict=True):
            mine.keys = torch.cat([_keys(mine), _keys(theirs)])
            mine.values = torch.cat([_values(mine), _values(theirs)])
        self.mask = torch.cat([self.mask, other.mask])
        self.next_ids = torch.cat([self.next_ids, other.next_ids])
        self.rows.extend(other.rows)

    def compact(self) -> bool:
        """Remove finished rows and all-padding leading columns; False when nothing is left."""
        keep = [row for row, sequence in enumerate(self.rows) if not sequence.finished]
        if not keep:
            return False
        if len(keep) != len(self.rows):
            index = torch.tensor(keep)
            self.cache.batch_select_indices(index)
            self.mask, self.next_ids = self.mask[index], self.next_ids[index]
            self.rows = [self.rows[row] for row in keep]
            unused = int((self.mask.sum(dim=0) == 0).long().cumprod(dim=0).sum())
            if unused:
                self.mask = self.mask[:, unused:]
                for layer in _layers(self.cache):
                    layer.keys = _keys(layer)[:, :, unused:, :]
                    layer.values = _values(layer)[:, :, unused:, :]
        return True


def _pad_left(cache: DynamicCache, count: int) -> None:
    for layer in _layers(cache):
        layer.keys = F.pad(_keys(layer), (0, 0, count, 0))
        layer.values = F.pad(_values(layer), (0, 0, count, 0))


def _layers(cache: DynamicCache) -> list[DynamicLayer]:
    """The cache's per-layer K/V stores (full-attention layers only: the batch surgery relies on it)."""
    layers = list(cache.layers)
    for layer in layers:
        if type(layer) is not DynamicLayer:
            raise GenerationFailed(f"unsupported cache layer {type(layer).__name__} (sliding/linear attention)")
    return cast(list[DynamicLayer], layers)


def _keys(layer: DynamicLayer) -> torch.Tensor:
    assert layer.keys is not None
    return layer.keys


def _values(layer: DynamicLayer) -> torch.Tensor:
    assert layer.values is not None
    return layer.values


def _text(tokenizer: PreTrainedTokenizerBase, ids: list[int], *, skip_special: bool = False) -> str:
    return str(tokenizer.decode(ids, skip_special_tokens=skip_special))
