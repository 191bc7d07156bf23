"""A model's schedule as EventBridge Scheduler schedules, against moto: made to match, replaced, removed."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib import aws
from chalicelib.contracts.schedules import ModelSchedule
from chalicelib.errors import ServiceUnavailable
from chalicelib.schedules import (
    ScheduleTarget,
    delete_model_schedule,
    ensure_schedule_group,
    model_schedule_names,
    stored_schedules,
    sync_model_schedule,
)
from chalicelib.schedules.eventbridge import model_key
from runner.schedule_firing import ScheduleFiring

TARGET = ScheduleTarget(
    arn="arn:aws:states:us-east-1:123456789012:stateMachine:lisa-dev-model_update",
    role_arn="arn:aws:iam::123456789012:role/lisa-dev-model-schedules",
)
WORKDAYS = {
    "timezone": "Europe/Berlin",
    "weekly": [
        {"days": ["MON", "TUE", "WED", "THU", "FRI"], "start": "07:30", "stop": "19:00"},
        {"days": ["SUN"], "start": "22:00", "stop": "02:00"},
    ],
}


@pytest.fixture
def group(moto_server: str) -> str:
    """A schedule group of the test's own on the session's moto server (isolation without a reset)."""
    return ensure_schedule_group(f"test-{uuid.uuid4().hex[:12]}")


def schedules_of(model_id: str, group: str) -> dict[str, dict[str, object]]:
    scheduler = aws.client("scheduler")
    return {name: scheduler.get_schedule(Name=name, GroupName=group) for name in model_schedule_names(model_id, group)}


def test_the_schedules_made_match_the_windows(group: str) -> None:
    schedule = ModelSchedule.model_validate(WORKDAYS)
    names = sync_model_schedule("mistral-7b/instruct", schedule, target=TARGET, group=group)

    made = schedules_of("mistral-7b/instruct", group)
    assert sorted(names) == sorted(made)
    key = model_key("mistral-7b/instruct")
    assert {name: entry["ScheduleExpression"] for name, entry in made.items()} == {
        f"{key}-start-0730": "cron(30 7 ? * MON,TUE,WED,THU,FRI *)",
        f"{key}-stop-1900": "cron(0 19 ? * MON,TUE,WED,THU,FRI *)",
        f"{key}-start-2200": "cron(0 22 ? * SUN *)",
        f"{key}-stop-0200": "cron(0 2 ? * MON *)",
    }
    for name, entry in made.items():
        assert entry["ScheduleExpressionTimezone"] == "Europe/Berlin"
        assert entry["State"] == "ENABLED"
        assert entry["FlexibleTimeWindow"] == {"Mode": "OFF"}
        target = entry["Target"]
        assert (target["Arn"], target["RoleArn"]) == (TARGET.arn, TARGET.role_arn)
        assert json.loads(target["Input"]) == {
            "modelId": "mistral-7b/instruct",
            "action": name.split("-")[1],
            "scheduledTime": "<aws.scheduler.scheduled-time>",
            "scheduleName": name,
        }
    # read back as the local runner reads them, the stored schedules fire exactly the schedule's transitions
    stored = [s for s in stored_schedules(group) if s.name in made]
    assert sorted((t.action, t.weekday, t.minute) for s in stored for t in s.transitions()) == sorted(
        (t.action, t.weekday, t.minute) for t in schedule.transitions()
    )


def test_an_update_replaces_them_and_leaves_other_models_alone(group: str) -> None:
    sync_model_schedule("a", ModelSchedule.model_validate(WORKDAYS), target=TARGET, group=group)
    sync_model_schedule("b", ModelSchedule.model_validate(WORKDAYS), target=TARGET, group=group)
    evenings = {"timezone": "America/New_York", "daily": {"start": "07:30", "stop": "23:00"}}
    names = sync_model_schedule("a", ModelSchedule.model_validate(evenings), target=TARGET, group=group)

    made = schedules_of("a", group)
    key = model_key("a")
    assert sorted(made) == sorted(names) == [f"{key}-start-0730", f"{key}-stop-2300"]
    kept = made[f"{key}-start-0730"]  # the same name: updated in place, to the new zone and days
    assert kept["ScheduleExpression"] == "cron(30 7 ? * MON,TUE,WED,THU,FRI,SAT,SUN *)"
    assert kept["ScheduleExpressionTimezone"] == "America/New_York"
    assert len(schedules_of("b", group)) == 4
    assert (
        sync_model_schedule("a", ModelSchedule.model_validate(evenings), target=TARGET, group=group) == names
    )  # idempotent


def test_delete_removes_them(group: str) -> None:
    made = sync_model_schedule("a", ModelSchedule.model_validate(WORKDAYS), target=TARGET, group=group)
    sync_model_schedule("b", ModelSchedule.model_validate(WORKDAYS), target=TARGET, group=group)
    assert sorted(delete_model_schedule("a", group)) == sorted(made)
    assert model_schedule_names("a", group) == []
    assert delete_model_schedule("a", group) == []  # a retried delete step
    assert len(model_schedule_names("b", group)) == 4
    assert sync_model_schedule("b", None, group=group) == []  # no schedule: none left, no target needed
    assert model_schedule_names("b", group) == []


def test_a_deployment_without_a_target_refuses_clearly(group: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LISA_SCHEDULE_TARGET_ARN", raising=False)
    aws.reset()
    with pytest.raises(ServiceUnavailable, match="LISA_SCHEDULE_TARGET_ARN") as caught:
        sync_model_schedule("a", ModelSchedule.model_validate(WORKDAYS), group=group)
    assert caught.value.status == 503
    assert model_schedule_names("a", group) == []


def test_the_group_is_made_once(group: str) -> None:
    assert ensure_schedule_group(group) == group
    names = [g["Name"] for g in aws.client("scheduler").list_schedule_groups()["ScheduleGroups"]]
    assert names.count(group) == 1


def test_the_local_runner_fires_what_moto_stores(group: str) -> None:
    """sync → moto's Scheduler → the runner's firing: the callback gets the ScheduledAction EventBridge would send."""
    made = datetime.now(UTC).replace(second=0, microsecond=0)
    start, stop = made + timedelta(minutes=10), made + timedelta(minutes=20)
    body = {"timezone": "UTC", "daily": {"start": start.strftime("%H:%M"), "stop": stop.strftime("%H:%M")}}
    sync_model_schedule("qwen/0.5b", ModelSchedule.model_validate(body), target=TARGET, group=group)
    fired = []
    now = made + timedelta(minutes=5)
    firing = ScheduleFiring(fired.append, source=lambda: stored_schedules(group), clock=lambda: now)
    assert firing.tick().fired == []
    now = made + timedelta(minutes=25)
    firing.tick()
    assert [(a.model_id, a.action, a.scheduled_time) for a in fired] == [
        ("qwen/0.5b", "start", start),
        ("qwen/0.5b", "stop", stop),
    ]
    assert fired[0].schedule_name in model_schedule_names("qwen/0.5b", group)
    assert firing.tick().fired == []


def test_the_local_bootstrap_makes_the_deployments_group(moto_server: str) -> None:
    group = aws.client("scheduler").get_schedule_group(Name="lisa-model-schedules")
    assert group["State"] == "ACTIVE"
