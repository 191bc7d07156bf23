"""Start, follow and describe staging executions; mirror a local folder to the upload area. Used by the admin
API, the `lisa models stage` CLI and the local runner (the Lambda task handlers are in `tasks`)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from chalicelib import aws
from chalicelib.settings import get_settings
from chalicelib.staging.errors import StagingInProgress, StagingNotConfigured
from chalicelib.staging.layout import (
    MANIFEST,
    execution_name,
    execution_slug,
    model_prefix,
)
from chalicelib.staging.models import S3Source, Source, StagingInput, StagingStatus

logger = Logger(service="lisa-staging")

FINISHED = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


@dataclass(frozen=True)
class StartedExecution:
    """A staging execution just started (the API answers it, the CLI waits for it)."""

    execution_arn: str
    execution_name: str
    hf_model_id: str

    def wire(self) -> dict[str, str]:
        """The execution as JSON (camelCase)."""
        return {"executionArn": self.execution_arn, "executionName": self.execution_name, "hfModelId": self.hf_model_id}


def _sfn() -> Any:
    return aws.client("stepfunctions")


@cache
def _account_id() -> str:
    """This function's AWS account (STS GetCallerIdentity needs no IAM permission)."""
    return str(aws.client("sts").get_caller_identity()["Account"])


def concrete_arn(arn: str) -> str:
    """`arn` with a `*` (or empty) region / account filled in from this Lambda's own region and account:
    `.chalice/config.json` cannot know them, and StartExecution refuses a wildcard ARN."""
    parts = arn.split(":", 5)
    if len(parts) != 6:
        return arn
    if parts[3] in ("", "*"):
        parts[3] = get_settings().region
    if parts[4] in ("", "*"):
        parts[4] = _account_id()
    return ":".join(parts)


def _state_machine(arn: str | None = None) -> str:
    arn = arn or get_settings().staging_state_machine_arn
    if not arn:
        raise StagingNotConfigured("weight staging is not configured: LISA_STAGING_STATE_MACHINE_ARN is not set")
    return concrete_arn(arn)


def _executions(state_machine: str, slug: str, status: str | None = None) -> list[dict[str, Any]]:
    """This model's executions (by name prefix), newest first."""
    kwargs: dict[str, Any] = {"stateMachineArn": state_machine}
    if status:
        kwargs["statusFilter"] = status
    found = []
    for page in _sfn().get_paginator("list_executions").paginate(**kwargs):
        found += [e for e in page.get("executions", []) if str(e["name"]).startswith(slug + "-")]
    return sorted(found, key=lambda e: (e["startDate"], e["name"]), reverse=True)


def _input_of(execution_arn: str) -> tuple[dict[str, Any], dict[str, Any]]:
    described = _sfn().describe_execution(executionArn=execution_arn)
    try:
        data = json.loads(described.get("input") or "{}")
    except ValueError:
        data = {}
    return described, data if isinstance(data, dict) else {}


def start_staging(
    hf_model_id: str,
    *,
    model_ids: Iterable[str] = (),
    source: Source | None = None,
    force: bool = False,
    state_machine_arn: str | None = None,
) -> StartedExecution:
    """Start an execution staging `hf_model_id` (checked by the workflow: a bad id is a recorded failure).
    `model_ids`: registry records to mark Creating → InService/Failed. `StagingInProgress` if one is running."""
    state_machine = _state_machine(state_machine_arn)
    slug = execution_slug(hf_model_id)
    for running in _executions(state_machine, slug, "RUNNING"):
        if _input_of(running["executionArn"])[1].get("hfModelId") == hf_model_id:
            raise StagingInProgress(f"{hf_model_id} is being staged by execution {running['name']}; wait for it")
    request = StagingInput(hf_model_id=hf_model_id, model_ids=list(model_ids), source=source or S3Source(), force=force)
    name = execution_name(hf_model_id)
    try:
        started = _sfn().start_execution(
            stateMachineArn=state_machine,
            name=name,
            input=json.dumps(request.model_dump(mode="json", by_alias=True, exclude_none=True)),
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ExecutionAlreadyExists":
            raise StagingInProgress(f"{hf_model_id}: execution {name} exists already; retry") from None
        raise
    logger.info("staging started", hf_model_id=hf_model_id, execution=name, model_ids=request.model_ids)
    return StartedExecution(str(started["executionArn"]), name, hf_model_id)


def _history(execution_arn: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for page in _sfn().get_paginator("get_execution_history").paginate(executionArn=execution_arn):
        events += page.get("events", [])
    return events


def _iso(value: Any) -> str | None:
    return value.isoformat() if hasattr(value, "isoformat") else (str(value) if value else None)


def execution_status(execution_arn: str) -> StagingStatus:
    """Status, current step, shard progress and failure reason of one execution."""
    described, request = _input_of(execution_arn)
    current = failed_step = None
    total: int | None = None
    done, action = 0, None
    entered: list[str] = []
    for event in _history(execution_arn):
        kind = str(event.get("type", ""))
        if kind.endswith("StateEntered"):
            name = str(event.get("stateEnteredEventDetails", {}).get("name"))
            entered.append(name)
            current = name
        elif kind == "MapIterationSucceeded":
            done += 1
        elif kind == "TaskStateExited" and event.get("stateExitedEventDetails", {}).get("name") == "Resolve":
            try:
                plan = json.loads(event["stateExitedEventDetails"].get("output") or "{}").get("plan", {})
                total, action = len(plan.get("shards", [])), plan.get("action")
            except (ValueError, AttributeError):
                pass
    if "RecordFailure" in entered:
        before = entered[: entered.index("RecordFailure")]
        failed_step = before[-1] if before else None
    status = StagingStatus(
        hf_model_id=str(request.get("hfModelId", "")),
        execution_arn=execution_arn,
        execution_name=str(described["name"]),
        status=described["status"],
        current_step=current,
        failed_step=failed_step,
        shards_total=total,
        shards_done=done,
        action=action,
        error=described.get("error"),
        reason=described.get("cause"),
        started_at=_iso(described["startDate"]) or "",
        stopped_at=_iso(described.get("stopDate")),
    )
    if status.status == "SUCCEEDED":
        status.manifest = read_manifest(status.hf_model_id)
    return status


def latest_status(hf_model_id: str, state_machine_arn: str | None = None) -> StagingStatus | None:
    """The newest staging execution of `hf_model_id`, or None if it was never staged."""
    state_machine = _state_machine(state_machine_arn)
    for execution in _executions(state_machine, execution_slug(hf_model_id)):
        if _input_of(execution["executionArn"])[1].get("hfModelId") == hf_model_id:
            return execution_status(execution["executionArn"])
    return None


def registry_ids_for(hf_model_id: str) -> list[str]:
    """Registry records whose weights are `hf_model_id` (the ones a staging of it marks)."""
    from chalicelib.registry.store import ModelStore

    return [record.model_id for record in ModelStore().list() if record.hf_model_id == hf_model_id]


def read_manifest(hf_model_id: str) -> dict[str, Any] | None:
    """The manifest of a staged model, or None."""
    try:
        body = aws.client("s3").get_object(
            Bucket=get_settings().models_bucket, Key=model_prefix(hf_model_id) + MANIFEST
        )
    except ClientError:
        return None
    manifest: dict[str, Any] = json.loads(body["Body"].read())
    return manifest


def wait_for(
    execution_arn: str,
    on_progress: Callable[[StagingStatus], None] | None = None,
    poll_seconds: float = 0.5,
    timeout_seconds: float | None = None,
) -> StagingStatus:
    """Poll an execution until it ends (or `timeout_seconds` pass: TimeoutError); `on_progress` sees each poll."""
    deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
    while True:
        status = execution_status(execution_arn)
        if on_progress is not None:
            on_progress(status)
        if status.status in FINISHED:
            return status
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"staging execution {status.execution_name} still {status.status}")
        time.sleep(poll_seconds)
