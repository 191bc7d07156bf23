"""Usage metering: a usage listener (router/accounting.py) that aggregates in memory and flushes in the background.

    meter = Meter(UsageStore(), tokens=TokenStore())
    meter.install(app)           # listener + flush task, started and stopped with the app
    create_app(settings)         # does this itself when `settings.metering` is on (`Meter.from_settings`)

Per finished request the listener adds to two in-memory aggregates, with no I/O:
- per (principal owner id, UTC day, model): requests, errors (status >= 400), prompt and completion tokens,
  written to the usage table (chalicelib/usage/store.py) as batches of DynamoDB `ADD` updates, each batch applied
  exactly once (a conditional batch marker in the same transaction: a retried batch is never counted twice);
- per (model, route): the same counts and up to `MAX_LATENCY_SAMPLES` latencies, written as CloudWatch metrics in
  Powertools' embedded metric format (one EMF document per model and route per flush, namespace `LISA`, dimensions
  `model` and `route` only: never a user). Requests without a resolved model count under model `none`.

Per request made with an API token, the latest time it was used; a flush records it as the token's `lastUsedAt`
(`TokenStore.record_use`: one conditional UpdateItem per token) at most once per `LAST_USE_SECONDS` per token, so
the token list shows it up to a minute (plus a flush) late.

Every `flush_seconds` (default 5 s; `LISA_ROUTER_METERING_FLUSH_SECONDS`) the flush task takes the aggregates and
writes them on a thread of its own, off the event loop. A failed write keeps its batch (same id) for the next
flush; at most `MAX_PENDING_BATCHES` are kept (older ones are dropped, logged). On shutdown the app's cleanup
flushes what is left (waiting at most `SHUTDOWN_FLUSH_SECONDS`). What a crash loses: the requests of at most the
last `flush_seconds` (plus any batch whose write was still failing); never a double count.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

from chalicelib.auth.tokens import TokenStore
from chalicelib.usage.store import AggregateKey, Counts, UsageBatch, UsageStore, batches
from router.accounting import add_listener, logger

if TYPE_CHECKING:
    from aiohttp import web

    from router.accounting import RequestUsage
    from router.settings import RouterSettings

NAMESPACE = "LISA"
NO_MODEL = "none"
MAX_LATENCY_SAMPLES = 100  # EMF takes at most 100 values of one metric in one document
SHUTDOWN_FLUSH_SECONDS = 10.0  # within ECS's default 30 s stop timeout
MAX_PENDING_BATCHES = 1000  # about 99,000 aggregates kept while DynamoDB cannot be written
LAST_USE_SECONDS = 60.0  # a token's lastUsedAt is written at most this often (per router task)
_DAY_SECONDS = 86400


@dataclass
class RouteMetrics:
    """One (model, route)'s counts since the last flush, for EMF."""

    counts: Counts = field(default_factory=Counts)
    latencies_ms: list[float] = field(default_factory=list)


def emf_documents(metrics: dict[tuple[str, str], RouteMetrics]) -> list[dict[str, Any]]:
    """One EMF document per (model, route): Requests, Errors, PromptTokens, CompletionTokens, LatencyMs."""
    documents = []
    for (model, route), entry in sorted(metrics.items()):
        emf = AmazonCloudWatchEMFProvider(namespace=NAMESPACE)
        # No `service` dimension (POWERTOOLS_SERVICE_NAME would add one): model and route only.
        emf.service = None  # type: ignore[assignment]
        emf.add_dimension("model", model)
        emf.add_dimension("route", route)
        counts = entry.counts
        emf.add_metric("Requests", "Count", counts.requests)
        emf.add_metric("Errors", "Count", counts.errors)
        emf.add_metric("PromptTokens", "Count", counts.prompt_tokens)
        emf.add_metric("CompletionTokens", "Count", counts.completion_tokens)
        for latency in entry.latencies_ms:
            emf.add_metric("LatencyMs", "Milliseconds", latency)
        documents.append(dict(emf.serialize_metric_set()))
    return documents


def _stdout(line: str) -> None:
    """EMF's transport: a JSON line on stdout (the container's log driver ships it to CloudWatch Logs)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Meter:
    """The metering listener (module docstring). `clock`: wall-clock seconds, when batches are made (their markers'
    expiry) and when tokens' last uses are due; `emit`: where EMF lines go (stdout; each document is stamped with
    the time it is written); `tokens`: where last uses are recorded (None: not recorded)."""

    def __init__(
        self,
        store: UsageStore,
        *,
        tokens: TokenStore | None = None,
        flush_seconds: float = 5.0,
        emit: Callable[[str], None] = _stdout,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.tokens = tokens
        self.flush_seconds = flush_seconds
        self._emit = emit
        self._clock = clock
        self._usage: dict[AggregateKey, Counts] = {}
        self._metrics: dict[tuple[str, str], RouteMetrics] = {}
        self._pending: list[UsageBatch] = []
        self._days: dict[int, str] = {}
        self._uses: dict[str, float] = {}  # token id -> its latest use not yet recorded
        self._recorded: dict[str, float] = {}  # token id -> when its last use was recorded (within LAST_USE_SECONDS)
        self._lock = asyncio.Lock()
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="lisa-metering")

    # -- the listener (on the event loop, per request: no I/O) ------------------------------------------------------
    def __call__(self, usage: RequestUsage) -> None:
        """Add one finished request to the aggregates."""
        error = usage.is_error
        model = usage.model
        entry = self._metrics.get((model or NO_MODEL, usage.route))
        if entry is None:
            entry = self._metrics[(model or NO_MODEL, usage.route)] = RouteMetrics()
        _add(entry.counts, usage, error)
        if len(entry.latencies_ms) < MAX_LATENCY_SAMPLES:
            entry.latencies_ms.append(round(usage.latency * 1000, 3))
        principal = usage.principal
        if principal is None:
            return  # refused before authorization: nobody's usage
        token = principal.token_id
        if token is not None and usage.started > self._uses.get(token, 0.0):
            self._uses[token] = usage.started
        if model is None:
            return  # no model (a listing, an unknown model): no usage of a model
        key = (principal.owner_id, self._day(usage.started), model)
        counts = self._usage.get(key)
        if counts is None:
            counts = self._usage[key] = Counts()
        _add(counts, usage, error)

    def _day(self, started: float) -> str:
        index = int(started // _DAY_SECONDS)
        day = self._days.get(index)
        if day is None:
            if len(self._days) > 4:
                self._days.clear()
            day = self._days[index] = time.strftime("%Y-%m-%d", time.gmtime(index * _DAY_SECONDS))
        return day

    # -- flushing (off the event loop) -----------------------------------------------------------------------------
    async def flush(self) -> int:
        """Write what was aggregated so far (and retry earlier failed batches); returns the batches still pending."""
        async with self._lock:
            usage, self._usage = self._usage, {}
            metrics, self._metrics = self._metrics, {}
            self._pending.extend(batches(usage, self._clock()))
            if len(self._pending) > MAX_PENDING_BATCHES:
                dropped = self._pending[: len(self._pending) - MAX_PENDING_BATCHES]
                del self._pending[: len(dropped)]
                logger.error("usage batches dropped: the usage table cannot be written", batches=len(dropped))
            loop = asyncio.get_running_loop()
            self._pending = await loop.run_in_executor(self._writer, self._write, list(self._pending), metrics)
            await self._record_uses(loop, self._clock())
            return len(self._pending)

    async def _record_uses(self, loop: asyncio.AbstractEventLoop, now: float) -> None:
        """Record the last use of each token not recorded within LAST_USE_SECONDS; a failed one is kept."""
        if self.tokens is None:
            self._uses.clear()
            return
        for token in [t for t, at in self._recorded.items() if now - at >= LAST_USE_SECONDS]:
            del self._recorded[token]
        due = {token: used for token, used in self._uses.items() if token not in self._recorded}
        if not due:
            return
        for token in due:
            del self._uses[token]
        written = await loop.run_in_executor(self._writer, self._write_uses, self.tokens, due)
        for token, used in due.items():
            if token in written:
                self._recorded[token] = now
            elif used > self._uses.get(token, 0.0):  # not written: the next flush tries again
                self._uses[token] = used

    @staticmethod
    def _write_uses(tokens: TokenStore, due: dict[str, float]) -> set[str]:
        """On the writer thread: each token's last use; returns the tokens done (stops at the first failure)."""
        done: set[str] = set()
        for token, used in due.items():
            try:
                tokens.record_use(token, int(used))
            except Exception as error:  # botocore's errors: DynamoDB is likely down for the rest too
                logger.warning("token last use not recorded; retried at the next flush", error=str(error))
                break
            done.add(token)
        return done

    def _write(self, pending: list[UsageBatch], metrics: dict[tuple[str, str], RouteMetrics]) -> list[UsageBatch]:
        """On the writer thread: EMF lines, then each batch once; returns the batches that could not be written."""
        for document in emf_documents(metrics):
            self._emit(json.dumps(document, separators=(",", ":")))
        failed = []
        for index, batch in enumerate(pending):
            try:
                self.store.write(batch)
            except Exception as error:  # botocore's errors, a lost connection: keep it (same id) for the next flush
                logger.warning("usage batch not written; retried at the next flush", error=str(error))
                failed.extend(pending[index:])  # keep the order; DynamoDB is likely down for the rest too
                break
        return failed

    async def run(self) -> None:
        """Flush every `flush_seconds` until cancelled."""
        while True:
            await asyncio.sleep(self.flush_seconds)
            try:
                await self.flush()
            except Exception:
                logger.exception("usage flush failed")

    def install(self, app: web.Application) -> None:
        """Register the listener on a router app and run the flush task with it (a last flush at shutdown)."""
        add_listener(app, self)

        async def flushing(_: web.Application) -> AsyncIterator[None]:
            task = asyncio.create_task(self.run(), name="lisa-metering")
            yield
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            try:  # bounded: a container is killed soon after its stop signal, and DynamoDB may be unreachable
                await asyncio.wait_for(self.flush(), SHUTDOWN_FLUSH_SECONDS)
            except TimeoutError:
                logger.error("usage not flushed at shutdown: the usage table did not answer in time")
            self._writer.shutdown(wait=False)

        app.cleanup_ctx.append(flushing)

    @classmethod
    def from_settings(cls, settings: RouterSettings, clock: Callable[[], float] | None = None) -> Meter:
        """Metering into the configured usage and tokens tables, flushed as `settings` say (`create_app`)."""
        return cls(
            UsageStore(), tokens=TokenStore(), flush_seconds=settings.metering_flush_seconds, clock=clock or time.time
        )


def _add(counts: Counts, usage: RequestUsage, error: bool) -> None:
    counts.requests += 1
    counts.errors += error
    counts.prompt_tokens += usage.prompt_tokens
    counts.completion_tokens += usage.completion_tokens
