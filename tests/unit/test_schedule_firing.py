"""The runner's local schedule firing with a fake clock: each due transition once, across DST and restarts."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from chalicelib.contracts.schedules import ModelSchedule, ScheduledAction
from chalicelib.schedules.eventbridge import ScheduleTarget, StoredSchedule, schedule_specs
from chalicelib.schedules.timing import firings_between
from runner.schedule_firing import FiringJournal, ScheduleFiring

GROUP = "lisa-model-schedules"
TARGET = ScheduleTarget("arn:aws:states:us-east-1:123456789012:stateMachine:update", "arn:aws:iam::1:role/r")
NY_NIGHTS = {"timezone": "America/New_York", "daily": {"start": "02:30", "stop": "06:00"}}
BERLIN_WEEKEND = {
    "timezone": "Europe/Berlin",
    "weekly": [
        {"days": ["SAT"], "start": "22:00", "stop": "02:15"},
        {"days": ["SUN"], "start": "02:30", "stop": "09:00"},
    ],
}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Recorder:
    """The callback: what was fired, in order; `fail` makes the next calls for a model raise."""

    def __init__(self) -> None:
        self.fired: list[ScheduledAction] = []
        self.fail: set[str] = set()

    def __call__(self, action: ScheduledAction) -> None:
        if action.model_id in self.fail:
            raise RuntimeError("the update workflow is not reachable")
        self.fired.append(action)

    def seen(self) -> list[tuple[str, str, str]]:
        return [(a.model_id, a.action, a.scheduled_time.strftime("%Y-%m-%dT%H:%M")) for a in self.fired]


def stored(model_id: str, body: dict[str, Any], modified: datetime, *, enabled: bool = True) -> list[StoredSchedule]:
    """The schedules `sync_model_schedule` would store for the model, as moto gives them back."""
    specs = schedule_specs(model_id, ModelSchedule.model_validate(body))
    return [
        StoredSchedule.from_api(
            {
                **spec.request(GROUP, TARGET),
                "Arn": f"arn:aws:scheduler:us-east-1:123456789012:schedule/{GROUP}/{spec.name}",
                "LastModificationDate": modified,
                "State": "ENABLED" if enabled else "DISABLED",
            }
        )
        for spec in specs
    ]


def expected(model_id: str, body: dict[str, Any], after: datetime, until: datetime) -> list[tuple[str, str, str]]:
    schedule = ModelSchedule.model_validate(body)
    return [
        (model_id, f.action, f.at.strftime("%Y-%m-%dT%H:%M"))
        for f in firings_between(schedule.transitions(), schedule.timezone, after, until)
    ]


def run(firing: ScheduleFiring, clock: FakeClock, until: datetime, step: timedelta) -> None:
    while clock.now < until:
        clock.now = min(clock.now + step, until)
        firing.tick()


def test_across_spring_forward_it_fires_exactly_the_due_transitions_once() -> None:
    start, end = utc("2026-03-06T00:00"), utc("2026-03-31T00:00")
    schedules = stored("ny", NY_NIGHTS, start) + stored("berlin", BERLIN_WEEKEND, start)
    clock, fire = FakeClock(start), Recorder()
    firing = ScheduleFiring(fire, source=lambda: schedules, clock=clock)
    run(firing, clock, end, timedelta(minutes=37))  # ticks far apart and off the hour: all within the catch-up

    want = sorted(
        expected("ny", NY_NIGHTS, start, end) + expected("berlin", BERLIN_WEEKEND, start, end), key=lambda x: x[2]
    )
    assert sorted(fire.seen(), key=lambda x: x[2]) == want
    assert len(set(fire.seen())) == len(fire.seen())  # once each
    ny_march_8 = [s for s in fire.seen() if s[0] == "ny" and s[2].startswith("2026-03-08")]
    assert ny_march_8 == [("ny", "stop", "2026-03-08T10:00")]  # 02:30 did not exist: no start that night
    berlin_march_29 = [s for s in fire.seen() if s[0] == "berlin" and s[2].startswith("2026-03-2")][-2:]
    assert berlin_march_29 == [("berlin", "start", "2026-03-28T21:00"), ("berlin", "stop", "2026-03-29T07:00")]


def test_in_the_repeated_hour_it_fires_once() -> None:
    body = {"timezone": "America/New_York", "daily": {"start": "01:30", "stop": "01:50"}}
    start = utc("2026-11-01T04:00")
    clock, fire = FakeClock(start), Recorder()
    firing = ScheduleFiring(fire, source=lambda: stored("m", body, start), clock=clock)
    run(firing, clock, utc("2026-11-01T08:00"), timedelta(minutes=1))
    assert fire.seen() == [("m", "start", "2026-11-01T05:30"), ("m", "stop", "2026-11-01T05:50")]


def test_a_restart_neither_repeats_nor_misses_within_the_catch_up(tmp_path: Path) -> None:
    journal = tmp_path / "schedule-firing.json"
    created = utc("2026-06-01T00:00")
    body = {"timezone": "UTC", "daily": {"start": "08:00", "stop": "08:30"}}
    schedules = stored("m", body, created)
    clock, fire = FakeClock(created), Recorder()

    first = ScheduleFiring(fire, source=lambda: schedules, clock=clock, journal=journal)
    run(first, clock, utc("2026-06-01T08:10"), timedelta(minutes=5))
    assert fire.seen() == [("m", "start", "2026-06-01T08:00")]

    # restarted at once: the 08:00 start is in the catch-up window but was fired already
    clock.now = utc("2026-06-01T08:12")
    assert ScheduleFiring(fire, source=lambda: schedules, clock=clock, journal=journal).tick().fired == []

    # down from 08:12 to 09:10: the 08:30 stop is 40 minutes old, within the hour's catch-up: fired once, late
    clock.now = utc("2026-06-01T09:10")
    second = ScheduleFiring(fire, source=lambda: schedules, clock=clock, journal=journal)
    assert [a.action for a in second.tick().fired] == ["stop"]
    assert second.tick().fired == []

    # down from 09:10 to 09:05 the next day: 08:00 (65 minutes old) is past the catch-up, 08:30 is not
    clock.now = utc("2026-06-02T09:05")
    report = ScheduleFiring(fire, source=lambda: schedules, clock=clock, journal=journal).tick()
    assert [(a.action, a.scheduled_time) for a in report.missed] == [("start", utc("2026-06-02T08:00"))]
    assert [(a.action, a.scheduled_time) for a in report.fired] == [("stop", utc("2026-06-02T08:30"))]
    assert ScheduleFiring(fire, source=lambda: schedules, clock=clock, journal=journal).tick().missed == []
    assert fire.seen() == [
        ("m", "start", "2026-06-01T08:00"),
        ("m", "stop", "2026-06-01T08:30"),
        ("m", "stop", "2026-06-02T08:30"),
    ]


def test_a_failed_firing_is_retried_and_keeps_the_models_order() -> None:
    created = utc("2026-06-01T00:00")
    body = {"timezone": "UTC", "daily": {"start": "08:00", "stop": "08:05"}}
    schedules = stored("m", body, created) + stored("other", body, created)
    clock, fire = FakeClock(utc("2026-06-01T08:06")), Recorder()
    firing = ScheduleFiring(fire, source=lambda: schedules, clock=clock)
    fire.fail = {"m"}
    report = firing.tick()
    assert [(a.model_id, a.action) for a in report.failed] == [("m", "start")]  # its stop waits behind it
    assert fire.seen() == [("other", "start", "2026-06-01T08:00"), ("other", "stop", "2026-06-01T08:05")]
    fire.fail = set()
    clock.now = utc("2026-06-01T08:07")
    assert [(a.model_id, a.action) for a in firing.tick().fired] == [("m", "start"), ("m", "stop")]
    assert firing.tick().fired == []


def test_nothing_from_before_a_schedules_last_change_nor_from_a_disabled_one() -> None:
    body = {"timezone": "UTC", "daily": {"start": "08:00", "stop": "08:30"}}
    changed = utc("2026-06-01T08:10")  # after the 08:00 start, within the catch-up
    schedules = stored("m", body, changed) + stored("off", body, utc("2026-06-01T00:00"), enabled=False)
    clock, fire = FakeClock(utc("2026-06-01T08:40")), Recorder()
    ScheduleFiring(fire, source=lambda: schedules, clock=clock).tick()
    assert fire.seen() == [("m", "stop", "2026-06-01T08:30")]


def test_an_unreadable_journal_starts_afresh(tmp_path: Path) -> None:
    path = tmp_path / "journal.json"
    path.write_text("{not json")
    journal = FiringJournal(path)
    assert journal.last("arn") is None
    journal.record("arn", utc("2026-06-01T08:00"))
    assert FiringJournal(path).last("arn") == utc("2026-06-01T08:00")


def test_the_background_thread_ticks_and_stops() -> None:
    created = utc("2026-06-01T00:00")
    ticked = threading.Event()

    def fire(action: ScheduledAction) -> None:
        ticked.set()

    body = {"timezone": "UTC", "daily": {"start": "08:00", "stop": "09:00"}}
    clock = FakeClock(utc("2026-06-01T08:01"))
    firing = ScheduleFiring(fire, source=lambda: stored("m", body, created), clock=clock, interval=3600).start()
    try:
        assert ticked.wait(timeout=30)  # the first tick runs at start
    finally:
        firing.stop()


def test_a_catch_up_must_be_positive() -> None:
    with pytest.raises(ValueError, match="catch_up"):
        ScheduleFiring(Recorder(), source=list, catch_up=timedelta(0))
