"""Model lifecycle end to end, locally: POST/PUT/DELETE /models on the real app, the real ASL
(stepfunctions/model_lifecycle.json) on moto's interpreter, ECS and ELB in moto, and the local ECS agent
(runner/ecs_agent.py) starting real CPU engines (the TGI worker on SmolLM2-135M-Instruct, the TEI worker).
Requests go through the router on the same port, as `make run` serves them."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from chalicelib.registry.models import CreateModelRequest, Hosting, ModelStatus
from chalicelib.registry.store import ModelStore
from cli.mirror import mirror_folder
from runner.ecs_agent import LocalEcs
from runner.stepfunctions_local import stage_local_folder
from testkit.workers import local_model_dirs
from tests.support.lifecycle import MINILM, SMOL, Admin, hosted, lifecycle, services, target_groups

pytestmark = pytest.mark.slow
__all__ = ["lifecycle"]  # the fixture, imported for the tests below


def test_create_serve_stop_start_delete(lifecycle: tuple[Admin, LocalEcs]) -> None:
    admin, agent = lifecycle
    mirror_folder(SMOL, local_model_dirs()[SMOL], in_place=True)  # uploaded, not staged: the workflow stages it

    status, started = admin.json("POST", "/models", hosted("smol-live"))
    assert status == 202, started
    assert (started["model"]["status"], started["model"]["hosting"]["enabled"]) == ("Creating", True)
    record = admin.settled("smol-live")
    assert record is not None
    assert (record["status"], record["statusStep"], record["statusReason"]) == ("InService", None, None), record
    steps = [event["step"] for event in record["history"]]
    assert steps[:4] == ["Queued", "Validate", "StageWeights", "CreateInfrastructure"], steps
    assert "WaitHealthy" in steps
    service = next(s for s in services() if s.endswith("smol-live"))
    assert agent.running(service) == 1
    answer = admin.chat("smol-live")
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"]

    status, stopping = admin.json("PUT", "/models/smol-live", {"version": record["version"], "enabled": False})
    assert (status, stopping["model"]["status"]) == (202, "Stopping"), stopping
    record = admin.settled("smol-live")
    assert record is not None, "the model disappeared"
    assert record["status"] == "Stopped", record
    assert agent.running(service) == 0
    refused = admin.chat("smol-live", expect=503, says="stopped")
    assert refused.status_code == 503
    assert refused.json()["error"]["message"] == "model 'smol-live' stopped"

    status, starting = admin.json("PUT", "/models/smol-live", {"version": record["version"], "enabled": True})
    assert (status, starting["model"]["status"]) == (202, "Starting"), starting
    record = admin.settled("smol-live")
    assert record is not None, "the model disappeared"
    assert record["status"] == "InService", record
    assert admin.chat("smol-live").status_code == 200

    status, deleting = admin.json("DELETE", "/models/smol-live")
    assert (status, deleting["model"]["status"]) == (202, "Deleting"), deleting
    assert admin.settled("smol-live") is None
    assert (services(), target_groups()) == ([], [])
    assert agent.running(service) == 0


def test_failures_roll_back_and_name_the_step(lifecycle: tuple[Admin, LocalEcs]) -> None:
    admin, agent = lifecycle
    # unknown engine: refused at the edge, naming the field; nothing is written
    status, reply = admin.json("POST", "/models", {**hosted("odd"), "inferenceContainer": "llamacpp"})
    assert (status, "inferenceContainer" in reply["Message"]) == (400, True), reply
    assert admin.json("GET", "/models/odd")[0] == 404

    # weights that are not staged (nothing uploaded either): StageWeights fails, nothing was created
    assert admin.json("POST", "/models", hosted("ghost", "nobody/missing"))[0] == 202
    record = admin.settled("ghost")
    assert record is not None
    assert (record["status"], record["statusStep"]) == ("Failed", "StageWeights"), record
    assert record["statusReason"].startswith("StageWeights failed: staging nobody/missing"), record
    assert (services(), target_groups()) == ([], [])

    # an engine that exits at start: WaitHealthy fails with its log, the service and its resources are removed
    staged = stage_local_folder(MINILM, local_model_dirs()[MINILM], registry_ids=(), in_place=True)
    assert staged.status == "SUCCEEDED", staged
    body = hosted("crashing", MINILM, "tei", MAX_BATCH_TOKENS="abc")
    assert admin.json("POST", "/models", body)[0] == 202
    record = admin.settled("crashing")
    assert record is not None
    assert (record["status"], record["statusStep"]) == ("Failed", "WaitHealthy"), record
    reason = record["statusReason"]
    assert reason.startswith("WaitHealthy failed: a task of lisa-dev-model-crashing stopped:"), reason
    assert "Essential container in task exited" in reason, reason
    assert "invalid literal for int()" in reason, reason  # the engine's own last words
    assert "rolled back: removed service, listener, target group, task definition" in reason, reason
    assert (services(), target_groups()) == ([], [])
    assert agent.running("lisa-dev-model-crashing") == 0

    # a failed model can be deleted (nothing left to drain)
    assert admin.json("DELETE", "/models/crashing")[0] == 202
    assert admin.settled("crashing") is None


def test_concurrent_update_and_delete_leave_one_consistent_record(lifecycle: tuple[Admin, LocalEcs]) -> None:
    admin, _ = lifecycle
    request = CreateModelRequest.model_validate(hosted("parked"))
    ModelStore().create(request, status=ModelStatus.STOPPED, hosting=Hosting(enabled=False))
    version = admin.json("GET", "/models/parked")[1]["version"]
    answers: dict[str, int] = {}
    barrier = threading.Barrier(2)

    def call(kind: str, method: str, path: str, body: Any = None) -> None:
        barrier.wait()
        answers[kind] = admin.call(method, path, body).status_code

    update = {"version": version, "scaling": {"minCapacity": 0, "maxCapacity": 2}}
    threads = [
        threading.Thread(target=call, args=("update", "PUT", "/models/parked", update)),
        threading.Thread(target=call, args=("delete", "DELETE", f"/models/parked?version={version}")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers.values()) == [202, 409], answers
    record = admin.settled("parked")
    if answers["delete"] == 202:
        assert record is None
    else:
        assert record is not None
        assert (record["status"], record["hosting"]["scaling"]["maxCapacity"]) == ("Stopped", 2), record
        assert admin.json("DELETE", "/models/parked")[0] == 202
        assert admin.settled("parked") is None
    assert (services(), target_groups()) == ([], [])
