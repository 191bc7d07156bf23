"""The staging API (POST/GET /models/{id}/stage, admins only) through the Chalice app and its real authorizer, and
`lisa models stage`, both driving the real workflow on moto's Step Functions interpreter."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chalice.test import Client
from typer.testing import CliRunner

from app import app
from chalicelib.auth.authorizer import get_authorizer
from chalicelib.auth.tokens import TokenStore
from chalicelib.registry.models import CreateModelRequest, ModelStatus
from chalicelib.registry.store import ModelStore
from cli.main import app as cli
from cli.mirror import mirror_folder
from runner.stepfunctions_local import LocalStepFunctions
from tests.support.staging import TINY_MODEL as MODEL


@pytest.fixture
def client(sfn: LocalStepFunctions) -> Iterator[Client]:
    get_authorizer().clear_cache()
    with Client(app) as test_client:
        yield test_client


def _caller(client: Client, admin: bool) -> Any:
    token, _ = TokenStore().create("root" if admin else "alice", is_admin=admin)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def call(method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        response = client.http.request(method, path, headers=headers, body=data)
        return response.status_code, response.json_body

    return call


@pytest.fixture
def registered() -> str:
    request = CreateModelRequest.model_validate({"modelName": "tiny", "hfModelId": MODEL, "inferenceContainer": "tgi"})
    return ModelStore().create(request).model_id


def _until_done(call: Any, path: str) -> dict[str, Any]:
    for _ in range(600):
        status, body = call("GET", path)
        assert status == 200, body
        if body["status"] != "RUNNING":
            return dict(body)
        time.sleep(0.2)
    raise AssertionError("staging did not finish")


def test_stage_through_the_api(client: Client, tiny: tuple[Any, Path], registered: str) -> None:
    admin, user = _caller(client, True), _caller(client, False)
    assert admin("GET", "/models/tiny/stage")[0] == 404  # never staged
    mirror_folder(MODEL, tiny[1])  # what `lisa models stage --from` uploads

    assert user("POST", "/models/tiny/stage", {})[0] == 403
    assert admin("POST", "/models/nope/stage", {})[0] == 404
    status, body = admin("POST", "/models/tiny/stage", {"force": "sometimes"})
    assert status == 400
    assert "force" in body["Message"]
    assert admin("POST", "/models/tiny/stage", b"{not json")[0] == 400

    status, started = admin("POST", "/models/tiny/stage")
    assert status == 202, started
    assert (started["modelId"], started["hfModelId"], started["status"]) == ("tiny", MODEL, "RUNNING")
    done = _until_done(admin, "/models/tiny/stage")
    assert done["executionArn"] == started["executionArn"]
    assert (done["status"], done["currentStep"], done["shardsTotal"], done["shardsDone"]) == (
        "SUCCEEDED",
        "Staged",
        3,
        3,
    )
    assert {f["name"] for f in done["manifest"]["files"]} >= {"model-00001-of-00003.safetensors", "config.json"}
    assert ModelStore().get("tiny").status == ModelStatus.IN_SERVICE
    assert user("GET", "/models/tiny/stage")[0] == 403


def test_api_failure_shows_step_and_reason(client: Client, registered: str) -> None:
    admin = _caller(client, True)
    status, _ = admin("POST", "/models/tiny/stage", {"source": {"kind": "s3", "prefix": "nothing/here/"}})
    assert status == 202
    done = _until_done(admin, "/models/tiny/stage")
    assert (done["status"], done["error"], done["failedStep"]) == ("FAILED", "SourceNotFound", "Resolve")
    assert "s3://lisa-models/nothing/here/" in done["reason"]
    record = ModelStore().get("tiny")
    assert record.status == ModelStatus.FAILED
    assert "SourceNotFound" in (record.status_reason or "")


def test_cli_stage_uploads_waits_and_reports(sfn: LocalStepFunctions, tiny: tuple[Any, Path], registered: str) -> None:
    models_dir = tiny[1].parents[1]
    result = CliRunner().invoke(cli, ["models", "stage", MODEL, "--from", str(models_dir)])
    assert result.exit_code == 0, result.output
    assert f"Staged {MODEL}: 3 shard(s)" in result.stdout
    assert ModelStore().get("tiny").status == ModelStatus.IN_SERVICE

    again = CliRunner().invoke(cli, ["models", "stage", MODEL, "--from", str(models_dir), "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout.strip().splitlines()[-1])["action"] == "skip"

    missing = CliRunner().invoke(cli, ["models", "stage", "lisa-test/absent", "--from", str(models_dir)])
    assert missing.exit_code == 1
    assert "SourceNotFound" in missing.output
    assert CliRunner().invoke(cli, ["models", "stage", MODEL, "--hub", "--prefix", "x/"]).exit_code == 2


def test_a_wildcard_state_machine_arn_is_made_concrete(sfn: LocalStepFunctions) -> None:
    """.chalice/config.json has `arn:aws:states:*:*:stateMachine:<name>`; StartExecution needs the real one."""
    from chalicelib.staging.service import concrete_arn

    region, account, _rest = sfn.state_machine_arn.split(":", 5)[3:]
    wildcard = sfn.state_machine_arn.replace(f":{region}:{account}:", ":*:*:")
    assert wildcard != sfn.state_machine_arn
    assert concrete_arn(wildcard) == sfn.state_machine_arn
    assert concrete_arn(sfn.state_machine_arn) == sfn.state_machine_arn
