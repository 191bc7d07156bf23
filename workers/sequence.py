"""One request inside the generation engine: its decoding state, the tokens it emits, when it finishes and its result.

The engine (`workers.generation`) schedules and batches sequences and runs the model; what happens to one sequence
between its admission and its last token (sampling state, incremental text, TGI's stop rules) is here.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

import torch
from transformers import PreTrainedTokenizerBase
from transformers.generation.logits_process import LogitsProcessor

from chalicelib.contracts.tgi import FinishReason
from workers.decoding import Detokenizer, decode, logits_processors
from workers.engine_io import (
    FINISH_EOS,
    FINISH_LENGTH,
    FINISH_STOP,
    GenerationRequest,
    GenerationResult,
    GenerationStream,
    PrefillToken,
    TokenEvent,
    TokenInfo,
)


@dataclass
class SequenceState:
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
    detokenizer: Detokenizer | None = None
    started: float = 0.0
    finished: bool = False

    @property
    def budget(self) -> int:
        """The tokens the sequence may hold at most: prompt plus output budget (what admission reserves)."""
        return len(self.request.input_ids) + self.request.max_new_tokens

    def start(self, tokenizer: PreTrainedTokenizerBase) -> None:
        """Ready to decode: its logits processors, its own seeded generator when it samples, its detokenizer."""
        request = self.request
        params = request.params
        self.started = time.monotonic()
        self.ids = list(request.input_ids)
        self.detokenizer = Detokenizer(tokenizer, request.input_ids)
        self.processors = logits_processors(params, len(request.input_ids))
        if params.sampling:
            self.seed = params.seed if params.seed is not None else random.getrandbits(63)
            self.generator = torch.Generator().manual_seed(self.seed)

    def append(
        self,
        token: int,
        logprob: float,
        top: list[TokenInfo] | None,
        tokenizer: PreTrainedTokenizerBase,
        *,
        special: bool,
        eos: bool,
    ) -> TokenEvent:
        """Add the chosen `token`; the event to send carries the result when this token ends the sequence."""
        assert self.detokenizer is not None, "start() comes first"
        delta = self.detokenizer.push(token)
        if special:
            delta = decode(tokenizer, [token])
        else:
            self.text += delta
        info = TokenInfo(token, delta, logprob, special)
        self.ids.append(token)
        self.generated.append(token)
        self.tokens.append(info)
        if top is not None:
            self.top_tokens.append(top)
        reason = self._finish_reason(eos, len(delta))
        final = None
        if reason is not None:
            self.finished = True
            final = self._result(reason, tokenizer)
        return TokenEvent(len(self.generated), info, top, final)

    def _finish_reason(self, eos: bool, delta_length: int) -> FinishReason | None:
        """TGI's order: length first, then the EOS token, then stop sequences (searched where new text landed)."""
        if len(self.generated) >= self.request.max_new_tokens:
            return FINISH_LENGTH
        if eos:
            return FINISH_EOS
        for stop in self.request.stop_sequences:
            if delta_length and stop in self.text[-(delta_length + len(stop)) :]:
                return FINISH_STOP
        return None

    def _result(self, reason: FinishReason, tokenizer: PreTrainedTokenizerBase) -> GenerationResult:
        now = time.monotonic()
        return GenerationResult(
            generated_text=decode(tokenizer, self.generated, skip_special=True),
            finish_reason=reason,
            generated_tokens=len(self.generated),
            seed=self.seed,
            input_length=len(self.request.input_ids),
            prefill=self.prefill,
            tokens=self.tokens,
            top_tokens=self.top_tokens if self.request.params.top_n_tokens else None,
            queue_time=self.started - self.submitted,
            inference_time=now - self.started,
        )
