"""Sentence embeddings on CPU the way sentence-transformers computes them, with cross-request batching.

`EmbeddingModel` reads a sentence-transformers folder (modules.json, sentence_bert_config.json, the Pooling
config, prompts) and pools the transformer's last hidden state exactly as sentence-transformers does (mean over
the attention mask, CLS, max or last token). `EmbeddingBatcher` runs one background thread that packs the
inputs of concurrent requests into shared forward passes under a token budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from aws_lambda_powertools import Logger
from transformers import AutoModel, AutoTokenizer

from workers.common import bounded_part, too_long


class InputTooLong(ValueError):
    """An input exceeds the model's maximum length and truncation was not requested."""

    def __init__(self, limit: int, given: int | None) -> None:
        super().__init__(too_long(limit, given))
        self.limit = limit
        self.given = given


@dataclass(frozen=True)
class Encoded:
    """Token ids of one input; pooling ignores the first `pool_from` positions (an instruction prefix)."""

    ids: list[int]
    pool_from: int = 0


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class EmbeddingModel:
    """A transformer encoder plus the sentence-transformers pooling recipe found beside it."""

    def __init__(self, model_dir: Path, *, dtype: str = "float32") -> None:
        self.model_dir = Path(model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self.model = AutoModel.from_pretrained(self.model_dir, dtype=getattr(torch, dtype)).eval()
        self.dtype = dtype
        modules = json.loads((self.model_dir / "modules.json").read_text()) if self._has("modules.json") else []
        pooling_path = next(
            (m.get("path", "") for m in modules if str(m.get("type", "")).endswith("Pooling")), "1_Pooling"
        )
        pooling = _read_json(self.model_dir / pooling_path / "config.json")
        self.pooling = _pooling_mode(pooling)
        self.include_prompt = bool(pooling.get("include_prompt", True))
        self.normalizes = any(str(m.get("type", "")).endswith("Normalize") for m in modules)
        self.prompts: dict[str, str] = _read_json(self.model_dir / "config_sentence_transformers.json").get(
            "prompts", {}
        )
        positions = int(getattr(self.model.config, "max_position_embeddings", 512))
        max_seq = _read_json(self.model_dir / "sentence_bert_config.json").get("max_seq_length")
        self.max_input_length = min(int(max_seq), positions) if max_seq else positions
        self.dimensions = int(pooling.get("word_embedding_dimension") or self.model.config.hidden_size)
        self.pad_token_id = int(self.tokenizer.pad_token_id or 0)
        self.uses_token_types = "token_type_ids" in self.tokenizer.model_input_names

    def _has(self, name: str) -> bool:
        return (self.model_dir / name).is_file()

    def encode(
        self, texts: list[str], *, truncate: bool, direction: str = "right", prefix: str = "", pool_prefix: bool = True
    ) -> list[Encoded]:
        """Tokenize `prefix + text` for each text; with `pool_prefix` False pooling skips [CLS] + the prefix.

        Only the part of a long text that decides its tokens is tokenized (`bounded_part`): the head or tail that
        truncation keeps, or, without truncation, enough to refuse it. Call it on one thread (`off_loop`): it sets
        the tokenizer's truncation side."""
        limit = self.max_input_length
        keep: Literal["head", "tail"] = "tail" if direction == "left" else "head"
        joined = []
        for text in texts:
            whole = _join(prefix, text)
            part = bounded_part(whole, limit, self._count, keep)
            if part is not whole and not truncate:
                raise InputTooLong(limit, None)
            joined.append(part)
        self.tokenizer.truncation_side = "left" if direction == "left" else "right"
        batch = self.tokenizer(joined, truncation=truncate, max_length=self.max_input_length if truncate else None)
        pool_from = 0
        if prefix and not pool_prefix:
            pool_from = len(self.tokenizer(prefix.rstrip(), add_special_tokens=True)["input_ids"]) - 1
        encoded = []
        for ids in batch["input_ids"]:
            if len(ids) > self.max_input_length:
                raise InputTooLong(self.max_input_length, len(ids))
            encoded.append(Encoded(list(ids), min(pool_from, len(ids) - 1)))
        return encoded

    def _count(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    @torch.inference_mode()
    def embed(self, items: list[Encoded]) -> torch.Tensor:
        """Pooled (not normalized) embeddings, one row per item, in float32."""
        longest = max(len(item.ids) for item in items)
        ids = torch.full((len(items), longest), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(items), longest), dtype=torch.long)
        for row, item in enumerate(items):
            ids[row, : len(item.ids)] = torch.tensor(item.ids)
            mask[row, : len(item.ids)] = 1
        inputs: dict[str, torch.Tensor] = {"input_ids": ids, "attention_mask": mask}
        if self.uses_token_types:
            inputs["token_type_ids"] = torch.zeros_like(ids)
        hidden = self.model(**inputs).last_hidden_state.float()
        pool_mask = mask.clone()
        for row, item in enumerate(items):
            pool_mask[row, : item.pool_from] = 0
        return _pool(self.pooling, hidden, pool_mask)


def _join(prefix: str, text: str) -> str:
    if not prefix:
        return text
    return prefix + text if prefix[-1].isspace() else f"{prefix} {text}"


def _pooling_mode(config: dict[str, Any]) -> str:
    if config.get("pooling_mode_cls_token"):
        return "cls"
    if config.get("pooling_mode_max_tokens"):
        return "max"
    if config.get("pooling_mode_lasttoken"):
        return "lasttoken"
    return "mean"


def _pool(mode: str, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """sentence-transformers' Pooling module, for the modes TEI supports."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    if mode == "cls":
        return hidden[:, 0]
    if mode == "max":
        return hidden.masked_fill(weights == 0, -1e9).max(dim=1).values
    if mode == "lasttoken":
        last = mask.sum(dim=1) - 1
        return hidden[torch.arange(hidden.shape[0]), last.clamp(min=0)]
    summed = (hidden * weights).sum(dim=1)
    counts = weights.sum(dim=1).clamp(min=1e-9)
    return summed / counts


@dataclass
class _Call:
    """One request's inputs waiting for the batcher; results arrive in order of `items`."""

    items: list[Encoded]
    normalize: bool
    future: asyncio.Future[list[list[float]]]
    loop: asyncio.AbstractEventLoop
    results: list[list[float] | None] = field(default_factory=list)
    remaining: int = 0
    cancelled: bool = False


@dataclass
class BatcherStats:
    """Counters exposed on /metrics."""

    requests: int = 0
    inputs: int = 0
    batches: int = 0
    tokens: int = 0
    failures: int = 0


class EmbeddingBatcher:
    """Packs inputs from concurrent calls into shared forward passes (at most `max_batch_tokens` padded tokens)."""

    def __init__(
        self,
        model: EmbeddingModel,
        *,
        logger: Logger,
        max_batch_tokens: int = 16384,
        max_batch_requests: int | None = None,
    ) -> None:
        self.model = model
        self.logger = logger
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_requests = max_batch_requests
        self.stats = BatcherStats()
        self._pending: deque[tuple[_Call, int]] = deque()
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Warm the kernels up, then start the batching thread."""
        self.model.embed([Encoded([self.model.pad_token_id] * 4)])  # warm up the kernels
        self._thread = threading.Thread(target=self._run, name="embedding-batcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the batching thread (work still queued is dropped)."""
        self._stopping.set()
        with self._cond:
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=10)

    @property
    def alive(self) -> bool:
        """Whether the batching thread runs (/health)."""
        return self._thread is not None and self._thread.is_alive()

    async def embed(self, items: list[Encoded], *, normalize: bool) -> list[list[float]]:
        """Embeddings for `items` (in order); cancelling the awaiting task drops the work not yet done."""
        loop = asyncio.get_running_loop()
        call = _Call(items, normalize, loop.create_future(), loop, [None] * len(items), len(items))
        with self._cond:
            self._pending.extend((call, index) for index in range(len(items)))
            self.stats.requests += 1
            self.stats.inputs += len(items)
            self._cond.notify()
        try:
            return await call.future
        finally:
            call.cancelled = True

    def _run(self) -> None:
        while not self._stopping.is_set():
            batch = self._take()
            if not batch:
                continue
            try:
                vectors = self.model.embed([call.items[index] for call, index in batch])
            except Exception as error:
                self.logger.exception("embedding batch failed")
                self.stats.failures += 1
                for call in {id(c): c for c, _ in batch}.values():
                    self._settle(call, error)
                continue
            self.stats.batches += 1
            for row, (call, index) in enumerate(batch):
                vector = F.normalize(vectors[row], p=2, dim=0) if call.normalize else vectors[row]
                call.results[index] = vector.tolist()
                call.remaining -= 1
                if call.remaining == 0:
                    self._settle(call, None)

    def _take(self) -> list[tuple[_Call, int]]:
        with self._cond:
            if not self._pending:
                self._cond.wait(timeout=0.5)
            batch: list[tuple[_Call, int]] = []
            longest = 0
            while self._pending:
                call, index = self._pending[0]
                if call.cancelled:
                    self._pending.popleft()
                    continue
                length = max(longest, len(call.items[index].ids))
                full = self.max_batch_requests is not None and len(batch) >= self.max_batch_requests
                if batch and (full or length * (len(batch) + 1) > self.max_batch_tokens):
                    break
                self._pending.popleft()
                batch.append((call, index))
                longest = length
            self.stats.tokens += longest * len(batch)
            return batch

    @staticmethod
    def _settle(call: _Call, error: BaseException | None) -> None:
        def resolve() -> None:
            if call.future.done():
                return
            if error is not None:
                call.future.set_exception(error)
            else:
                call.future.set_result([r for r in call.results if r is not None])

        with contextlib.suppress(RuntimeError):  # the event loop is gone
            call.loop.call_soon_threadsafe(resolve)
