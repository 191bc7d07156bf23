"""`lisa models update|scale|schedule` and `--wait` (issue 16 item 6) through Typer's CliRunner against the session
moto: the real lifecycle ASL on moto's interpreter with the local ECS agent for a hosted model (created stopped:
its service has no task, so no engine starts)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chalicelib import aws
from chalicelib.registry.models import CreateModelRequest, Hosting, ModelStatus
from chalicelib.registry.store import ModelStore
from cli.main import app
from runner.ecs_agent import LocalEcs
from runner.schedule_firing import LocalScheduler
from runner.stepfunctions_local import LocalStepFunctions

runner = CliRunner()


def lisa(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["models", *args])
    return result.exit_code, result.stdout, " ".join(result.stderr.split())


@pytest.fixture
def byo(aws_env: str, tmp_path: Path) -> ModelStore:
    """A model registered by URL."""
    spec = tmp_path / "byo.yaml"
    spec.write_text("modelName: byo\nhfModelId: org/byo\ninferenceContainer: tgi\nendpointUrl: http://10.0.0.9:8000\n")
    assert lisa("create", str(spec))[:2] == (0, "byo: InService\n")
    return ModelStore()


@pytest.fixture
def parked(sfn: LocalStepFunctions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModelStore]:
    """A hosted model, stopped, with the lifecycle workflow and the local ECS agent (polling every second)."""
    monkeypatch.setenv("LISA_MODEL_POLL_SECONDS", "1")
    aws.reset()
    agent = LocalEcs(tmp_path, tmp_path / "models").start()
    body = {
        "modelName": "parked",
        "hfModelId": "org/parked",
        "inferenceContainer": "tgi",
        "containerConfig": {"image": "tgi"},
    }
    ModelStore().create(
        CreateModelRequest.model_validate(body), status=ModelStatus.STOPPED, hosting=Hosting(enabled=False)
    )
    try:
        yield ModelStore()
    finally:
        sfn.wait_idle()
        agent.stop()


def test_update_writes_metadata_and_container_settings(byo: ModelStore, tmp_path: Path) -> None:
    code, out, err = lisa("update", "byo", "--endpoint-url", "http://10.0.0.10:8000/", "--no-streaming")
    assert (code, out) == (0, "byo: InService\n"), err
    record = byo.get("byo")
    assert (record.endpoint_url, record.streaming, record.version) == ("http://10.0.0.10:8000", False, 2)

    code, _, err = lisa("update", "byo", "--env", "MAX_TOTAL_TOKENS=2048")
    assert (code, "byo has no containerConfig yet: give --image" in err) == (2, True), err
    code, _, err = lisa(
        "update", "byo", "--image", "tgi:3", "--env", "MAX_INPUT_LENGTH=4096", "--env", "MAX_TOTAL_TOKENS=2048"
    )
    assert (code, "MAX_INPUT_LENGTH must be less than MAX_TOTAL_TOKENS" in err) == (2, True), err
    assert byo.get("byo").version == 2  # refused before anything was written

    assert lisa("update", "byo", "--image", "tgi:3", "--env", "MAX_TOTAL_TOKENS=2048", "--env", "A=1")[0] == 0
    assert lisa("update", "byo", "--unset-env", "A", "--shared-memory", "512")[0] == 0
    config = byo.get("byo").container_config
    assert config is not None
    assert (config.image, config.environment, config.shared_memory_size) == ("tgi:3", {"MAX_TOTAL_TOKENS": "2048"}, 512)

    spec = tmp_path / "put.json"
    spec.write_text(json.dumps({"status": "InService"}))
    code, _, err = lisa("update", "byo", "--from", str(spec))
    assert (code, "status: Value error, set by the lifecycle workflows" in err) == (2, True), err
    spec.write_text(json.dumps({"defaultModelKwargs": {"temperature": 0.2}}))
    assert lisa("update", "byo", "--from", str(spec))[0] == 0
    assert byo.get("byo").default_model_kwargs == {"temperature": 0.2}

    code, _, err = lisa("update", "byo")
    assert (code, "nothing to change" in err) == (2, True), err
    code, _, err = lisa("update", "ghost", "--no-streaming")
    assert (code, "model 'ghost' is not registered" in err) == (2, True), err

    code, _, err = lisa("scale", "byo", "--max", "2")
    assert (code, "model 'byo' is registered by URL: LISA does not scale it" in err) == (2, True), err
    code, _, err = lisa("scale", "byo")
    assert (code, "nothing to change: give --min, --max or --desired" in err) == (2, True), err
    assert lisa("schedule", "byo")[:2] == (0, "byo: no schedule\n")


def test_scale_and_delete_a_hosted_model_through_the_workflow(parked: ModelStore) -> None:
    code, _, err = lisa("scale", "parked", "--min", "4")
    assert (code, "scaling: Value error, minCapacity must not exceed maxCapacity" in err) == (2, True), err

    code, out, err = lisa("scale", "parked", "--max", "3", "--desired", "2", "--wait")
    assert code == 0, err
    first, last = out.splitlines()
    assert first.startswith("parked: Stopping (workflow parked-update-"), out  # a stopped model stays stopped
    assert last == "parked: Stopped", out
    record = parked.get("parked")
    assert record.hosting is not None
    assert (record.hosting.scaling.max_capacity, record.hosting.scaling.desired_capacity) == (3, 2)
    assert (record.status, record.hosting.enabled) == (ModelStatus.STOPPED, False)

    code, out, err = lisa("delete", "parked", "--wait")
    assert code == 0, err
    assert out.splitlines()[0].startswith("parked: Deleting (workflow parked-delete-"), out
    assert out.splitlines()[-1] == "parked: deleted", out
    assert parked.list() == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--daily", "08:00-20:00"], "--timezone is required"),
        (["-z", "Mars/Olympus", "--daily", "08:00-20:00"], "unknown IANA time zone 'Mars/Olympus'"),
        (["-z", "UTC", "--daily", "8-20"], "must be a time of day HH:MM"),
        (["-z", "UTC", "--daily", "0800"], "--daily must be START-STOP"),
        (
            ["-z", "UTC", "--weekly", "MON-FRI@08:00-20:00", "--weekly", "FRI@19:00-22:00"],
            "weekly.1 overlaps or touches",
        ),
        (["-z", "UTC", "--weekly", "MONDAY@08:00-20:00"], "'MONDAY' is not a day"),
        (["-z", "UTC", "--weekly", "08:00-20:00"], "--weekly must be DAYS@START-STOP"),
        (["-z", "UTC", "--daily", "08:00-20:00", "--clear"], "give --clear or a schedule, not both"),
    ],
)
def test_schedule_refuses_a_bad_schedule_with_its_reason(args: list[str], message: str) -> None:
    code, _, err = lisa("schedule", "byo", *args)  # refused before any AWS call
    assert (code, message in err) == (2, True), err


def test_schedule_sets_shows_and_clears_a_schedule(parked: ModelStore, tmp_path: Path) -> None:
    local = LocalScheduler(tmp_path).start()  # points the schedules at the lifecycle workflow, as `make run` does
    try:
        _set_show_and_clear()
    finally:
        local.stop()


def _set_show_and_clear() -> None:
    code, out, err = lisa("schedule", "parked", "-z", "Europe/Berlin", "--weekly", "FRI-MON@22:00-02:00")
    assert code == 0, err
    # the days in week order, as the API stores them
    assert out.splitlines()[-1].startswith("parked: MON,FRI,SAT,SUN 22:00-02:00 (Europe/Berlin); now meant "), out
    assert ("next start 20" in out, "next stop 20" in out) == (True, True), out
    assert lisa("schedule", "parked")[1] == out.splitlines()[-1] + "\n"
    assert lisa("schedule", "parked", "--clear")[1].splitlines()[-1] == "parked: no schedule"
    assert lisa("schedule", "parked")[1] == "parked: no schedule\n"
