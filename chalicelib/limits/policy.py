"""Which limits bind a caller, and the windows they are counted in. Pure functions: no I/O, no clock of their own.

A request must pass every limit that applies to it: its API token's (an OIDC caller has none), its user's, and its
groups'. Of a user's groups, the most permissive limit of each kind is the one that counts (a group without a limit
of that kind lifts it), so joining a group never makes a user's limits stricter. Each scope's limits are its
config.yaml default with the principal's override applied.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from chalicelib.contracts.limits import Kind, LimitOverride, LimitsConfig, Scope

MINUTE_KINDS = (Kind.REQUESTS_PER_MINUTE, Kind.TOKENS_PER_MINUTE)
TOKEN_KINDS = (Kind.TOKENS_PER_MINUTE, Kind.TOKENS_PER_DAY, Kind.TOKENS_PER_MONTH)
_COUNTER_GRACE = 86_400  # counters are kept a day past their window (TTL), for inspection


@dataclass(frozen=True, slots=True)
class Rule:
    """One limit that binds a request: `limit` of `kind`, counted for (`scope`, `principal_id`)."""

    kind: Kind
    scope: Scope
    principal_id: str
    limit: int

    def counter_key(self, window_start: int) -> str:
        """The shared counter of this rule in the window starting at `window_start` (UNIX seconds)."""
        return f"{self.kind.value}#{self.scope.value}#{self.principal_id}#{window_start}"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a request is counted for: its API token (None for an OIDC caller), its username and groups."""

    token_id: str | None
    username: str
    groups: tuple[str, ...]

    def principals(self) -> list[tuple[Scope, str]]:
        """Every principal whose limits may apply (the keys of their overrides)."""
        own = [(Scope.TOKEN, self.token_id)] if self.token_id else []
        return [*own, (Scope.USER, self.username), *((Scope.GROUP, group) for group in self.groups)]


def rules(
    caller: Caller, defaults: LimitsConfig, overrides: Mapping[tuple[Scope, str], LimitOverride]
) -> tuple[Rule, ...]:
    """Every limit that binds `caller` (module docstring), requests-per-minute first."""

    found: list[Rule] = []
    own = [(Scope.TOKEN, caller.token_id)] if caller.token_id else []
    for kind in Kind:
        for scope, principal_id in (*own, (Scope.USER, caller.username)):
            limit = defaults.of(scope).merged(overrides.get((scope, principal_id))).of(kind)
            if limit is not None:
                found.append(Rule(kind, scope, principal_id, limit))
        group = _most_permissive(kind, caller.groups, defaults, overrides)
        if group is not None:
            found.append(group)
    return tuple(found)


def _most_permissive(
    kind: Kind,
    groups: tuple[str, ...],
    defaults: LimitsConfig,
    overrides: Mapping[tuple[Scope, str], LimitOverride],
) -> Rule | None:
    """The group rule of `kind`: the highest limit of the caller's groups (None if any group has no limit)."""
    best: Rule | None = None
    for group in groups:
        limit = defaults.group.merged(overrides.get((Scope.GROUP, group))).of(kind)
        if limit is None:
            return None
        if best is None or limit > best.limit:
            best = Rule(kind, Scope.GROUP, group, limit)
    return best


def window(kind: Kind, now: float) -> tuple[int, int]:
    """(start, end) in UNIX seconds of the UTC window `kind` is counted in at `now`: the minute, day or month."""
    second = int(now)
    if kind in MINUTE_KINDS:
        start = second - second % 60
        return start, start + 60
    if kind is Kind.TOKENS_PER_DAY:
        start = second - second % 86_400
        return start, start + 86_400
    moment = datetime.fromtimestamp(second, UTC)
    first = datetime(moment.year, moment.month, 1, tzinfo=UTC)
    days = calendar.monthrange(moment.year, moment.month)[1]
    start = int(first.timestamp())
    return start, start + days * 86_400


def expiry(window_end: int) -> int:
    """When a counter of a window ending at `window_end` may be deleted (its TTL)."""
    return window_end + _COUNTER_GRACE
