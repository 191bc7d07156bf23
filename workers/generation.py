"""Continuous-batching text generation on CPU with transformers: one engine thread, many concurrent streams.

Requests wait in a queue; at every step the engine admits what fits (batch size and token budgets), prefills the
newcomers together (left-padded), merges their KV caches into the running batch (`workers.kv_batch`), and runs one
decode step for every active sequence. Each sequence has its own sampling parameters (`workers.decoding`), seed (a
private torch.Generator), stop sequences and length limit (`workers.sequence`), and leaves the batch the step it
finishes or is cancelled. Tokens are handed to the asyncio side as they are produced (`workers.engine_io`), so the
first token of a stream leaves long before the last is computed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import torch
from aws_lambda_powertools import Logger
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    DynamicCache,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from workers.decoding import decode
from workers.engine_io import (
    EngineStats,
    GenerationFailed,
    GenerationRequest,
    GenerationStream,
    PrefillToken,
    TokenInfo,
)
from workers.kv_batch import RunningBatch
from workers.sequence import SequenceState


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
        self._pending: deque[SequenceState] = deque()
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._batch: RunningBatch[SequenceState] | None = None
        self._prefilling: list[SequenceState] = []

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
        """Warm the model up, then start the engine thread."""
        self._warmup()
        self._thread = threading.Thread(target=self._run, name="generation-engine", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the engine thread; running sequences are dropped."""
        self._stopping.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=10)

    @property
    def alive(self) -> bool:
        """Whether the engine thread runs (/health)."""
        return self._thread is not None and self._thread.is_alive()

    @torch.inference_mode()
    def _warmup(self) -> None:
        ids = torch.tensor([[self.pad_token_id] * 4])
        self.model(input_ids=ids, use_cache=False, logits_to_keep=1)

    # -- event-loop side -----------------------------------------------------------------------------------
    def submit(self, request: GenerationRequest) -> GenerationStream:
        """Queue a request; call from the event loop. Iterate the returned stream for its tokens."""
        stream = GenerationStream(asyncio.get_running_loop(), self._wake)
        sequence = SequenceState(request=request, stream=stream, submitted=time.monotonic())
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

    def _admit(self) -> list[SequenceState]:
        with self._cond:
            rows = self._batch.rows if self._batch is not None else []
            if not rows and not self._pending:
                self._cond.wait(timeout=0.5)
            admitted: list[SequenceState] = []
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

    def _prefill(self, sequences: list[SequenceState]) -> None:
        """Run the prompts (left-padded together; the ones wanting prompt logprobs alone), then join the batch."""
        for sequence in sequences:
            sequence.start(self.tokenizer)
            self.stats.prompt_tokens += len(sequence.request.input_ids)
        plain = [s for s in sequences if not s.request.prefill_details]
        groups = ([plain] if plain else []) + [[s] for s in sequences if s.request.prefill_details]
        for group in groups:
            self._prefill_group(group)

    def _prefill_group(self, group: list[SequenceState]) -> None:
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
        tokens = [PrefillToken(prompt[0], decode(self.tokenizer, [prompt[0]]), None)]
        for token, logprob in zip(prompt[1:], picked, strict=True):
            tokens.append(PrefillToken(token, decode(self.tokenizer, [token]), float(logprob)))
        return tokens

    def _merge(
        self,
        cache: DynamicCache,
        mask: torch.Tensor,
        next_ids: torch.Tensor,
        rows: list[SequenceState],
        keep: list[int],
    ) -> None:
        """Add freshly prefilled rows (their cache, mask, next inputs) to the running batch."""
        if len(keep) != mask.shape[0]:
            index = torch.tensor(keep)
            cache.batch_select_indices(index)
            mask = mask[index]
        incoming = RunningBatch(list(rows), cache, mask, next_ids)
        if self._batch is None:
            self._batch = incoming
        else:
            self._batch.extend(incoming)

    def _decode(self, batch: RunningBatch[SequenceState]) -> None:
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

    def _choose(self, rows: list[SequenceState], logits: torch.Tensor) -> list[int]:
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
        return TokenInfo(token, decode(self.tokenizer, [token]), logprob, token in self.special_ids)

    def _emit(self, sequence: SequenceState, token: int, logprob: float, top: list[TokenInfo] | None) -> None:
        special, eos = token in self.special_ids, token in self.eos_token_ids
        event = sequence.append(token, logprob, top, self.tokenizer, special=special, eos=eos)
        self.stats.generated_tokens += 1
        if event.final is not None:
            self.stats.succeeded += 1
        sequence.stream.push(event)

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
