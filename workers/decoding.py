"""Per-sequence decoding on CPU: incremental detokenization and the logits processors of TGI's parameters."""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

import torch
from transformers import PreTrainedTokenizerBase
from transformers.generation.logits_process import (
    LogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
    TypicalLogitsWarper,
)

from workers.engine_io import SamplingParams


class Detokenizer:
    """Incremental decoding (TGI's prefix/read offsets) so multi-token characters are emitted whole."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, prompt_ids: Iterable[int]) -> None:
        self._tokenizer = tokenizer
        self._ids = list(prompt_ids)[-5:]
        self._prefix = 0
        self._read = len(self._ids)

    def push(self, token_id: int) -> str:
        """The text `token_id` adds, or '' while it ends inside a character (emitted with the next token)."""
        self._ids.append(token_id)
        prefix_text = decode(self._tokenizer, self._ids[self._prefix : self._read])
        new_text = decode(self._tokenizer, self._ids[self._prefix :])
        if len(new_text) > len(prefix_text) and not new_text.endswith("\ufffd"):
            self._prefix, self._read = self._read, len(self._ids)
            return new_text[len(prefix_text) :]
        return ""


class PenaltyProcessor(LogitsProcessor):
    """TGI's frequency penalty (token frequency over the whole sequence) and OpenAI's presence penalty."""

    def __init__(self, frequency: float | None, presence: float | None, prompt_length: int) -> None:
        self._frequency = frequency or 0.0
        self._presence = presence or 0.0
        self._prompt_length = prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        """`scores` lowered by each token's frequency in `input_ids` and by its presence in the generated part."""
        if self._frequency:
            counts = torch.zeros_like(scores).scatter_add_(1, input_ids, torch.ones_like(input_ids, dtype=scores.dtype))
            scores = cast(torch.FloatTensor, scores - self._frequency * counts / input_ids.shape[1])
        generated = input_ids[:, self._prompt_length :]
        if self._presence and generated.numel():
            present = torch.zeros_like(scores).scatter_(1, generated, 1.0)
            scores = cast(torch.FloatTensor, scores - self._presence * present)
        return scores


def logits_processors(params: SamplingParams, prompt_length: int) -> list[LogitsProcessor]:
    """The processors that turn a model's logits into the distribution `params` asks for (TGI's order)."""
    processors: list[LogitsProcessor] = []
    if params.repetition_penalty is not None and params.repetition_penalty != 1.0:
        processors.append(RepetitionPenaltyLogitsProcessor(params.repetition_penalty))
    if params.frequency_penalty or params.presence_penalty:
        processors.append(PenaltyProcessor(params.frequency_penalty, params.presence_penalty, prompt_length))
    if params.sampling:
        if params.temperature is not None and params.temperature != 1.0:
            processors.append(TemperatureLogitsWarper(params.temperature))
        if params.top_k:
            processors.append(TopKLogitsWarper(params.top_k))
        if params.top_p is not None and params.top_p < 1.0:
            processors.append(TopPLogitsWarper(params.top_p))
        if params.typical_p is not None and params.typical_p < 1.0:
            processors.append(TypicalLogitsWarper(params.typical_p))
    return processors


def decode(tokenizer: PreTrainedTokenizerBase, ids: list[int], *, skip_special: bool = False) -> str:
    """The text of `ids` (with or without the special tokens)."""
    return str(tokenizer.decode(ids, skip_special_tokens=skip_special))
