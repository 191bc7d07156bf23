"""The data plane's view of the registry: every model held in memory, reloaded at most once per TTL.

`resolve(name)` accepts a plain model name (`smollm2-135m-instruct`) or LISA's display form
(`smollm2-135m-instruct (ecs.textgen.tgi)`). A lookup within the TTL is one dict lookup on an immutable snapshot:
no lock, no I/O. When the snapshot has expired, one caller reloads it (others wait on the lock, then reuse the
new one). If the reload fails, the previous snapshot keeps serving and a reload is retried after
`retry_seconds`; only a process that never loaded raises. An unknown name triggers an early reload (unless the
snapshot is younger than `retry_seconds`), so a just-registered model is found without waiting for the TTL.
The resolver returns records whatever their status; callers check `record.is_available` before routing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from chalicelib.registry.errors import ModelNotFound
from chalicelib.registry.models import ModelRecord

if TYPE_CHECKING:
    from chalicelib.registry.store import ModelStore

logger = Logger(service="lisa-registry")

DEFAULT_RETRY_SECONDS = 1.0


@dataclass(frozen=True)
class _Snapshot:
    records: tuple[ModelRecord, ...]
    index: dict[str, ModelRecord]  # by model name and by `name (provider)`
    loaded_at: float
    expires_at: float
    names: tuple[str, ...] = field(default=())


def _snapshot(records: list[ModelRecord], now: float, ttl: float) -> _Snapshot:
    index: dict[str, ModelRecord] = {}
    for record in records:
        index[record.model_name] = record
        index[record.display_name] = record
    return _Snapshot(
        records=tuple(records),
        index=index,
        loaded_at=now,
        expires_at=now + ttl,
        names=tuple(sorted(r.model_name for r in records)),
    )


def _normalise(name: str) -> str:
    """`  name   (provider) ` → `name (provider)`; a plain name is just stripped."""
    name = name.strip()
    if name.endswith(")") and "(" in name:
        base, _, provider = name[:-1].rpartition("(")
        return f"{base.strip()} ({provider.strip()})"
    return name


class CachedRegistry:
    """Thread-safe TTL cache of the registry. `clock` (monotonic seconds) is injectable for tests."""

    def __init__(
        self,
        store: ModelStore | None = None,
        ttl_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        retry_seconds: float = DEFAULT_RETRY_SECONDS,
    ) -> None:
        if ttl_seconds is None:
            from chalicelib.settings import get_settings

            ttl_seconds = get_settings().registry_cache_ttl_seconds
        self.ttl_seconds = ttl_seconds
        self.retry_seconds = retry_seconds
        self._store = store
        self._clock = clock
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None
        self._retry_after = float("-inf")  # after a failed reload, none before this time

    @property
    def store(self) -> ModelStore:
        """The registry table, opened on first use."""
        if self._store is None:
            from chalicelib.registry.store import ModelStore  # boto3 only when the registry is first read

            self._store = ModelStore()
        return self._store

    # -- lookups ---------------------------------------------------------------------------------------------
    def resolve(self, name: str) -> ModelRecord:
        """The model called `name` or `name (provider)`; `ModelNotFound` naming the known models otherwise."""
        snapshot = self._current()
        record = snapshot.index.get(name)
        if record is not None:
            return record
        key = _normalise(name)
        record = snapshot.index.get(key)
        if record is None and self._clock() >= snapshot.loaded_at + self.retry_seconds:
            snapshot = self._reload(snapshot)  # maybe registered since the snapshot was taken
            record = snapshot.index.get(key)
        if record is None:
            raise ModelNotFound(name, snapshot.names)
        return record

    def list_models(self) -> list[ModelRecord]:
        """Every registered model, by name (whatever its status)."""
        return list(self._current().records)

    def invalidate(self) -> None:
        """Forget the snapshot: the next lookup reloads (after this process changed the registry)."""
        with self._lock:
            self._snapshot = None
            self._retry_after = float("-inf")

    # -- loading ---------------------------------------------------------------------------------------------
    def _current(self) -> _Snapshot:
        snapshot = self._snapshot
        if snapshot is not None and self._clock() < snapshot.expires_at:
            return snapshot
        return self._reload(snapshot)

    def _reload(self, seen: _Snapshot | None) -> _Snapshot:
        with self._lock:
            current = self._snapshot
            if current is not seen and current is not None:
                return current  # another thread reloaded while this one waited
            now = self._clock()
            if seen is not None and now < self._retry_after:
                return seen  # a reload just failed: keep serving what we have
            try:
                records = self.store.list()
            except Exception:
                if seen is None:
                    raise
                logger.exception("registry reload failed; serving the previous snapshot", age=now - seen.loaded_at)
                self._retry_after = now + self.retry_seconds
                return seen
            self._snapshot = _snapshot(records, now, self.ttl_seconds)
            self._retry_after = float("-inf")
            return self._snapshot


_registry: CachedRegistry | None = None
_registry_lock = threading.Lock()


def get_registry() -> CachedRegistry:
    """The process-wide registry cache (created on first use with the settings' TTL)."""
    global _registry
    registry = _registry
    if registry is None:
        with _registry_lock:
            if _registry is None:
                _registry = CachedRegistry()
            registry = _registry
    return registry


def reset_registry() -> None:
    """Drop the process-wide cache (after the environment changed, e.g. in tests)."""
    global _registry
    with _registry_lock:
        _registry = None
