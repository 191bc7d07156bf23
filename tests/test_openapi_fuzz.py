"""Schemathesis against a local stack of its own: every operation of /openapi.json, as an admin and as a plain user.

The stack is `runner.stack.LocalLisa` (what `make run` starts: moto, the real CPU workers, embedded PostgreSQL, one
front door) with the default config.yaml's models, their token limits cut down so that no generated request makes
the 135M model write for long. Each case must not be a server error, and its status code, content type and body
must be ones the document declares for that operation. Schemathesis is driven through its Python API (its pytest
plugin does not load on our pytest), derandomized so a run is reproducible.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.generation.case import Case
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.schemas import OpenApiSchema

from app import app
from chalicelib.apidocs.document import OPENAPI_PATH, build
from chalicelib.serve.routes import DATA_PLANE
from tests.support.configs import with_tgi_chat
from tests.support.stacks import own_aws
from workers.launch import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 50
# Staging copies weights into S3 and starts a state machine execution per accepted request: a few cases show the
# route conforms, fifty would only queue work that outlives the test.
FEWER_EXAMPLES = {"startStaging": 10}
DOCUMENTED = build(app, DATA_PLANE)
OPERATIONS = sorted(op["operationId"] for ops in DOCUMENTED["paths"].values() for op in ops.values())


@dataclass(frozen=True)
class Fuzzed:
    url: str
    keys: dict[str, str]  # role → API token
    document: dict[str, Any]  # GET /openapi.json
    schema: OpenApiSchema


def _config(tmp_path: Path) -> Path:
    """The default config (its chat model on the TGI worker: no vLLM to start) with short generations (the fuzzer
    picks max_new_tokens itself, the model caps it) and a per-user token limit the fuzzer never reaches."""
    config = with_tgi_chat()
    for entry in config["ecsModels"]:
        if entry["modelType"] == "textgen":
            entry["containerConfig"]["environment"] |= {"MAX_INPUT_LENGTH": 64, "MAX_TOTAL_TOKENS": 72}
            entry["defaultModelKwargs"]["max_new_tokens"] = 4
    # Hypothesis replays each stateful run: a create that answers 409 on replay (the user's token limit reached by
    # earlier runs) where it first answered 201 changes the steps it may take next (FlakyStrategyDefinition).
    config["authConfig"].setdefault("apiTokens", {})["maxPerUser"] = 1000
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    from runner.stack import LocalLisa, StackOptions

    state = tmp_path_factory.mktemp("fuzz-stack")
    with own_aws():
        stack = LocalLisa(StackOptions(port=free_port(), config_path=_config(state), state_dir=state, webui_dir=None))
        stack.start()
        try:
            created = requests.post(
                stack.url + "/tokens",
                headers={"Authorization": f"Bearer {stack.api_key}"},
                json={"username": "fuzz-user", "expiresIn": 3600},
                timeout=30,
            )
            assert created.status_code == 201, created.text
            # from_dict, not from_url: loaded from a URL, schemathesis leaves out the operation at that URL (here
            # getOpenApi: 45 of 46 operations); the live document is compared with the built one below.
            live = requests.get(stack.url + OPENAPI_PATH, timeout=30).json()
            keys = {"admin": stack.api_key, "user": created.json()["token"]}
            yield Fuzzed(stack.url, keys, live, schemathesis.openapi.from_dict(live))
        finally:
            stack.stop()


def _operation_ids(schema: OpenApiSchema) -> list[str]:
    results = list(schema.get_all_operations())
    assert all(isinstance(result, Ok) for result in results), results  # every operation loads
    return sorted(result.ok().definition.raw["operationId"] for result in results if isinstance(result, Ok))


def test_the_live_document_is_the_built_one_and_every_operation_is_fuzzed(fuzzed: Fuzzed) -> None:
    assert fuzzed.document == DOCUMENTED
    assert _operation_ids(fuzzed.schema) == OPERATIONS
    assert len(OPERATIONS) == len(set(OPERATIONS))


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _state_machine(fuzzed: Fuzzed, role: str) -> Any:
    headers = _auth(fuzzed.keys[role])
    schema = schemathesis.openapi.from_dict(fuzzed.document)
    # The document's links only: links schemathesis infers from list answers (GET /sessions → GET /sessions/{id})
    # draw from what the server holds now, which hypothesis' replay sees change (FlakyStrategyDefinition).
    schema.config.phases.stateful.inference.algorithms = []

    class Links(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Case[Any]) -> dict[str, Any]:
            return {"base_url": fuzzed.url, "headers": headers, "timeout": 60}

        def validate_response(self, response: Any, case: Case[Any], **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS, headers=headers, transport_kwargs=kwargs)

    return Links


@pytest.mark.parametrize("role", ["admin", "user"])
def test_linked_operations_conform(fuzzed: Fuzzed, role: str) -> None:
    """Create → read/update/delete by the links the document declares (sessions, tokens, models, repositories).
    Runs before the per-operation fuzzing below, on the stack's first state."""
    machine = _state_machine(fuzzed, role)
    declared = {
        name
        for ops in DOCUMENTED["paths"].values()
        for op in ops.values()
        for answer in op["responses"].values()
        for name in answer.get("links", {})
    }
    steps = [attribute for attribute in dir(machine) if "___" in attribute]  # one rule per link: <op>___<status>_<link>
    assert {name for name in declared if not any(f"_{name}__" in step for step in steps)} == set()
    machine.run(
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=6,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
    )


@pytest.mark.parametrize("role", ["admin", "user"])
@pytest.mark.parametrize("operation_id", OPERATIONS)
def test_every_response_conforms(fuzzed: Fuzzed, role: str, operation_id: str) -> None:
    operation = fuzzed.schema.find_operation_by_id(operation_id)
    headers = _auth(fuzzed.keys[role])
    strategy: st.SearchStrategy[Case[Any]] = operation.as_strategy(headers=headers)

    @given(case=strategy)
    @settings(
        max_examples=FEWER_EXAMPLES.get(operation_id, EXAMPLES),
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: Case[Any]) -> None:
        case.call_and_validate(base_url=fuzzed.url, headers=headers, checks=CHECKS, timeout=60)

    fuzz()
