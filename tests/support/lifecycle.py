"""What the lifecycle and schedule tests share: an admin client of the local app + router, model bodies, the
lifecycle fixture (a clean moto with both state machines, the local ECS agent, the app and router on one port) and
the scheduler fixture (plus the local scheduler, on a clock the test moves)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from chalicelib import aws
from chalicelib.auth.tokens import TokenStore
from chalicelib.registry.models import CreateModelRequest, Hosting, ModelStatus
from chalicelib.registry.resolver import reset_registry
from chalicelib.registry.store import ModelStore
from runner.ecs_agent import CLUSTER, LocalEcs
from runner.schedule_firing import LocalScheduler
from runner.stepfunctions_local import LocalStepFunctions
from testkit.workers import TGI_ENVIRONMENT, local_model_dirs
from tests.support.control_plane import Client, control_plane_url

SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
BUSY = {"Creating", "Starting", "Stopping", "Updating", "Deleting"}


def hosted(name: str, hf_model_id: str = SMOL, container: str = "tgi", **environment: str) -> dict[str, Any]:
    """A POST /models body of a hosted model (the TGI worker's environment for tgi)."""
    return {
        "modelName": name,
        "hfModelId": hf_model_id,
        "inferenceContainer": container,
        "containerConfig": {
            "image": "ghcr.io/huggingface/text-generation-inference:3.3.4",
            "environment": {**(TGI_ENVIRONMENT if container == "tgi" else {}), **environment},
        },
    }


class Admin(Client):
    """An admin's calls, and waits on real progress (polling the record, never sleeping for a fixed time)."""

    def json(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """(status, JSON body) of one call."""
        response = self.call(method, path, body)
        return response.status_code, response.json()

    def settled(self, model: str, timeout: float = 300) -> dict[str, Any] | None:
        """The record once no workflow owns it (None once it is gone)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, record = self.json("GET", f"/models/{model}")
            if status == 404:
                return None
            assert status == 200, record
            if record["status"] not in BUSY:
                return dict(record)
            time.sleep(0.2)
        raise AssertionError(f"{model} still {record['status']} ({record.get('statusStep')})")

    def until(self, model: str, check: Callable[[dict[str, Any]], bool], timeout: float = 300) -> dict[str, Any]:
        """The record once `check(record)` holds (polling the API); the last one read after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            record = dict(self.json("GET", f"/models/{model}")[1])
            if check(record) or time.monotonic() > deadline:
                return record
            time.sleep(0.2)

    def chat(self, model: str, expect: int = 200, says: str = "", timeout: float = 30) -> requests.Response:
        """A chat answer from the router once its index has the model's current record: it refreshes in the
        background (stale-while-revalidate), so the first requests after a change may still see the old one."""
        body = {"model": model, "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 4}
        return self.answer("/v1/openai/chat/completions", body, expect, says, timeout)

    def embed(self, model: str, expect: int = 200, says: str = "", timeout: float = 30) -> requests.Response:
        """An embeddings answer, as `chat` waits for one."""
        return self.answer("/v1/openai/embeddings", {"model": model, "input": "hello"}, expect, says, timeout)

    def answer(self, path: str, body: Any, expect: int, says: str, timeout: float) -> requests.Response:
        """The router's answer once it is `expect` with `says` in it (or the last one after `timeout`)."""
        deadline = time.monotonic() + timeout
        while True:
            response = self.call("POST", path, body)
            if (response.status_code == expect and says in response.text) or time.monotonic() > deadline:
                return response
            time.sleep(0.2)


@pytest.fixture
def lifecycle(
    sfn: LocalStepFunctions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Admin, LocalEcs]]:
    """A clean moto with both state machines, the local ECS agent, and the app + router on one port."""
    monkeypatch.setenv("LISA_MODEL_POLL_SECONDS", "1")
    monkeypatch.setenv("LISA_REGISTRY_CACHE_TTL_SECONDS", "0")  # the router sees each workflow write at once
    aws.reset()
    reset_registry()
    agent = LocalEcs(tmp_path, local_model_dirs()[SMOL].parents[1]).start()
    token, _ = TokenStore().create("lifecycle-admin", is_admin=True)
    try:
        with control_plane_url(data_plane=True) as url:
            yield Admin(url, token), agent
    finally:
        sfn.wait_idle()
        agent.stop()
        reset_registry()


@pytest.fixture
def scheduler(
    lifecycle: tuple[Admin, LocalEcs], tmp_path: Path
) -> Iterator[tuple[Admin, LocalScheduler, list[datetime]]]:
    """The lifecycle fixture plus the local scheduler `make run` starts, on a clock the test moves (`now[0]`)."""
    admin, _ = lifecycle
    now = [datetime.now(UTC)]
    local = LocalScheduler(tmp_path, clock=lambda: now[0], interval=0.2).start()
    try:
        yield admin, local, now
    finally:
        local.stop()


def park(name: str, *, running: bool) -> dict[str, Any]:
    """A hosted model's record with no infrastructure yet: InService (enabled) or Stopped (disabled)."""
    status = ModelStatus.IN_SERVICE if running else ModelStatus.STOPPED
    request = CreateModelRequest.model_validate(hosted(name))
    return ModelStore().create(request, status=status, hosting=Hosting(enabled=running)).wire()


def services() -> list[str]:
    """The cluster's ACTIVE ECS services."""
    ecs = aws.client("ecs")
    arns = ecs.list_services(cluster=CLUSTER)["serviceArns"]
    described = ecs.describe_services(cluster=CLUSTER, services=arns)["services"] if arns else []
    return [s["serviceName"] for s in described if s["status"] == "ACTIVE"]


def target_groups() -> list[str]:
    """Every target group's name."""
    return [g["TargetGroupName"] for g in aws.client("elbv2").describe_target_groups()["TargetGroups"]]
