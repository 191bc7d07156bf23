"""What a model shows of its schedule (`scheduleStatus`: running, next start, next stop) around the daylight-saving
changes of 2026 in Europe/Berlin (03-29 02:00 → 03:00, 10-25 03:00 → 02:00) and America/New_York (03-08 02:00 →
03:00, 11-01 02:00 → 01:00): a wall time the zone skips does not fire that day, one it shows twice fires at its
first occurrence (EventBridge Scheduler's rules, docs/schedules.md). Pure: instants are given, nothing waits."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chalicelib.contracts.schedules import ModelSchedule
from chalicelib.schedules import schedule_status

BERLIN, NEW_YORK = "Europe/Berlin", "America/New_York"


def daily(zone: str, start: str, stop: str) -> ModelSchedule:
    return ModelSchedule.model_validate({"timezone": zone, "daily": {"start": start, "stop": stop}})


CASES = [
    # (zone, window, now (UTC), running, next start, next stop)
    pytest.param(
        BERLIN,
        ("08:00", "20:00"),
        "2026-03-28T20:00Z",
        False,
        "2026-03-29T08:00+02:00",
        "2026-03-29T20:00+02:00",
        id="berlin-spring-the-next-day-is-summer-time",
    ),
    pytest.param(
        BERLIN,
        ("01:30", "02:30"),
        "2026-03-29T00:45Z",
        True,
        "2026-03-30T01:30+02:00",
        "2026-03-30T02:30+02:00",
        id="berlin-spring-a-stop-in-the-skipped-hour-runs-on-a-day",
    ),
    pytest.param(
        BERLIN,
        ("02:30", "07:00"),
        "2026-10-24T22:00Z",
        False,
        "2026-10-25T02:30+02:00",
        "2026-10-25T07:00+01:00",
        id="berlin-autumn-a-start-in-the-repeated-hour-fires-at-its-first",
    ),
    pytest.param(
        BERLIN,
        ("02:30", "07:00"),
        "2026-10-25T01:45Z",
        True,
        "2026-10-26T02:30+01:00",
        "2026-10-25T07:00+01:00",
        id="berlin-autumn-the-second-pass-does-not-start-it-again",
    ),
    pytest.param(
        NEW_YORK,
        ("02:30", "06:00"),
        "2026-03-07T17:00Z",
        False,
        "2026-03-09T02:30-04:00",
        "2026-03-08T06:00-04:00",
        id="new-york-spring-a-start-in-the-skipped-hour-waits-a-day",
    ),
    pytest.param(
        NEW_YORK,
        ("07:30", "19:00"),
        "2026-03-08T06:00Z",
        False,
        "2026-03-08T07:30-04:00",
        "2026-03-08T19:00-04:00",
        id="new-york-spring-the-day-of-the-change",
    ),
    pytest.param(
        NEW_YORK,
        ("01:30", "05:00"),
        "2026-11-01T04:00Z",
        False,
        "2026-11-01T01:30-04:00",
        "2026-11-01T05:00-05:00",
        id="new-york-autumn-a-start-in-the-repeated-hour-fires-at-its-first",
    ),
    pytest.param(
        NEW_YORK,
        ("01:30", "05:00"),
        "2026-11-01T06:45Z",
        True,
        "2026-11-02T01:30-05:00",
        "2026-11-01T05:00-05:00",
        id="new-york-autumn-running-through-the-repeated-hour",
    ),
]


@pytest.mark.parametrize(("zone", "window", "now", "running", "start", "stop"), CASES)
def test_next_start_and_stop_across_daylight_saving_changes(
    zone: str, window: tuple[str, str], now: str, running: bool, start: str, stop: str
) -> None:
    status = schedule_status(daily(zone, *window), datetime.fromisoformat(now))
    assert status.running is running
    assert status.next_start is not None
    assert status.next_stop is not None
    # in UTC: PEP 495 makes a time in a repeated hour unequal to any other zone's, the same instant included
    shown = (status.next_start.astimezone(UTC), status.next_stop.astimezone(UTC))
    assert shown == (datetime.fromisoformat(start).astimezone(UTC), datetime.fromisoformat(stop).astimezone(UTC))
    assert status.wire()["nextStart"] == datetime.fromisoformat(start).isoformat()  # shown with its own offset
    assert status.wire()["nextStop"] == datetime.fromisoformat(stop).isoformat()
