"""The limiter's core against moto's DynamoDB, without the router: which rules bind a caller, the UTC windows, and the
lease algorithm (exact admission under concurrency, several tasks sharing one counter, restarts, token budgets).

Time is a settable clock: a window passes by moving it, never by sleeping.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from chalicelib.config import ConfigError, parse_config
from chalicelib.contracts.limits import Kind, LimitOverride, Limits, LimitsConfig, Scope
from chalicelib.limits.policy import Caller, Rule, rules, window
from chalicelib.limits.store import CounterStore, OverrideStore
from chalicelib.serve.errors import ServeError
from router.limits import Admission, Limiter, duration, estimate

MINUTE_START = 1_800_000_000 - 1_800_000_000 % 60  # a minute boundary


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def config(**scopes: dict[str, int | None]) -> LimitsConfig:
    return LimitsConfig.model_validate(scopes)


def limiter(defaults: LimitsConfig, clock: Clock) -> Limiter:
    return Limiter(defaults, OverrideStore(), CounterStore(), clock=clock, cache_seconds=30)


ALICE = Caller("tok-alice", "alice", ("users", "research"))


@pytest.fixture
def tables(moto_server: str) -> str:
    """LISA's tables in the session's moto (not reset: every test counts for principals and windows of its own)."""
    return moto_server


# -- policy ------------------------------------------------------------------------------------------------------
def test_every_scope_applies_and_the_most_permissive_group_counts() -> None:
    defaults = config(token={"requestsPerMinute": 10}, user={"requestsPerMinute": 50}, group={"requestsPerMinute": 100})
    overrides = {
        (Scope.GROUP, "research"): LimitOverride(requests_per_minute=300),
        (Scope.USER, "alice"): LimitOverride(tokens_per_day=1000),
    }
    bound = rules(ALICE, defaults, overrides)
    assert Rule(Kind.REQUESTS_PER_MINUTE, Scope.TOKEN, "tok-alice", 10) in bound
    assert Rule(Kind.REQUESTS_PER_MINUTE, Scope.USER, "alice", 50) in bound
    assert Rule(Kind.REQUESTS_PER_MINUTE, Scope.GROUP, "research", 300) in bound  # research beats users' 100
    assert Rule(Kind.TOKENS_PER_DAY, Scope.USER, "alice", 1000) in bound
    assert len(bound) == 4
    # A group whose override lifts the limit lifts the group rule for its members; the others still bind.
    lifted = {**overrides, (Scope.GROUP, "users"): LimitOverride(requests_per_minute=None)}
    assert [r.scope for r in rules(ALICE, defaults, lifted) if r.kind is Kind.REQUESTS_PER_MINUTE] == [
        Scope.TOKEN,
        Scope.USER,
    ]
    # An OIDC caller has no token rule; a user in no group has no group rule.
    assert [r.scope for r in rules(Caller(None, "bob", ()), defaults, {})] == [Scope.USER]


def test_windows_are_utc_minutes_days_and_calendar_months() -> None:
    moment = datetime(2026, 2, 14, 13, 45, 30, tzinfo=UTC).timestamp()
    assert window(Kind.REQUESTS_PER_MINUTE, moment) == (int(moment) - 30, int(moment) + 30)
    day = int(datetime(2026, 2, 14, tzinfo=UTC).timestamp())
    assert window(Kind.TOKENS_PER_DAY, moment) == (day, day + 86_400)
    february = int(datetime(2026, 2, 1, tzinfo=UTC).timestamp())
    assert window(Kind.TOKENS_PER_MONTH, moment) == (february, int(datetime(2026, 3, 1, tzinfo=UTC).timestamp()))
    assert [duration(s) for s in (0.02, 1, 59.2, 360, 7384)] == ["20ms", "1s", "1m0s", "6m0s", "2h3m4s"]


def test_config_limits_name_the_bad_key() -> None:
    base = {"deploymentName": "lisa", "s3BucketModels": "lisa-models"}
    assert parse_config({**base, "limits": {"user": {"tokensPerDay": 5}}}).limits.user == Limits(tokens_per_day=5)
    with pytest.raises(ConfigError) as bad:
        parse_config({**base, "limits": {"user": {"requestsPerMinut": 3}, "group": {"tokensPerDay": 0}}})
    assert "limits.user.requestsPerMinut: Extra inputs are not permitted" in str(bad.value)
    assert "limits.group.tokensPerDay: Input should be greater than or equal to 1" in str(bad.value)
    with pytest.raises(ConfigError, match=r"limits\.team"):
        parse_config({**base, "limits": {"team": {}}})


def test_estimate_reads_the_completion_bound() -> None:
    assert estimate({"max_tokens": 50}, 400, 256, embedding=False) == 101 + 50
    assert estimate({"parameters": {"max_new_tokens": 7}}, 40, 256, embedding=False) == 11 + 7
    assert estimate({}, 40, 256, embedding=False) == 11 + 256
    assert estimate({"max_tokens": 50}, 40, 256, embedding=True) == 11


def test_a_counter_never_grants_more_than_its_limit(tables: str) -> None:
    counters = CounterStore()
    assert counters.lease("k#1", 20, 100, 0) == (20, 20)  # a first lease larger than the limit
    assert counters.lease("k#1", 20, 1, 0) == (0, 20)
    assert counters.lease("k#2", 20, 15, 0) == (15, 15)
    assert counters.lease("k#2", 20, 15, 0) == (5, 20)  # only what is left


# -- leases ------------------------------------------------------------------------------------------------------
async def admit_many(limit: Limiter, caller: Caller, count: int, tokens: int = 1) -> list[Admission | None]:
    async def one() -> Admission | ServeError | None:
        try:
            return await limit.admit(caller, tokens)
        except ServeError as error:
            return error

    results = await asyncio.gather(*(one() for _ in range(count)))
    refusals = [r for r in results if isinstance(r, ServeError)]
    assert all(r.status == 429 for r in refusals), refusals
    return [r for r in results if not isinstance(r, ServeError)]


def test_exactly_the_limit_of_concurrent_requests_is_admitted(tables: str) -> None:
    clock = Clock(MINUTE_START + 5)
    limit = limiter(config(user={"requestsPerMinute": 20}), clock)
    dave = Caller(None, "dave", ())

    async def scenario() -> list[int]:  # one event loop, as in a router
        counts = [len(await admit_many(limit, dave, 100))]
        clock.now += 50  # the same window: still nothing left
        counts.append(len(await admit_many(limit, dave, 5)))
        clock.now += 10  # the next minute
        return [*counts, len(await admit_many(limit, dave, 30))]

    assert asyncio.run(scenario()) == [20, 0, 20]


def test_tasks_share_the_counter_and_a_restart_keeps_it(tables: str) -> None:
    clock = Clock(MINUTE_START + 1)
    defaults = config(token={"requestsPerMinute": 20})
    first, second = limiter(defaults, clock), limiter(defaults, clock)
    erin = Caller("tok-erin", "erin", ())

    async def both() -> int:
        got = await asyncio.gather(admit_many(first, erin, 60), admit_many(second, erin, 60))
        return sum(len(g) for g in got)

    assert asyncio.run(both()) <= 20
    counter = Rule(Kind.REQUESTS_PER_MINUTE, Scope.TOKEN, "tok-erin", 20).counter_key(MINUTE_START)
    assert CounterStore().granted(counter) == 20  # all of the window is leased, never more
    restarted = limiter(defaults, clock)  # a new process: no lease of its own, the counter remembers
    assert asyncio.run(admit_many(restarted, erin, 10)) == []


def test_a_token_budget_stops_the_caller_and_the_next_day_lets_it_in(tables: str) -> None:
    clock = Clock(datetime(2026, 5, 4, 10, tzinfo=UTC).timestamp())
    midnight = datetime(2026, 5, 5, tzinfo=UTC).timestamp()
    limit = limiter(config(user={"tokensPerDay": 1000}), clock)
    caller = Caller(None, "carol", ())

    refusals: list[ServeError] = []

    async def spend(times: int, used: int) -> int:
        admitted = 0
        for _ in range(times):
            try:
                admission = await limit.admit(caller, 100)
            except ServeError as error:
                refusals.append(error)
                continue
            assert admission is not None
            limit.settle(admission, used)
            admitted += 1
        return admitted

    assert asyncio.run(spend(10, 300)) == 4  # 300 tokens each: the 4th takes the budget past 1000, then refused
    clock.now += 6 * 3600
    assert asyncio.run(spend(1, 10)) == 0  # the same UTC day
    assert len(refusals) == 7
    assert {e.status for e in refusals} == {429}
    last = refusals[-1].headers
    assert last["x-ratelimit-limit-tokens"] == "1000"
    assert last["x-ratelimit-remaining-tokens"] == "0"
    assert last["Retry-After"] == str(int(midnight - clock.now))
    assert last["x-ratelimit-reset-tokens"] == "8h0m0s"
    clock.now += 8 * 3600  # midnight UTC
    assert asyncio.run(spend(3, 300)) == 3


def test_every_rule_must_pass_and_a_refusal_returns_what_it_took(tables: str) -> None:
    clock = Clock(MINUTE_START + 30)
    defaults = config(token={"requestsPerMinute": 100}, group={"requestsPerMinute": 3})
    OverrideStore().put(Scope.GROUP, "research", LimitOverride(requests_per_minute=5), "admin", "now")
    limit = limiter(defaults, clock)
    other = Caller("tok-alice", "alice-2", ())

    async def scenario() -> tuple[int, ServeError, int]:  # one event loop, as in a router
        admitted = len(await admit_many(limit, ALICE, 10))
        with pytest.raises(ServeError) as error:
            await limit.admit(ALICE, 1)
        return admitted, error.value, len(await admit_many(limit, other, 120))

    admitted, error, others = asyncio.run(scenario())
    assert admitted == 5  # research's 5, the more permissive group
    assert error.status == 429
    assert error.code == "rate_limit_exceeded"
    assert "group 'research'" in error.message
    assert error.headers["x-ratelimit-limit-requests"] == "5"
    assert error.headers["x-ratelimit-remaining-requests"] == "0"
    assert error.headers["x-ratelimit-reset-requests"] == "30s"
    assert error.headers["Retry-After"] == "30"
    # The token's own rule gave back the unit each refused request took from it: 95 of 100 are left.
    assert others == 95
