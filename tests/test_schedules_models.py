"""A model's schedule through the API, against moto and the real ASL: set with PUT /models/{id}, stored with the
record, carried out by EventBridge Scheduler schedules (moto's), shown as the next start and stop, removed with
the model; fired by the local scheduler (runner/schedule_firing.py, the clock injected) into the update workflow.
No engine starts here: the scheduled stop is of a model whose service the workflow makes with no task."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

from chalicelib import aws
from chalicelib.contracts.schedules import ModelSchedule
from chalicelib.schedules import model_schedule_names, next_start, next_stop
from chalicelib.schedules.eventbridge import model_key
from runner.ecs_agent import CLUSTER
from runner.schedule_firing import LocalScheduler
from tests.support.lifecycle import Admin, hosted, lifecycle, park, scheduler, services

__all__ = ["lifecycle", "scheduler"]  # the fixtures

BERLIN_DAYS = {"timezone": "Europe/Berlin", "daily": {"start": "08:00", "stop": "20:00"}}


def schedule_arns(model_id: str) -> dict[str, str]:
    """name → target ARN of the model's EventBridge schedules."""
    client, group = aws.client("scheduler"), "lisa-model-schedules"
    return {
        name: client.get_schedule(Name=name, GroupName=group)["Target"]["Arn"]
        for name in model_schedule_names(model_id)
    }


def test_a_schedule_is_set_shown_replaced_and_removed_with_the_model(
    scheduler: tuple[Admin, LocalScheduler, list[datetime]],
) -> None:
    admin, _, _ = scheduler
    version = park("nightly", running=False)["version"]

    status, refused = admin.json(
        "PUT",
        "/models/nightly",
        {"version": version, "schedule": {"timezone": "Mars/Olympus", "daily": BERLIN_DAYS["daily"]}},
    )
    assert (status, "schedule.timezone" in refused["Message"]) == (400, True), refused
    assert "unknown IANA time zone 'Mars/Olympus'" in refused["Message"], refused
    assert admin.json("POST", "/models", {**hosted("by-url"), "endpointUrl": "http://127.0.0.1:9"})[0] == 201
    status, refused = admin.json("PUT", "/models/by-url", {"version": 1, "schedule": BERLIN_DAYS})
    assert (status, "only a hosted model can have a schedule" in refused["Message"]) == (409, True), refused
    assert model_schedule_names("nightly") == model_schedule_names("by-url") == []

    before = datetime.now(UTC)
    status, record = admin.json("PUT", "/models/nightly", {"version": version, "schedule": BERLIN_DAYS})
    assert status == 200, record
    assert record["schedule"] == {**BERLIN_DAYS, "weekly": None}
    schedule = ModelSchedule.model_validate(BERLIN_DAYS)
    shown = record["scheduleStatus"]
    assert shown["timezone"] == "Europe/Berlin"
    assert datetime.fromisoformat(shown["nextStart"]) == next_start(schedule, before)
    assert datetime.fromisoformat(shown["nextStop"]) == next_stop(schedule, before)
    lifecycle_arn = aws.client("stepfunctions").list_state_machines()["stateMachines"]
    target = next(m["stateMachineArn"] for m in lifecycle_arn if m["name"].endswith("model_lifecycle"))
    key = model_key("nightly")
    assert schedule_arns("nightly") == {f"{key}-start-0800": target, f"{key}-stop-2000": target}
    listed = {m["modelName"]: m for m in admin.json("GET", "/models")[1]["models"]}
    assert listed["nightly"]["scheduleStatus"] == shown
    assert listed["by-url"]["scheduleStatus"] is None

    weekdays = {"timezone": "America/New_York", "weekly": [{"days": ["MON", "FRI"], "start": "07:30", "stop": "19:00"}]}
    status, record = admin.json("PUT", "/models/nightly", {"version": record["version"], "schedule": weekdays})
    assert status == 200, record
    assert sorted(schedule_arns("nightly")) == [f"{key}-start-0730", f"{key}-stop-1900"]
    assert datetime.fromisoformat(record["scheduleStatus"]["nextStart"]).weekday() in (0, 4)

    stale = admin.json("PUT", "/models/nightly", {"version": version, "schedule": BERLIN_DAYS})
    assert stale[0] == 409, stale
    assert sorted(schedule_arns("nightly")) == [f"{key}-start-0730", f"{key}-stop-1900"]  # put back as stored

    status, record = admin.json("PUT", "/models/nightly", {"version": record["version"], "schedule": None})
    assert (status, record["schedule"], record["scheduleStatus"]) == (200, None, None), record
    assert model_schedule_names("nightly") == []

    status, record = admin.json("PUT", "/models/nightly", {"version": record["version"], "schedule": BERLIN_DAYS})
    assert (status, len(model_schedule_names("nightly"))) == (200, 2), record
    assert admin.json("DELETE", "/models/nightly")[0] == 202
    assert admin.settled("nightly") is None
    assert model_schedule_names("nightly") == []


def test_a_scheduled_stop_goes_through_the_update_workflow(
    scheduler: tuple[Admin, LocalScheduler, list[datetime]],
) -> None:
    admin, _, now = scheduler
    version = park("office-hours", running=True)["version"]
    made = datetime.now(UTC).replace(second=0, microsecond=0)
    start, stop = made + timedelta(minutes=30), made + timedelta(minutes=60)
    window = {"timezone": "UTC", "daily": {"start": f"{start:%H:%M}", "stop": f"{stop:%H:%M}"}}
    record = admin.json("PUT", "/models/office-hours", {"version": version, "schedule": window})[1]
    assert record["lastScheduled"] is None

    now[0] = made + timedelta(minutes=45)  # the start is due: the model runs already, so nothing to do
    record = admin.until("office-hours", lambda r: r["lastScheduled"] is not None)
    assert record["lastScheduled"] == {"action": "start", "scheduledTime": f"{start:%Y-%m-%dT%H:%M:%SZ}"}
    assert (record["status"], record["hosting"]["enabled"]) == ("InService", True)

    now[0] = made + timedelta(minutes=61)  # the stop: the same update workflow as PUT enabled=false
    record = admin.until("office-hours", lambda r: r["status"] == "Stopped")
    assert (record["status"], record["hosting"]["enabled"], record["statusReason"]) == ("Stopped", False, None)
    assert record["lastScheduled"] == {"action": "stop", "scheduledTime": f"{stop:%Y-%m-%dT%H:%M:%SZ}"}
    steps = [(e["status"], e["step"]) for e in record["history"]]
    assert steps[-4:] == [
        ("Stopping", "Queued"),
        ("Stopping", "ApplyUpdate"),
        ("Stopping", "WaitHealthy"),
        ("Stopped", None),
    ], steps
    ecs = aws.client("ecs")
    service = next(s for s in services() if s.endswith("office-hours"))
    assert ecs.describe_services(cluster=CLUSTER, services=[service])["services"][0]["desiredCount"] == 0

    # EventBridge delivers at least once: the same transition again changes nothing
    sfn = aws.client("stepfunctions")
    target = aws.client("scheduler").get_schedule(
        Name=f"{model_key('office-hours')}-stop-{stop:%H%M}", GroupName="lisa-model-schedules"
    )["Target"]["Arn"]
    again = {"modelId": "office-hours", "action": "stop", "scheduledTime": f"{stop:%Y-%m-%dT%H:%M:%SZ}"}
    execution = sfn.start_execution(stateMachineArn=target, name="redelivered", input=json.dumps(again))
    deadline = time.monotonic() + 60
    while (described := sfn.describe_execution(executionArn=execution["executionArn"]))["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert described["status"] == "SUCCEEDED", described
    assert json.loads(described["output"])["outcome"] == "done"
    assert admin.json("GET", "/models/office-hours")[1]["version"] == record["version"]

    assert admin.json("DELETE", "/models/office-hours")[0] == 202
    assert admin.settled("office-hours") is None
    assert model_schedule_names("office-hours") == []
