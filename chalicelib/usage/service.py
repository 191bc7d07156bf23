"""What `GET /usage` answers: the caller's own figures, or (admins) another principal's or everyone's."""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING

from chalicelib.contracts.usage import (
    ALL_PRINCIPALS,
    DEFAULT_RANGE_DAYS,
    MAX_RANGE_DAYS,
    UsageCounts,
    UsageQuery,
    UsageReport,
)
from chalicelib.errors import BadRequest, Forbidden

if TYPE_CHECKING:
    from chalicelib.auth.principal import Principal
    from chalicelib.usage.store import UsageStore


_DEFAULT = timedelta(days=DEFAULT_RANGE_DAYS - 1)  # before `to`: 30 days, `to` included (none before year 1)


def date_range(query: UsageQuery, today: date) -> tuple[date, date]:
    """The query's days (default: the last 30 days to today, UTC); 400 naming `from` for an empty or too long one."""
    end = date.fromisoformat(query.to) if query.to else today
    start = date.fromisoformat(query.from_) if query.from_ else end - min(_DEFAULT, end - date.min)
    if start > end:
        raise BadRequest(f"from: {start} is after to ({end})", field="from")
    if (end - start).days + 1 > MAX_RANGE_DAYS:
        raise BadRequest(f"from: the range may span at most {MAX_RANGE_DAYS} days ({start} to {end})", field="from")
    return start, end


def whose(caller: Principal, query: UsageQuery) -> str:
    """The principal asked for: the caller's own owner id unless an admin names another (or `*`); 403 otherwise."""
    wanted = query.principal or caller.owner_id
    if wanted != caller.owner_id and not caller.is_admin:
        raise Forbidden("principal: only administrators may read another principal's usage", field="principal")
    return wanted


def usage_report(caller: Principal, query: UsageQuery, store: UsageStore, today: date) -> UsageReport:
    """The figures the caller may see for `query` (days sorted by date, then model)."""
    return report(whose(caller, query), query, store, today)


def report(principal: str, query: UsageQuery, store: UsageStore, today: date) -> UsageReport:
    """The figures of `principal` (an owner id or `*`) for `query`'s range and model, with their totals."""
    start, end = date_range(query, today)
    days = store.days(None if principal == ALL_PRINCIPALS else principal, start, end, query.model)
    totals = UsageCounts(
        requests=sum(d.requests for d in days),
        errors=sum(d.errors for d in days),
        prompt_tokens=sum(d.prompt_tokens for d in days),
        completion_tokens=sum(d.completion_tokens for d in days),
    )
    return UsageReport(principal=principal, from_=start.isoformat(), to=end.isoformat(), days=days, totals=totals)
