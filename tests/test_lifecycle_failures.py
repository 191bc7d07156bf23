"""Lifecycle failures with real engines (the local ECS agent running the TEI worker on all-MiniLM-L6-v2, the
quickest engine): the health wait times out; an update whose engine will not start rolls back to the previous task
definition and task count and ends Failed with the step; then the model's schedule stops and starts it through the
same update workflow (the local scheduler, its clock moved by the test)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib import aws
from chalicelib.lifecycle.infra import SPEC_LABEL
from runner.ecs_agent import CLUSTER, LocalEcs
from runner.schedule_firing import LocalScheduler
from runner.stepfunctions_local import stage_local_folder
from testkit.workers import local_model_dirs
from tests.support.lifecycle import MINILM, Admin, hosted, lifecycle, scheduler, services, target_groups

pytestmark = pytest.mark.slow
__all__ = ["lifecycle", "scheduler"]  # the fixtures


@pytest.fixture
def staged_minilm(lifecycle: tuple[Admin, LocalEcs]) -> None:
    staged = stage_local_folder(MINILM, local_model_dirs()[MINILM], registry_ids=(), in_place=True)
    assert staged.status == "SUCCEEDED", staged


def service_state(name: str) -> tuple[str, int, dict[str, Any]]:
    """(task definition ARN, desired count, the model container's spec) of the model's ECS service."""
    ecs = aws.client("ecs")
    service = ecs.describe_services(cluster=CLUSTER, services=[f"lisa-dev-model-{name}"])["services"][0]
    definition = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
    model = next(c for c in definition["containerDefinitions"] if c["name"] == "model")
    return service["taskDefinition"], service["desiredCount"], json.loads(model["dockerLabels"][SPEC_LABEL])


def test_the_health_wait_times_out_and_rolls_back(
    lifecycle: tuple[Admin, LocalEcs], staged_minilm: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin, agent = lifecycle
    monkeypatch.setenv("LISA_MODEL_HEALTH_TIMEOUT_SECONDS", "1")  # the engine takes longer than that to load
    aws.reset()
    assert admin.json("POST", "/models", hosted("impatient", MINILM, "tei"))[0] == 202
    record = admin.settled("impatient")
    assert record is not None
    assert (record["status"], record["statusStep"]) == ("Failed", "WaitHealthy"), record
    reason = record["statusReason"]
    assert reason.startswith("WaitHealthy failed: lisa-dev-model-impatient: not 1 healthy task(s), have 0 within 1s")
    assert "rolled back: removed service, listener, target group, task definition" in reason, reason
    assert (services(), target_groups()) == ([], [])
    assert admin.until("impatient", lambda _: agent.running("lisa-dev-model-impatient") == 0, 30)


def test_a_failed_update_rolls_back_then_the_schedule_stops_and_starts_it(
    scheduler: tuple[Admin, LocalScheduler, list[datetime]], staged_minilm: None, lifecycle: tuple[Admin, LocalEcs]
) -> None:
    admin, _, now = scheduler
    _, agent = lifecycle
    service = "lisa-dev-model-embedder"
    assert admin.json("POST", "/models", hosted("embedder", MINILM, "tei"))[0] == 202
    record = admin.settled("embedder")
    assert record is not None
    assert record["status"] == "InService", record
    definition, desired, spec = service_state("embedder")
    assert (desired, agent.running(service)) == (1, 1)

    broken = {**record["containerConfig"], "environment": {"MAX_BATCH_TOKENS": "abc"}}  # the engine exits at start
    status, updating = admin.json("PUT", "/models/embedder", {"version": record["version"], "containerConfig": broken})
    assert (status, updating["model"]["status"]) == (202, "Updating"), updating
    record = admin.settled("embedder")
    assert record is not None
    assert (record["status"], record["statusStep"]) == ("Failed", "WaitHealthy"), record
    reason = record["statusReason"]
    assert reason.startswith("WaitHealthy failed: a task of lisa-dev-model-embedder stopped:"), reason
    assert "invalid literal for int()" in reason, reason
    assert reason.endswith("(rolled back to the previous settings)"), reason
    assert record["containerConfig"]["environment"] == {}
    rolled_back, desired, restored = service_state("embedder")
    assert rolled_back != definition  # a new deployment ...
    assert (restored, desired) == (spec, 1)  # ... of the previous task definition, at the previous count
    assert admin.until("embedder", lambda _: agent.running(service) == 1, 120)

    made = datetime.now(UTC).replace(second=0, microsecond=0)
    stop, start = made + timedelta(minutes=30), made + timedelta(minutes=60)  # runs from `start` until `stop`
    window = {"timezone": "UTC", "daily": {"start": f"{start:%H:%M}", "stop": f"{stop:%H:%M}"}}
    record = admin.json("PUT", "/models/embedder", {"version": record["version"], "schedule": window})[1]
    assert record["scheduleStatus"]["running"] is True  # yesterday's window (from `start`) lasts until `stop`

    now[0] = made + timedelta(minutes=31)  # the stop: Failed → Stopping → Stopped, the engine stopped
    record = admin.until("embedder", lambda r: r["status"] == "Stopped")
    assert (record["status"], record["hosting"]["enabled"]) == ("Stopped", False), record
    assert agent.running(service) == 0
    refused = admin.embed("embedder", expect=503, says="model_stopped")
    assert (refused.status_code, refused.json()["error"]["code"]) == (503, "model_stopped"), refused.text

    now[0] = made + timedelta(minutes=61)  # the start: Starting → InService, the engine runs again
    record = admin.until("embedder", lambda r: r["status"] == "InService")
    assert (record["status"], record["hosting"]["enabled"]) == ("InService", True), record
    assert [e["status"] for e in record["history"][-4:]] == ["Starting", "Starting", "Starting", "InService"]
    assert (service_state("embedder")[1], agent.running(service)) == (1, 1)
    embedded = admin.embed("embedder")
    assert embedded.status_code == 200, embedded.text
    assert len(embedded.json()["data"][0]["embedding"]) == 384

    assert admin.json("DELETE", "/models/embedder")[0] == 202
    assert admin.settled("embedder") is None
    assert (services(), target_groups()) == ([], [])
