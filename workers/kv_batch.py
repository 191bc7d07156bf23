"""The running batch of the generation engine: its rows, KV cache and attention mask, and the cache surgery that
lets sequences join and leave it between decode steps."""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar, cast

import torch
import torch.nn.functional as F
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from workers.engine_io import GenerationFailed


class Row(Protocol):
    """What the batch needs of a row: whether its sequence is done (its row then leaves the batch)."""

    finished: bool


RowT = TypeVar("RowT", bound=Row)


class RunningBatch(Generic[RowT]):
    """The running batch: sequences, their KV cache [B, heads, L, dim], attention mask [B, L], next input ids."""

    def __init__(self, rows: list[RowT], cache: DynamicCache, mask: torch.Tensor, next_ids: torch.Tensor) -> None:
        self.rows = rows
        self.cache = cache
        self.mask = mask
        self.next_ids = next_ids

    def extend(self, other: RunningBatch[RowT]) -> None:
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
