"""`chalice package --stage prod` (offline) → a template cfn-lint accepts, with least-privilege per-function roles;
the policy files under .chalice/ are the ones gpu_stack.policies renders (no drift)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chalicelib.config import load_config
from gpu_stack.functions import app_functions, state_machine_stems
from gpu_stack.names import resource_names
from gpu_stack.policies import UNSCOPED_DESCRIBE, access_for, policy_document, policy_file, render_chalice_config

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("chalice") / "prod"
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}
    env.pop("LISA_INGESTION_QUEUE", None)
    subprocess.run(
        [str(BIN / "chalice"), "package", "--stage", "prod", str(out)],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    template: dict[str, Any] = json.loads((out / "sam.json").read_text())
    template["_path"] = str(out / "sam.json")
    return template


def test_cfn_lint_accepts_the_prod_package(packaged: dict[str, Any]) -> None:
    result = subprocess.run(
        [str(BIN / "cfn-lint"), "--", packaged["_path"]], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_function_has_its_own_role_with_named_resources_only(packaged: dict[str, Any]) -> None:
    resources = packaged["Resources"]
    functions = [k for k, v in resources.items() if v["Type"] == "AWS::Serverless::Function"]
    assert len(functions) == len(app_functions(ROOT).all)
    roles = {v["Properties"]["Role"]["Fn::GetAtt"][0] for k, v in resources.items() if k in functions}
    assert len(roles) == len(functions)  # no shared default role
    for role in roles:
        for policy in resources[role]["Properties"]["Policies"]:
            for statement in policy["PolicyDocument"]["Statement"]:
                unscopable = set(statement["Action"]) <= set(UNSCOPED_DESCRIBE)  # ELB's Describe*: no resources
                assert unscopable or "*" not in statement["Resource"], f"{role}: {statement}"
                assert not any(a.endswith("*") for a in statement["Action"]), f"{role}: {statement}"
    authorizer = json.dumps(resources["LisaAuthorizerRole"])
    assert "table/lisa-prod-api-tokens" in authorizer
    assert "dynamodb:PutItem" not in authorizer


def test_prod_stage_names_the_prod_resources(packaged: dict[str, Any]) -> None:
    env = packaged["Resources"]["APIHandler"]["Properties"]["Environment"]["Variables"]
    assert env["LISA_STAGE"] == "prod"
    assert env["LISA_TOKENS_TABLE"] == "lisa-prod-api-tokens"
    assert env["POWERTOOLS_LOG_LEVEL"] == "INFO"
    queue = packaged["Resources"]["IngestDocuments"]["Properties"]["Events"]["IngestDocumentsSqsEventSource"]
    assert queue["Properties"]["Queue"]["Fn::Sub"].endswith(":lisa-prod-rag-ingestion")
    assert packaged["Resources"]["StagingConvertShard"]["Properties"]["MemorySize"] == 10240


def test_policy_files_are_what_the_renderer_makes(tmp_path: Path) -> None:
    shutil.copytree(ROOT / ".chalice", tmp_path / ".chalice", ignore=shutil.ignore_patterns("deployments"))
    config = load_config(ROOT / "config.yaml")
    stems = state_machine_stems(ROOT / "stepfunctions")
    stages = {s: resource_names(config.model_copy(update={"stage": s}), stems) for s in ("dev", "prod")}
    render_chalice_config(tmp_path, stages, app_functions(ROOT))
    for path in sorted((tmp_path / ".chalice").glob("*.json")):
        assert json.loads(path.read_text()) == json.loads((ROOT / ".chalice" / path.name).read_text()), (
            f".chalice/{path.name} is stale: run `python -m gpu_stack.policies`"
        )


def test_a_function_without_declared_access_is_refused() -> None:
    with pytest.raises(KeyError, match="no IAM access declared"):
        access_for("brand_new_function")
    names = resource_names(load_config(ROOT / "config.yaml"), ("staging",))
    document = policy_document("staging_publish", names)
    assert policy_file("prod", "staging_publish") == "policy-prod-staging_publish.json"
    sids = [s["Sid"] for s in document["Statement"]]
    assert "StateMachines" not in sids
    assert "IngestionQueue" not in sids


def _stepfunctions_actions_called(root: Path) -> set[str]:
    """Every Step Functions API the Lambda code calls (`_sfn().<op>(` or `_sfn().get_paginator("<op>")`)."""
    import re

    ops: set[str] = set()
    for path in (root / "chalicelib").rglob("*.py"):
        text = path.read_text()
        if 'client("stepfunctions")' not in text:
            continue
        ops |= set(re.findall(r"_sfn\(\)\.get_paginator\(\"(\w+)\"\)", text))
        ops |= {op for op in re.findall(r"_sfn\(\)\.(\w+)\(", text) if op != "get_paginator"}
    return {"states:" + "".join(word.capitalize() for word in op.split("_")) for op in ops}


def test_the_api_handler_may_call_every_step_functions_action_the_api_code_calls() -> None:
    called = _stepfunctions_actions_called(ROOT)
    assert {"states:StartExecution", "states:GetExecutionHistory"} <= called
    names = resource_names(load_config(ROOT / "config.yaml"), ("staging",))
    document = policy_document("api_handler", names)
    granted = {a for s in document["Statement"] for a in s["Action"] if a.startswith("states:")}
    assert called <= granted, f"not granted: {sorted(called - granted)}"
    for statement in document["Statement"]:
        if "states:GetExecutionHistory" in statement["Action"]:
            assert all(":execution:" in r for r in statement["Resource"]), statement
