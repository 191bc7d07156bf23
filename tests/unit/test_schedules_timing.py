"""Model schedules as pure functions: validation, and when transitions fire across DST changes (issue 16 item 7)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from chalicelib.config import format_validation_error
from chalicelib.contracts.schedules import MINUTES_PER_DAY, MINUTES_PER_WEEK, WEEKDAYS, ModelSchedule, minutes_of
from chalicelib.schedules.cron import cron_times, parse_cron
from chalicelib.schedules.timing import (
    Firing,
    firings_between,
    is_running,
    next_start,
    next_stop,
    schedule_status,
)

NY, BERLIN, LORD_HOWE = "America/New_York", "Europe/Berlin", "Australia/Lord_Howe"


def daily(zone: str, start: str, stop: str) -> ModelSchedule:
    return ModelSchedule.model_validate({"timezone": zone, "daily": {"start": start, "stop": stop}})


def weekly(zone: str, *windows: tuple[list[str], str, str]) -> ModelSchedule:
    body = [{"days": days, "start": start, "stop": stop} for days, start, stop in windows]
    return ModelSchedule.model_validate({"timezone": zone, "weekly": body})


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def local(zone: str, text: str, fold: int = 0) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone), fold=fold)


def fired(schedule: ModelSchedule, after: datetime, until: datetime) -> list[tuple[str, str]]:
    """(UTC instant, action) of each firing in (after, until]."""
    return [
        (f.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M"), f.action)
        for f in firings_between(schedule.transitions(), schedule.timezone, after, until)
    ]


# --- validation: a bad zone, time or overlap names its field ----------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"timezone": "Mars/Olympus", "daily": {"start": "08:00", "stop": "20:00"}}, "timezone", "unknown IANA"),
        ({"timezone": "../../etc/passwd", "daily": {"start": "08:00", "stop": "20:00"}}, "timezone", "unknown IANA"),
        ({"timezone": "UTC", "daily": {"start": "24:00", "stop": "20:00"}}, "daily.start", "HH:MM"),
        ({"timezone": "UTC", "daily": {"start": "08:00", "stop": "8:5"}}, "daily.stop", "HH:MM"),
        ({"timezone": "UTC", "daily": {"start": "08:00:30", "stop": "20:00"}}, "daily.start", "HH:MM"),
        ({"timezone": "UTC", "daily": {"start": "08:00", "stop": "08:00"}}, "daily", "differ"),
        ({"timezone": "UTC"}, "(top level)", "exactly one of"),
        (
            {"timezone": "UTC", "daily": {"start": "08:00", "stop": "20:00"}, "weekly": []},
            "weekly",
            "at least 1",
        ),
        ({"timezone": "UTC", "weekly": [{"days": [], "start": "08:00", "stop": "20:00"}]}, "weekly.0.days", "at least"),
        (
            {"timezone": "UTC", "weekly": [{"days": ["MON", "MON"], "start": "08:00", "stop": "20:00"}]},
            "weekly.0",
            "twice",
        ),
        (
            {"timezone": "UTC", "weekly": [{"days": ["Mon"], "start": "08:00", "stop": "20:00"}]},
            "weekly.0.days.0",
            "MON",
        ),
        (
            {
                "timezone": "UTC",
                "weekly": [
                    {"days": ["MON"], "start": "08:00", "stop": "12:00"},
                    {"days": ["MON"], "start": "11:00", "stop": "13:00"},
                ],
            },
            "weekly",
            "weekly.1 overlaps or touches weekly.0 on MON",
        ),
        (  # Sunday night into Monday morning crosses the week's end, into a Monday window that starts at its stop
            {
                "timezone": "UTC",
                "weekly": [
                    {"days": ["MON"], "start": "02:00", "stop": "06:00"},
                    {"days": ["SUN"], "start": "22:00", "stop": "02:00"},
                ],
            },
            "weekly",
            "weekly.1 overlaps or touches weekly.0 on MON",
        ),
        ({"timezone": "UTC", "daily": {"start": "08:00", "stop": "20:00"}, "every": "day"}, "every", "Extra"),
    ],
)
def test_a_bad_schedule_names_its_field(body: dict[str, object], field: str, words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ModelSchedule.model_validate(body)
    message = format_validation_error(caught.value)
    assert message.startswith(f"{field}: "), message
    assert words in message


def test_windows_may_follow_each_other_with_a_gap_and_cross_the_week_end() -> None:
    schedule = weekly(
        "UTC", (["MON", "TUE"], "08:00", "12:00"), (["MON"], "12:01", "13:00"), (["SUN"], "22:00", "01:59")
    )
    assert [(t.action, WEEKDAYS[t.weekday], t.minute) for t in schedule.transitions()][:2] == [
        ("stop", "MON", 119),
        ("start", "MON", 480),
    ]


# --- explicit cases: midnight, the week's end, DST in both directions, a half-hour DST ------------------------


def test_a_daily_window_across_midnight() -> None:
    schedule = daily("UTC", "22:00", "06:00")
    assert is_running(schedule, utc("2026-06-10T23:59"))
    assert is_running(schedule, utc("2026-06-11T05:59"))
    assert not is_running(schedule, utc("2026-06-11T06:00"))  # stop instant: stopped
    assert is_running(schedule, utc("2026-06-11T22:00"))  # start instant: running
    assert next_stop(schedule, utc("2026-06-10T23:00")) == utc("2026-06-11T06:00")
    assert next_start(schedule, utc("2026-06-10T23:00")) == utc("2026-06-11T22:00")


def test_a_weekly_window_across_the_week_end() -> None:
    schedule = weekly(BERLIN, (["SUN"], "22:00", "02:00"))
    sunday = local(BERLIN, "2026-06-14T23:30")  # a Sunday
    assert is_running(schedule, sunday)
    assert is_running(schedule, local(BERLIN, "2026-06-15T01:59"))
    assert not is_running(schedule, local(BERLIN, "2026-06-15T02:00"))
    assert not is_running(schedule, local(BERLIN, "2026-06-17T12:00"))
    assert next_start(schedule, sunday) == local(BERLIN, "2026-06-21T22:00")
    assert next_stop(schedule, sunday) == local(BERLIN, "2026-06-15T02:00")


def test_new_york_spring_forward_skips_a_start_in_the_missing_hour() -> None:
    # 2026-03-08 02:00 EST → 03:00 EDT: 02:30 does not exist that day, so that day's start does not fire (as
    # EventBridge Scheduler skips it); the stop still fires (the model is stopped already) and the next day runs.
    schedule = daily(NY, "02:30", "06:00")
    assert fired(schedule, utc("2026-03-07T00:00"), utc("2026-03-10T00:00")) == [
        ("2026-03-07T07:30", "start"),
        ("2026-03-07T11:00", "stop"),
        ("2026-03-08T10:00", "stop"),  # 06:00 EDT
        ("2026-03-09T06:30", "start"),  # 02:30 EDT
        ("2026-03-09T10:00", "stop"),
    ]
    assert not is_running(schedule, local(NY, "2026-03-08T04:00"))
    assert next_start(schedule, local(NY, "2026-03-08T00:00")) == local(NY, "2026-03-09T02:30")


def test_new_york_spring_forward_skips_a_stop_so_the_model_runs_on() -> None:
    schedule = daily(NY, "20:00", "02:15")
    assert is_running(schedule, local(NY, "2026-03-08T03:30"))  # the 02:15 stop never came
    assert next_stop(schedule, local(NY, "2026-03-08T01:00")) == local(NY, "2026-03-09T02:15")
    assert not is_running(schedule, local(NY, "2026-03-09T02:15"))


def test_new_york_fall_back_stops_at_the_first_of_two_1_30s() -> None:
    # 2026-11-01 02:00 EDT → 01:00 EST: 01:30 happens at 05:30Z (EDT) and again at 06:30Z (EST); it fires once, first.
    schedule = daily(NY, "22:00", "01:30")
    assert fired(schedule, utc("2026-11-01T03:00"), utc("2026-11-02T04:00")) == [
        ("2026-11-01T05:30", "stop"),
        ("2026-11-02T03:00", "start"),  # 22:00 EST
    ]
    assert is_running(schedule, local(NY, "2026-11-01T01:29", fold=0))
    assert not is_running(schedule, local(NY, "2026-11-01T01:15", fold=1))  # the repeated hour: stopped already
    assert not is_running(schedule, local(NY, "2026-11-01T01:45", fold=1))


def test_new_york_fall_back_starts_once_in_the_repeated_hour() -> None:
    schedule = daily(NY, "01:30", "01:50")
    # the first pass of 01:30-01:50 (EDT) runs; in the second pass (EST) the clock shows 01:30 again but nothing fires
    assert fired(schedule, utc("2026-11-01T04:00"), utc("2026-11-01T08:00")) == [
        ("2026-11-01T05:30", "start"),
        ("2026-11-01T05:50", "stop"),
    ]
    assert not is_running(schedule, local(NY, "2026-11-01T01:40", fold=1))


def test_berlin_spring_forward_and_fall_back() -> None:
    # 2026-03-29 02:00 CET → 03:00 CEST (02:00-02:59 skipped); 2026-10-25 03:00 CEST → 02:00 CET (02:00-02:59 twice)
    schedule = weekly(BERLIN, (["SAT"], "22:00", "02:15"), (["SUN"], "02:30", "09:00"))
    assert fired(schedule, utc("2026-03-28T12:00"), utc("2026-03-30T00:00")) == [
        ("2026-03-28T21:00", "start"),  # Saturday 22:00 CET; Sunday's 02:15 stop and 02:30 start are skipped
        ("2026-03-29T07:00", "stop"),  # 09:00 CEST: Saturday night's model ran on through Sunday's window
    ]
    assert fired(schedule, utc("2026-10-24T12:00"), utc("2026-10-26T00:00")) == [
        ("2026-10-24T20:00", "start"),  # Saturday 22:00 CEST
        ("2026-10-25T00:15", "stop"),  # 02:15, first pass (CEST)
        ("2026-10-25T00:30", "start"),  # 02:30, first pass (CEST)
        ("2026-10-25T08:00", "stop"),  # 09:00 CET
    ]
    assert is_running(schedule, local(BERLIN, "2026-10-25T02:20", fold=1))  # second pass: started at 02:30 CEST
    assert not is_running(schedule, local(BERLIN, "2026-10-25T02:20", fold=0))


def test_lord_howe_half_hour_shifts() -> None:
    # 2026-04-05 02:00 +11 → 01:30 +10:30 (01:30-02:00 twice); 2026-10-04 02:00 +10:30 → 02:30 +11 (02:00-02:30 skipped)
    schedule = daily(LORD_HOWE, "02:15", "01:45")
    assert fired(schedule, utc("2026-04-04T12:00"), utc("2026-04-05T12:00")) == [
        ("2026-04-04T14:45", "stop"),  # 01:45 at +11, the first of two
        ("2026-04-04T15:45", "start"),  # 02:15 at +10:30
    ]
    assert fired(schedule, utc("2026-10-03T12:00"), utc("2026-10-04T12:00")) == [
        ("2026-10-03T15:15", "stop"),  # 01:45 at +10:30
        # 02:15 on 2026-10-04 does not exist: no start that night
    ]
    assert not is_running(schedule, local(LORD_HOWE, "2026-10-04T12:00"))
    assert next_start(schedule, local(LORD_HOWE, "2026-10-04T00:00")) == local(LORD_HOWE, "2026-10-05T02:15")


def test_the_status_shown_with_the_model() -> None:
    schedule = weekly(NY, (["MON", "TUE", "WED", "THU", "FRI"], "07:30", "19:00"))
    status = schedule_status(schedule, utc("2026-03-06T23:00"))  # Friday 18:00 EST
    assert status.wire() == {
        "timezone": NY,
        "running": True,
        "nextStart": "2026-03-09T07:30:00-04:00",  # Monday, after the change
        "nextStop": "2026-03-06T19:00:00-05:00",
    }


# --- cron expressions -------------------------------------------------------------------------------------------


def test_one_cron_expression_per_action_and_time() -> None:
    schedule = weekly(
        BERLIN, (["MON", "TUE"], "08:00", "18:30"), (["SUN"], "22:00", "02:00"), (["WED"], "08:00", "12:00")
    )
    expressions = {key: time.expression() for key, time in cron_times(schedule.transitions()).items()}
    assert expressions == {
        ("start", 480): "cron(0 8 ? * MON,TUE,WED *)",
        ("start", 1320): "cron(0 22 ? * SUN *)",
        ("stop", 120): "cron(0 2 ? * MON *)",
        ("stop", 720): "cron(0 12 ? * WED *)",
        ("stop", 1110): "cron(30 18 ? * MON,TUE *)",
    }
    for time in cron_times(schedule.transitions()).values():
        assert parse_cron(time.expression()) == time


@pytest.mark.parametrize(
    "expression",
    ["rate(5 minutes)", "cron(0 8 * * ? *)", "cron(60 8 ? * MON *)", "cron(0 8 ? * MON,MON *)", "cron(0 24 ? * MON *)"],
)
def test_foreign_cron_expressions_are_refused(expression: str) -> None:
    with pytest.raises(ValueError, match=r"LISA schedule|time of day|twice"):
        parse_cron(expression)


# --- properties: against a minute-by-minute walk of the zone's clock -----------------------------------------------

ZONES = [
    NY,
    BERLIN,
    LORD_HOWE,
    "UTC",
    "Asia/Kolkata",
    "America/Santiago",  # changes at midnight
    "America/Havana",  # changes at midnight too
    "Pacific/Chatham",  # +12:45 / +13:45
    "Africa/Casablanca",  # leaves and rejoins DST around Ramadan
]
INTERESTING = [
    "00:00",
    "00:30",
    "01:00",
    "01:30",
    "01:59",
    "02:00",
    "02:15",
    "02:30",
    "02:45",
    "03:00",
    "23:00",
    "23:30",
]


@cache
def offset_changes(zone: str) -> list[datetime]:
    """The hours of 2026-2027 in which `zone`'s UTC offset changes (a daily scan, then hourly within the day)."""
    tz = ZoneInfo(zone)

    def offset(at: datetime) -> timedelta | None:
        return at.astimezone(tz).utcoffset()

    changes, day = [], utc("2026-01-01T00:00")
    while day.year < 2028:
        if offset(day) != offset(day + timedelta(days=1)):
            hours = (day + timedelta(hours=h) for h in range(24))
            changes.extend(h for h in hours if offset(h) != offset(h + timedelta(hours=1)))
        day += timedelta(days=1)
    return changes or [utc("2026-06-01T00:00")]


time_of_day = st.one_of(
    st.sampled_from(INTERESTING),
    st.integers(0, MINUTES_PER_DAY - 1).map(lambda m: f"{m // 60:02d}:{m % 60:02d}"),
)
window = st.fixed_dictionaries(
    {
        "days": st.lists(st.sampled_from(WEEKDAYS), min_size=1, max_size=7, unique=True),
        "start": time_of_day,
        "stop": time_of_day,
    }
)


@st.composite
def schedule_and_instant(draw: st.DrawFn) -> tuple[ModelSchedule, datetime]:
    zone = draw(st.sampled_from(ZONES))
    if draw(st.booleans()):
        body: dict[str, object] = {"timezone": zone, "daily": {"start": draw(time_of_day), "stop": draw(time_of_day)}}
    else:
        body = {"timezone": zone, "weekly": draw(st.lists(window, min_size=1, max_size=3))}
    try:
        schedule = ModelSchedule.model_validate(body)
    except ValidationError:
        assume(False)
        raise
    change = draw(st.sampled_from(offset_changes(zone)))
    return schedule, change + timedelta(minutes=draw(st.integers(-36 * 60, 36 * 60)))


def walk_clock(schedule: ModelSchedule, after: datetime, until: datetime) -> list[Firing]:
    """The oracle: step through every UTC minute, read the zone's clock, and fire where it shows a transition's
    weekday and time for the first time that day (fold 0; a skipped wall time is never shown)."""
    tz = ZoneInfo(schedule.timezone)
    wanted = {(t.weekday, t.minute): t.action for t in schedule.transitions()}
    found, at = [], after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while at <= until:
        clock = at.astimezone(tz)
        action = wanted.get((clock.weekday(), clock.hour * 60 + clock.minute))
        if action is not None and clock.fold == 0:
            found.append(Firing(at, action))  # in UTC: an ambiguous local time equals no other zone's
        at += timedelta(minutes=1)
    return found


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(schedule_and_instant())
def test_firings_match_the_zones_clock(case: tuple[ModelSchedule, datetime]) -> None:
    schedule, t = case
    after, until = t - timedelta(hours=30), t + timedelta(hours=30)
    oracle = walk_clock(schedule, after, until)
    assert firings_between(schedule.transitions(), schedule.timezone, after, until) == oracle
    before = [f for f in oracle if f.at <= t]
    if before:
        assert is_running(schedule, t) == (before[-1].action == "start")
    later = [f for f in oracle if f.at > t]
    for action, found in (("start", next_start(schedule, t)), ("stop", next_stop(schedule, t))):
        expected = next((f.at for f in later if f.action == action), None)
        if expected is not None:
            assert found is not None
            assert found.astimezone(UTC) == expected
            assert found.tzinfo == ZoneInfo(schedule.timezone)


@settings(max_examples=100, deadline=None)
@given(st.lists(window, min_size=1, max_size=4))
def test_overlap_validation_matches_a_minute_map_of_the_week(windows: list[dict[str, object]]) -> None:
    covered = [0] * MINUTES_PER_WEEK
    starts, stops = set(), set()
    for w in windows:
        start, stop = minutes_of(str(w["start"])), minutes_of(str(w["stop"]))
        if start == stop:
            return  # refused for another reason (tested above)
        for day in w["days"]:  # type: ignore[attr-defined]
            begin = WEEKDAYS.index(day) * MINUTES_PER_DAY + start
            for minute in range((stop - start) % MINUTES_PER_DAY):
                covered[(begin + minute) % MINUTES_PER_WEEK] += 1
            starts.add(begin % MINUTES_PER_WEEK)
            stops.add((begin + (stop - start) % MINUTES_PER_DAY) % MINUTES_PER_WEEK)
    clash = max(covered) > 1 or bool(starts & stops)
    if clash:
        with pytest.raises(ValidationError, match="overlaps or touches"):
            ModelSchedule.model_validate({"timezone": "UTC", "weekly": windows})
        return
    schedule = ModelSchedule.model_validate({"timezone": "UTC", "weekly": windows})
    # in a zone without DST the model runs exactly the windows' minutes in any one week
    after = utc("2026-06-10T12:34")
    until = after + timedelta(days=7)
    running, state, previous = timedelta(0), is_running(schedule, after), after
    for firing in firings_between(schedule.transitions(), "UTC", after, until):
        running += firing.at - previous if state else timedelta(0)
        state, previous = firing.action == "start", firing.at
    running += until - previous if state else timedelta(0)
    assert running == timedelta(minutes=sum(covered))
