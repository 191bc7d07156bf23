"""EventBridge Scheduler cron expressions for schedule transitions, and back (the local runner reads them).

One recurring transition time of one action becomes one expression, `cron(30 8 ? * MON,TUE *)`: minute, hour, any
day of the month, every month, the weekdays it fires on, every year; its `ScheduleExpressionTimezone` is the
schedule's zone. Only this shape is written, so only this shape is read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from chalicelib.contracts.schedules import WEEKDAYS, ScheduleAction, Transition

_DAY = "(?:" + "|".join(WEEKDAYS) + ")"
_CRON = re.compile(rf"cron\(([0-9]{{1,2}}) ([0-9]{{1,2}}) \? \* ({_DAY}(?:,{_DAY})*) \*\)")


@dataclass(frozen=True)
class CronTime:
    """A time of day (minutes after local midnight) on some weekdays (0 = Monday)."""

    minute: int
    weekdays: frozenset[int]

    def expression(self) -> str:
        """The EventBridge Scheduler cron expression."""
        days = ",".join(WEEKDAYS[day] for day in sorted(self.weekdays))
        return f"cron({self.minute % 60} {self.minute // 60} ? * {days} *)"

    def transitions(self, action: ScheduleAction) -> list[Transition]:
        """The recurring transitions this time fires, as `action`."""
        return [Transition(action=action, weekday=day, minute=self.minute) for day in sorted(self.weekdays)]


def cron_times(transitions: list[Transition]) -> dict[tuple[ScheduleAction, int], CronTime]:
    """Transitions grouped by (action, time of day): one cron expression each."""
    grouped: dict[tuple[ScheduleAction, int], set[int]] = {}
    for transition in transitions:
        grouped.setdefault((transition.action, transition.minute), set()).add(transition.weekday)
    return {key: CronTime(key[1], frozenset(days)) for key, days in sorted(grouped.items())}


def parse_cron(expression: str) -> CronTime:
    """The time of a cron expression LISA wrote; ValueError for any other."""
    match = _CRON.fullmatch(expression)
    if match is None:
        raise ValueError(f"not a LISA schedule expression: {expression[:80]!r}")
    minute, hour = int(match[1]), int(match[2])
    if minute >= 60 or hour >= 24:
        raise ValueError(f"not a time of day: {expression[:80]!r}")
    days = match[3].split(",")
    if len(set(days)) != len(days):
        raise ValueError(f"a weekday listed twice: {expression[:80]!r}")
    return CronTime(hour * 60 + minute, frozenset(WEEKDAYS.index(day) for day in days))  # type: ignore[arg-type]
