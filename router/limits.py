"""Rate limits and token budgets in the router: admission before a backend is called, settlement when it is over.

Every router task shares each limit through a DynamoDB counter per window (`chalicelib.limits.store.CounterStore`):
a task leases a slice of the window's quota with a conditional update and serves requests from its lease in memory,
so the common case makes no round trip. The counter never grants more than the limit, so all tasks together never
admit more than it; what a task leased and did not use by the window's end is lost. The counters outlive the task:
a restarted router leases from where the window stands.

A request must pass every rule that applies to its caller (`chalicelib.limits.policy.rules`). Requests count 1;
tokens are reserved before the call (an estimate: the body's size / 4 for the prompt, plus `max_tokens` or the
configured completion estimate) and settled after it with what the backend reported (prompt + completion, streams
included). While a window has tokens left a request is admitted (its reservation capped at what is left); beyond
that it is refused until the window ends. A request that produced more than it reserved leaves this task in debt,
which its next lease repays first (a crash forgets that debt: the overshoot is then at most one request's excess).

Over a limit: 429 in the OpenAI error shape, with `Retry-After` and OpenAI's `x-ratelimit-*` headers. An admitted
request's answer carries the same `x-ratelimit-*` headers, from this task's lease state (no round trip: `remaining`
is what the counter had left at this task's last lease plus its own unused lease). The counters cannot be reached:
503. Time comes from an injectable clock.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aws_lambda_powertools import Logger

from chalicelib.config import ModelType
from chalicelib.contracts.limits import Kind, LimitOverride, LimitsConfig, Scope
from chalicelib.limits.policy import Caller, Rule, expiry, rules, window
from chalicelib.serve.errors import RATE_LIMIT, ServeError
from router.accounting import RequestUsage, usage_of

if TYPE_CHECKING:
    from chalicelib.limits.store import CounterStore, OverrideStore
    from chalicelib.registry.models import ModelRecord

logger = Logger(service="lisa-router")

Clock = Callable[[], float]
_REFILLS = 6  # leases one admission may wait for before it is refused (only under heavy contention)
_FAST_RENEWAL = 5.0  # a lease used up faster than this (seconds) doubles the next slice; slower halves it
_PREFETCH = 4  # refill in the background once a lease is down to 1/_PREFETCH of its slice


@dataclass(slots=True)
class Lease:
    """This task's share of one counter in one window. `local` is leased and not yet used (negative: a debt);
    `total` the counter's total (all tasks) as of this task's last lease; `full` once the counter is at its limit."""

    rule: Rule
    key: str
    start: int
    end: int
    slice: int
    local: int = 0
    total: int = 0
    full: bool = False
    renewed: float = 0.0
    waiting: int = 0  # what admissions waiting for the next lease want, together
    stalls: int = 0  # leases in a row that granted nothing although the counter was not full (contention)
    pending: asyncio.Task[None] | None = None

    def remaining(self) -> int:
        """About how much of the window's limit is left: unleased plus this task's own unused lease."""
        return max(0, self.rule.limit - self.total) + max(0, self.local)


@dataclass(slots=True)
class _Bound:
    """A caller's rules until `expires`, each with its lease in the window it was last used in (the hot path
    finds them by position, without building a counter key)."""

    expires: float
    rules: tuple[Rule, ...]
    leases: list[Lease | None]


@dataclass(slots=True)
class Admission:
    """What an admitted request holds: per token lease, the tokens it reserved; the leases of all its rules."""

    reserved: list[tuple[Lease, int]] = field(default_factory=list)
    leases: list[Lease] = field(default_factory=list)


def _first_slice(limit: int) -> int:
    return max(1, limit // 100)


def _max_slice(limit: int) -> int:
    return max(1, limit // 8)


class Limiter:
    """Admission and settlement against the shared counters (module docstring)."""

    def __init__(
        self,
        defaults: LimitsConfig,
        overrides: OverrideStore,
        counters: CounterStore,
        *,
        clock: Clock = time.time,
        cache_seconds: float = 30.0,
    ) -> None:
        self.defaults = defaults
        self._overrides = overrides
        self._counters = counters
        self.clock = clock
        self._cache_seconds = cache_seconds
        self._bound: dict[Caller, _Bound] = {}
        self._resolving: dict[Caller, asyncio.Task[_Bound]] = {}
        self._leases: dict[str, Lease] = {}
        self._sweep_at = 0.0

    # -- which rules ---------------------------------------------------------------------------------------------
    async def _bound_of(self, caller: Caller) -> _Bound:
        """The rules binding `caller`, cached for `cache_seconds` (an admin's override shows within that)."""
        pending = self._resolving.get(caller)
        if pending is None:
            pending = asyncio.get_running_loop().create_task(self._resolve(caller))
            self._resolving[caller] = pending
            pending.add_done_callback(lambda _: self._resolving.pop(caller, None))
        return await asyncio.shield(pending)

    async def _resolve(self, caller: Caller) -> _Bound:
        try:
            found: Mapping[tuple[Scope, str], LimitOverride] = await asyncio.get_running_loop().run_in_executor(
                None, self._overrides.overrides, caller.principals()
            )
        except Exception:
            logger.exception("limit overrides cannot be read")
            raise _unavailable() from None
        resolved = rules(caller, self.defaults, found)
        bound = self._bound[caller] = _Bound(self.clock() + self._cache_seconds, resolved, [None] * len(resolved))
        return bound

    # -- admission -----------------------------------------------------------------------------------------------
    async def admit(self, caller: Caller, estimate: int) -> Admission | None:
        """Admit one request of about `estimate` tokens, or raise the 429 of the first limit it is over (503 when
        the counters cannot be reached). None: no limit applies to the caller."""
        now = self.clock()
        bound = self._bound.get(caller)
        if bound is None or bound.expires <= now:
            bound = await self._bound_of(caller)
        if not bound.rules:
            return None
        tokens = max(1, estimate)
        leases = bound.leases
        taken: list[tuple[Lease, int]] = []
        reserved: list[tuple[Lease, int]] = []
        try:
            for index, rule in enumerate(bound.rules):
                lease = leases[index]
                if lease is None or not lease.start <= now < lease.end:
                    lease = leases[index] = self._lease(rule, now)
                requests = rule.kind is Kind.REQUESTS_PER_MINUTE
                wanted = 1 if requests else tokens
                got = self._take(lease, wanted) or await self._take_waiting(lease, wanted)
                if not got:
                    raise refusal(rule, [self._lease(r, now) for r in bound.rules], now)
                taken.append((lease, got))
                if not requests:
                    reserved.append((lease, got))
        except BaseException:
            for lease, got in taken:  # refused (or failed): give back what this request took
                lease.local += got
            raise
        return Admission(reserved, [lease for lease, _ in taken])

    def settle(self, admission: Admission, tokens: int) -> None:
        """Charge a finished request's actual tokens: the unused part of its reservation goes back to the leases,
        an excess is this task's debt."""
        for lease, reserved in admission.reserved:
            lease.local += reserved - tokens

    def _lease(self, rule: Rule, now: float) -> Lease:
        start, end = window(rule.kind, now)
        key = rule.counter_key(start)
        lease = self._leases.get(key)
        if lease is None:
            if now >= self._sweep_at:
                self._sweep(now)
            lease = self._leases[key] = Lease(rule, key, start, end, _first_slice(rule.limit))
        elif lease.rule.limit != rule.limit:  # an override changed the limit within the window
            lease.rule = rule
            lease.full = lease.total >= rule.limit
        return lease

    def _sweep(self, now: float) -> None:
        for key in [key for key, lease in self._leases.items() if lease.end <= now]:
            del self._leases[key]
        for caller in [caller for caller, bound in self._bound.items() if bound.expires <= now]:
            del self._bound[caller]
        self._sweep_at = now + 60

    def _take(self, lease: Lease, wanted: int) -> int:
        """Take `wanted` from the local lease without waiting: what was taken (0: a refill is needed first)."""
        if lease.local >= wanted:
            lease.local -= wanted
            if lease.local * _PREFETCH < lease.slice and not lease.full and lease.pending is None:
                self._refill(lease, 0)  # in the background: the next requests need not wait for it
            return wanted
        if lease.full and lease.local > 0 and lease.rule.kind is not Kind.REQUESTS_PER_MINUTE:
            got, lease.local = lease.local, 0  # the window's last tokens: admit, reserving what is left
            return got
        return 0

    async def _take_waiting(self, lease: Lease, wanted: int) -> int:
        """Wait for leases until `wanted` can be taken or the counter is full."""
        lease.waiting += wanted
        try:
            while not lease.full and lease.stalls < _REFILLS:
                await asyncio.shield(self._refill(lease, wanted - lease.local))
                got = self._take(lease, wanted)
                if got:
                    return got
        finally:
            lease.waiting -= wanted
        return self._take(lease, wanted)

    def _refill(self, lease: Lease, need: int) -> asyncio.Task[None]:
        if lease.pending is None:
            lease.pending = asyncio.get_running_loop().create_task(self._renew(lease, need))
            lease.pending.add_done_callback(_retrieved)  # a background refill's failure is logged in _renew
        return lease.pending

    async def _renew(self, lease: Lease, need: int) -> None:
        """One lease from the counter: at least `need` (and any debt), else the slice, which adapts to demand."""
        now = self.clock()
        if lease.renewed:
            fast = now - lease.renewed < _FAST_RENEWAL
            lease.slice = min(lease.slice * 2, _max_slice(lease.rule.limit)) if fast else max(1, lease.slice // 2)
        want = max(need, lease.slice, lease.waiting - lease.local)
        loop = asyncio.get_running_loop()
        expires = expiry(lease.end)
        try:
            granted, total = await loop.run_in_executor(
                None, self._counters.lease, lease.key, lease.rule.limit, want, expires
            )
        except Exception:
            logger.exception("limit counter cannot be leased", counter=lease.key)
            raise _unavailable() from None
        finally:
            lease.pending = None
        lease.local += granted
        lease.stalls = 0 if granted else lease.stalls + 1
        lease.total = max(lease.total, total)
        lease.full = lease.total >= lease.rule.limit
        lease.renewed = now


def _retrieved(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()


def _unavailable() -> ServeError:
    return ServeError(503, "rate limits cannot be checked now; retry shortly", code="limits_unavailable")


_WHAT = {
    Kind.REQUESTS_PER_MINUTE: ("requests", "minute"),
    Kind.TOKENS_PER_MINUTE: ("tokens", "minute"),
    Kind.TOKENS_PER_DAY: ("tokens", "day (UTC)"),
    Kind.TOKENS_PER_MONTH: ("tokens", "month (UTC)"),
}


def refusal(rule: Rule, leases: list[Lease], now: float) -> ServeError:
    """The 429 for a request over `rule`: OpenAI's error object, `Retry-After` and the `x-ratelimit-*` headers of
    the binding request and token limits among `leases` (the caller's)."""
    what, per = _WHAT[rule.kind]
    retry = max(1, math.ceil(window(rule.kind, now)[1] - now))
    headers = {"Retry-After": str(retry), **rate_headers(leases, now, rule)}
    message = (
        f"rate limit reached for {rule.scope.value} {rule.principal_id!r}: {rule.limit} {what} per {per}; "
        f"retry in {retry} s"
    )
    return ServeError(429, message, code="rate_limit_exceeded", type=RATE_LIMIT, headers=headers)


_HEADER_KINDS = (("requests", (Kind.REQUESTS_PER_MINUTE,)), ("tokens", tuple(Kind)[1:]))


def rate_headers(leases: list[Lease], now: float, refused: Rule | None = None) -> dict[str, str]:
    """OpenAI's `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` of the binding request and token limits
    among `leases` (a caller's): the `refused` rule (remaining 0), else the one with the least left."""
    headers = {}
    for name, kinds in _HEADER_KINDS:
        mine = [lease for lease in leases if lease.rule.kind in kinds]
        if not mine:
            continue
        binding = next((lease for lease in mine if lease.rule == refused), None) or min(mine, key=Lease.remaining)
        headers[f"x-ratelimit-limit-{name}"] = str(binding.rule.limit)
        headers[f"x-ratelimit-remaining-{name}"] = str(0 if binding.rule == refused else binding.remaining())
        headers[f"x-ratelimit-reset-{name}"] = duration(binding.end - now)
    return headers


def duration(seconds: float) -> str:
    """A reset time as OpenAI writes it: `20ms`, `1s`, `6m0s`, `2h3m4s`."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    whole = math.ceil(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def estimate(body: Mapping[str, Any] | None, size: int, completion_default: int, embedding: bool) -> int:
    """A request's tokens before it runs: its prompt (the body's bytes / 4) plus the completion it may produce."""
    prompt = size // 4 + 1
    if embedding:
        return prompt
    body = body or {}
    parameters = body.get("parameters")
    candidates = [body.get("max_tokens"), body.get("max_completion_tokens")]
    if isinstance(parameters, Mapping):
        candidates.append(parameters.get("max_new_tokens"))
    asked = next((c for c in candidates if isinstance(c, int) and not isinstance(c, bool) and c > 0), None)
    return prompt + (asked if asked is not None else completion_default)


BODY_KEY: web.RequestKey[dict[str, Any]] = web.RequestKey("lisa_limits_body", dict)
"""The request's parsed JSON body (`Services.body` notes it), for the token estimate."""
ADMISSION_KEY: web.RequestKey[Admission] = web.RequestKey("lisa_limits_admission", Admission)


class RouterLimits:
    """The router's hooks: `admit` before a backend is called (`Services.model`), `settle` as the accounting
    listener that sees each finished request (router/accounting.py) with the tokens it produced, `add_headers` on
    the app's `on_response_prepare` (an admitted request's answer, streams included, gets its limits' headers)."""

    def __init__(self, limiter: Limiter, completion_estimate: int) -> None:
        self.limiter = limiter
        self._completion_estimate = completion_estimate
        self._open: dict[int, Admission] = {}  # by id() of the request's RequestUsage, until it is published

    @classmethod
    def from_settings(cls, completion_estimate: int, clock: Clock | None = None) -> RouterLimits:
        """Limits as the environment configures them (`chalicelib.settings`: defaults, tables, cache lifetime)."""
        from chalicelib.limits.store import CounterStore, OverrideStore
        from chalicelib.settings import get_settings

        settings = get_settings()
        limiter = Limiter(
            settings.limits,
            OverrideStore(),
            CounterStore(),
            clock=clock or time.time,
            cache_seconds=settings.auth_cache_ttl_seconds,
        )
        return cls(limiter, completion_estimate)

    async def admit(self, request: web.Request, record: ModelRecord) -> None:
        """Admit the request to `record`'s backend or raise its 429 (the caller is the request's authorized one)."""
        usage = usage_of(request)
        principal = usage.principal
        if principal is None:
            return
        caller = Caller(principal.token_id, principal.username, principal.groups)
        embedding = record.model_type is ModelType.EMBEDDING
        tokens = estimate(request.get(BODY_KEY), request.content_length or 0, self._completion_estimate, embedding)
        admission = await self.limiter.admit(caller, tokens)
        if admission is not None:
            request[ADMISSION_KEY] = admission
            if admission.reserved:
                self._open[id(usage)] = admission

    async def add_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        """The `x-ratelimit-*` headers of an admitted request's limits on its answer, as its headers are sent."""
        admission = request.get(ADMISSION_KEY)
        if admission is not None:
            response.headers.update(rate_headers(admission.leases, self.limiter.clock()))

    def settle(self, usage: RequestUsage) -> None:
        """The accounting listener: charge the request's actual prompt + completion tokens."""
        admission = self._open.pop(id(usage), None)
        if admission is not None:
            self.limiter.settle(admission, usage.prompt_tokens + usage.completion_tokens)
