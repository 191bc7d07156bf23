"""When a schedule's transitions fire, as pure functions of an instant: EventBridge Scheduler's rules, computed.

A transition is a local wall-clock time on a weekday in an IANA zone. It fires at the instant the zone's clocks show
that time, with EventBridge Scheduler's daylight-saving rules (so what LISA shows is what AWS does):
- a time the zone skips that day (the spring-forward gap, e.g. 02:30 in New York on 2026-03-08) does not fire that
  day: a start there leaves the model stopped until its next start, a stop there leaves it running until its next
  stop;
- a time the zone shows twice (the fall-back repeat, e.g. 01:30 in New York on 2026-11-01) fires once, at its first
  occurrence (before the clocks go back).
A model is meant to run at instant t when the last transition fired at or before t is a start (so from a start's
instant inclusive to the next stop's instant exclusive). Instants are aware datetimes, compared in UTC (two datetimes
of one zone compare by wall clock, ignoring `fold`: wrong in a repeated hour); next starts and stops are given in the
schedule's zone.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from chalicelib.contracts.schedules import ModelSchedule, ScheduleAction, ScheduleStatus, Transition

HORIZON_DAYS = 400  # a search for the next/previous transition gives up after this (only an empty set gets there)


@dataclass(frozen=True, order=True)
class Firing:
    """One transition's firing: at `at` (in UTC), start or stop."""

    at: datetime
    action: ScheduleAction


@cache
def zone_of(name: str) -> ZoneInfo:
    """The ZoneInfo of an IANA name (validated by the contract already)."""
    return ZoneInfo(name)


def fire_instant(day: date, minute: int, zone: ZoneInfo) -> datetime | None:
    """The instant (UTC) local `day` at `minute` after midnight fires, or None if the zone skips that wall time then.

    A repeated wall time resolves to its first occurrence (fold=0); a skipped one does not survive the round trip
    through UTC (Python maps it to a shifted time), which is how it is recognised."""
    wall = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=zone)
    at = wall.astimezone(UTC)
    return at if at.astimezone(zone).replace(tzinfo=None) == wall.replace(tzinfo=None) else None


def _by_weekday(transitions: Iterable[Transition]) -> list[list[Transition]]:
    days: list[list[Transition]] = [[] for _ in range(7)]
    for transition in transitions:
        days[transition.weekday].append(transition)
    for day in days:
        day.sort(key=lambda t: t.minute)
    return days


def _days_firings(days: list[list[Transition]], zone: ZoneInfo, day: date, step: int) -> Iterator[Firing]:
    """Firings day by day from local `day`, forwards (step 1) or backwards (step -1), up to the horizon."""
    for offset in range(HORIZON_DAYS):
        current = day + timedelta(days=offset * step)
        todays = days[current.weekday()]
        for transition in todays if step > 0 else reversed(todays):
            at = fire_instant(current, transition.minute, zone)
            if at is not None:
                yield Firing(at, transition.action)


def firings_after(transitions: Iterable[Transition], timezone: str, after: datetime) -> Iterator[Firing]:
    """The firings strictly after `after`, in time order (up to the horizon)."""
    zone, after = zone_of(timezone), after.astimezone(UTC)
    start = after.astimezone(zone).date() - timedelta(days=1)  # a fall-back at midnight repeats the last hour
    return (f for f in _days_firings(_by_weekday(transitions), zone, start, 1) if f.at > after)


def firings_until(transitions: Iterable[Transition], timezone: str, until: datetime) -> Iterator[Firing]:
    """The firings at or before `until`, latest first (back to the horizon)."""
    zone, until = zone_of(timezone), until.astimezone(UTC)
    start = until.astimezone(zone).date() + timedelta(days=1)
    return (f for f in _days_firings(_by_weekday(transitions), zone, start, -1) if f.at <= until)


def firings_between(transitions: Iterable[Transition], timezone: str, after: datetime, until: datetime) -> list[Firing]:
    """The firings in (after, until], in time order."""
    found, until = [], until.astimezone(UTC)
    for firing in firings_after(transitions, timezone, after):
        if firing.at > until:
            break
        found.append(firing)
    return found


def is_running(schedule: ModelSchedule, at: datetime) -> bool:
    """Whether `schedule` means its model to run at `at`: the last firing at or before it is a start."""
    last = next(firings_until(schedule.transitions(), schedule.timezone, at), None)
    return last is not None and last.action == "start"


def next_firing(schedule: ModelSchedule, after: datetime, action: ScheduleAction) -> datetime | None:
    """The first `action` (start or stop) strictly after `after`, in the schedule's zone."""
    firings = firings_after(schedule.transitions(), schedule.timezone, after)
    at = next((f.at for f in firings if f.action == action), None)
    return at.astimezone(zone_of(schedule.timezone)) if at is not None else None


def next_start(schedule: ModelSchedule, after: datetime) -> datetime | None:
    """The schedule's next start strictly after `after`."""
    return next_firing(schedule, after, "start")


def next_stop(schedule: ModelSchedule, after: datetime) -> datetime | None:
    """The schedule's next stop strictly after `after`."""
    return next_firing(schedule, after, "stop")


def schedule_status(schedule: ModelSchedule, now: datetime) -> ScheduleStatus:
    """What the model's record shows of its schedule at `now`."""
    return ScheduleStatus(
        timezone=schedule.timezone,
        running=is_running(schedule, now),
        next_start=next_start(schedule, now),
        next_stop=next_stop(schedule, now),
    )
