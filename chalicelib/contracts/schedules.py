"""A hosted model's schedule (when its GPU service runs), and what a fired schedule hands the update workflow.

The wire shape of a schedule, in a model's record and in `PUT /models/{id}`'s body:

    {"timezone": "Europe/Berlin", "daily": {"start": "08:00", "stop": "20:00"}}
    {"timezone": "America/New_York",
     "weekly": [{"days": ["MON", "TUE", "WED", "THU", "FRI"], "start": "07:30", "stop": "19:00"},
                {"days": ["SUN"], "start": "22:00", "stop": "02:00"}]}

Times are local wall-clock times in `timezone` (an IANA name), to the minute (EventBridge Scheduler's precision).
A window whose stop is not after its start ends the next day (22:00-02:00 crosses midnight; a Sunday one crosses
the week's end into Monday). Windows may neither overlap nor touch (a stop and a start at one instant would fire in
no defined order: make them one window). How a window meets a daylight-saving change is `chalicelib.schedules`'s
rule (it is EventBridge Scheduler's), documented in docs/schedules.md.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

Weekday = Literal["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"]
WEEKDAYS: tuple[Weekday, ...] = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")  # index = date.weekday()
ScheduleAction = Literal["start", "stop"]
MINUTES_PER_DAY = 24 * 60
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY
MAX_WINDOWS = 14  # two a day: far more than a GPU schedule needs, and a bound on the EventBridge schedules made


def _time_of_day(value: str) -> str:
    hours, sep, minutes = value.partition(":")
    ok = sep == ":" and len(hours) == 2 and len(minutes) == 2 and (hours + minutes).isascii()
    if not (ok and hours.isdigit() and minutes.isdigit() and int(hours) < 24 and int(minutes) < 60):
        raise ValueError(f"must be a time of day HH:MM (00:00-23:59), got {value[:20]!r}")
    return value


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {value[:64]!r} (e.g. 'Europe/Berlin', 'UTC')") from None
    return value


TimeOfDay = Annotated[str, Field(max_length=16, examples=["08:00"]), AfterValidator(_time_of_day)]
TimeZoneName = Annotated[str, Field(min_length=1, max_length=64, examples=["Europe/Berlin"]), AfterValidator(_zone)]


def minutes_of(time_of_day: str) -> int:
    """`"08:30"` → 510: minutes after local midnight."""
    hours, _, minutes = time_of_day.partition(":")
    return int(hours) * 60 + int(minutes)


class _Json(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields refused (an admin's typo must not be ignored)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, alias_generator=to_camel, frozen=True)

    def wire(self) -> dict[str, Any]:
        """The JSON object (all fields, by alias)."""
        return self.model_dump(mode="json", by_alias=True)


class DailyWindow(_Json):
    """Every day from `start` to `stop` (local time); a stop not after the start is on the next day."""

    start: TimeOfDay
    stop: TimeOfDay

    @model_validator(mode="after")
    def _not_empty(self) -> DailyWindow:
        if self.start == self.stop:
            raise ValueError("stop must differ from start (a window of no time, or of all day: leave it unscheduled)")
        return self

    @property
    def minutes(self) -> int:
        """The window's length in wall-clock minutes (1 to 1439)."""
        return (minutes_of(self.stop) - minutes_of(self.start)) % MINUTES_PER_DAY


class WeeklyWindow(DailyWindow):
    """On each of `days`, from `start` to `stop` (local time); the window belongs to the day it starts on."""

    days: list[Weekday] = Field(min_length=1, max_length=7)

    @model_validator(mode="after")
    def _distinct_days(self) -> WeeklyWindow:
        if len(set(self.days)) != len(self.days):
            raise ValueError("days lists a day twice")
        return self


class Transition(BaseModel):
    """One recurring start or stop: on `weekday` (0 = Monday) at `minute` (after local midnight)."""

    model_config = ConfigDict(frozen=True)

    action: ScheduleAction
    weekday: int = Field(ge=0, le=6)
    minute: int = Field(ge=0, lt=MINUTES_PER_DAY)


class ModelSchedule(_Json):
    """When a hosted model runs: one daily window, or weekly windows, in an IANA time zone."""

    timezone: TimeZoneName
    daily: DailyWindow | None = None
    weekly: list[WeeklyWindow] | None = Field(None, min_length=1, max_length=MAX_WINDOWS)

    @model_validator(mode="after")
    def _one_kind(self) -> ModelSchedule:
        if (self.daily is None) == (self.weekly is None):
            raise ValueError("give exactly one of `daily` or `weekly`")
        return self

    @field_validator("weekly")
    @classmethod
    def _no_overlap(cls, windows: list[WeeklyWindow] | None) -> list[WeeklyWindow] | None:
        spans = sorted(  # (start in minutes of the week, window index, length in minutes)
            (WEEKDAYS.index(day) * MINUTES_PER_DAY + minutes_of(window.start), index, window.minutes)
            for index, window in enumerate(windows or ())
            for day in window.days
        )
        if len(spans) < 2:
            return windows
        for (start, index, length), (next_start, next_index, _) in zip(spans, [*spans[1:], spans[0]], strict=True):
            if (next_start - start) % MINUTES_PER_WEEK <= length:  # the next window starts before this one stops
                day = WEEKDAYS[next_start // MINUTES_PER_DAY]
                first, second = sorted({index, next_index}) if index != next_index else (index, index)
                raise ValueError(f"weekly.{second} overlaps or touches weekly.{first} on {day}")
        return windows

    def windows(self) -> list[WeeklyWindow]:
        """The weekly windows (a daily window is the same window on all seven days)."""
        if self.daily is not None:
            return [WeeklyWindow(days=list(WEEKDAYS), start=self.daily.start, stop=self.daily.stop)]
        return list(self.weekly or ())

    def transitions(self) -> list[Transition]:
        """Every recurring start and stop, in week order (a stop after midnight falls on the next weekday)."""
        found = set()
        for window in self.windows():
            start, stop = minutes_of(window.start), minutes_of(window.stop)
            for day in (WEEKDAYS.index(name) for name in window.days):
                found.add(Transition(action="start", weekday=day, minute=start))
                found.add(Transition(action="stop", weekday=(day + (stop <= start)) % 7, minute=stop))
        return sorted(found, key=lambda t: (t.weekday, t.minute))


class ScheduledAction(_Json):
    """What a fired schedule gives its target (the model update workflow's execution input), EventBridge
    Scheduler's or the local runner's alike: start or stop `model_id`, as due at `scheduled_time` (the schedule's
    own instant, not the delivery's: with `model_id` and `action` it names the transition, for idempotency).

    The update workflow validates its input with this model; `action` maps onto `enabled` true/false.
    """

    model_config = ConfigDict(extra="ignore")  # EventBridge may grow the payload; only LISA's fields matter

    model_id: str = Field(min_length=1, max_length=256)
    action: ScheduleAction
    scheduled_time: AwareDatetime
    schedule_name: str | None = None


class AppliedTransition(_Json):
    """The last scheduled transition the update workflow took on a model, kept on its record: a repeated delivery
    of it (EventBridge delivers at least once), or an older one arriving late, is done already."""

    action: ScheduleAction
    scheduled_time: AwareDatetime


class ScheduleStatus(_Json):
    """A schedule as shown with its model: whether the schedule means it to run now, and its next start and stop
    (in the schedule's time zone; null when there is none, which only an empty schedule would give)."""

    timezone: str
    running: bool
    next_start: datetime | None
    next_stop: datetime | None
