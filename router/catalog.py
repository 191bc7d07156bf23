"""The registry on the event loop: lookups from an in-memory index, refreshes on a worker thread.

`resolve(name)` answers from the index built from the registry's last listing (by model name and by
`name (provider)`): no I/O. When the index is older than the registry TTL it keeps serving while one background
refresh runs (stale-while-revalidate), so no request waits for DynamoDB after the first. A name the index does not
know goes to the registry's own `resolve` on a thread (it normalises spacing and reloads early for just-registered
models) and a 404 names the models that exist.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from chalicelib.registry.errors import ModelNotFound
from chalicelib.serve.errors import ServeError

if TYPE_CHECKING:
    from chalicelib.registry.models import ModelRecord
    from chalicelib.registry.resolver import CachedRegistry

MAX_NAMES_IN_ERRORS = 20


class ModelCatalog:
    """Async, non-blocking model lookups over a `CachedRegistry` (the process-wide one unless given)."""

    def __init__(self, registry: CachedRegistry | None = None, ttl_seconds: float | None = None) -> None:
        self._fixed = registry
        self._ttl = ttl_seconds
        self._index: dict[str, ModelRecord] = {}
        self._records: tuple[ModelRecord, ...] = ()
        self._loaded_at = float("-inf")
        self._refreshing: asyncio.Task[None] | None = None

    @property
    def registry(self) -> CachedRegistry:
        """The model registry (cached reads)."""
        if self._fixed is not None:
            return self._fixed
        from chalicelib.registry.resolver import get_registry

        return get_registry()

    @property
    def ttl(self) -> float:
        """Seconds a catalog snapshot is reused."""
        return self._ttl if self._ttl is not None else self.registry.ttl_seconds

    async def resolve(self, name: str, param: str = "model") -> ModelRecord:
        """The record for `name` or `name (provider)`; ServeError 404 (naming `param`, known models) otherwise."""
        record = self._index.get(name)
        if record is not None:
            self._maybe_refresh()
            return record
        try:
            record = await asyncio.get_running_loop().run_in_executor(None, self.registry.resolve, name)
        except ModelNotFound as error:
            known = error.known if error.known is not None else [r.model_name for r in self._records]
            shown = ", ".join(known[:MAX_NAMES_IN_ERRORS]) + (", ..." if len(known) > MAX_NAMES_IN_ERRORS else "")
            raise ServeError(
                404,
                f"model {name!r} does not exist; available models: {shown or 'none'}",
                param=param,
                code="model_not_found",
            ) from None
        except Exception as error:
            raise registry_unavailable(error) from None
        await self.refresh()
        self._index.setdefault(name, record)
        return record

    async def records(self) -> tuple[ModelRecord, ...]:
        """Every registered model (any status), refreshed first if the index is stale."""
        if time.monotonic() - self._loaded_at >= self.ttl:
            await self.refresh()
        return self._records

    async def refresh(self) -> None:
        """Reload the index from the registry (on a worker thread; concurrent callers share one reload)."""
        task = self._refreshing
        if task is None or task.done():
            task = self._refreshing = asyncio.ensure_future(self._reload())
        try:
            await asyncio.shield(task)
        except Exception as error:
            raise registry_unavailable(error) from None

    async def reload(self, name: str) -> ModelRecord | None:
        """`name`'s record as the registry has it now (its cache skipped: after a backend connection failed), or
        None if it is gone or the registry cannot be read (the caller keeps its own error then)."""
        self.registry.invalidate()
        try:
            await self.refresh()
        except ServeError:
            return None
        return self._index.get(name)

    def _maybe_refresh(self) -> None:
        if time.monotonic() - self._loaded_at >= self.ttl and (self._refreshing is None or self._refreshing.done()):
            self._refreshing = asyncio.ensure_future(self._reload())
            self._refreshing.add_done_callback(_consume)

    async def _reload(self) -> None:
        records = await asyncio.get_running_loop().run_in_executor(None, self.registry.list_models)
        index: dict[str, ModelRecord] = {}
        for record in records:
            index[record.model_name] = record
            index[record.display_name] = record
        self._index, self._records, self._loaded_at = index, tuple(records), time.monotonic()


def registry_unavailable(error: Exception) -> ServeError:
    """503: the registry could not be read (and nothing was loaded before)."""
    return ServeError(
        503,
        f"the model registry cannot be read right now ({type(error).__name__}); retry later",
        code="registry_unavailable",
    )


def _consume(task: asyncio.Task[None]) -> None:
    """A background refresh that failed is retried on a later request (the registry logs why)."""
    if not task.cancelled():
        task.exception()
