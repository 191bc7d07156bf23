"""The API side of the lifecycle: claim a model for a workflow and start it (POST, PUT, DELETE /models).

Claiming is the registry write that moves the model into a busy status (Creating, Starting, Stopping, Updating,
Deleting), conditional on the version the caller read: of two concurrent changes one claims the model and the
other gets 409, so a model is never in two workflows at once. From the claim on, only the workflow writes its
status. Models registered by URL (an endpoint running elsewhere) and models from config.yaml need no workflow:
the first are written at once (stop/start is Stopped ⇄ InService), the second are refused (config.yaml owns them).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from aws_lambda_powertools import Logger

from chalicelib import aws
from chalicelib.contracts.lifecycle import Action, LifecycleInput, Previous
from chalicelib.errors import ServiceUnavailable
from chalicelib.registry.errors import InvalidModel, ModelConflict
from chalicelib.registry.models import (
    BUSY_STATUSES,
    CreateModelRequest,
    Hosting,
    ModelChangeStarted,
    ModelRecord,
    ModelStatus,
    UpdateModelRequest,
)
from chalicelib.registry.store import ModelStore
from chalicelib.schedules.eventbridge import sync_model_schedule
from chalicelib.settings import get_settings

logger = Logger(service="lisa-lifecycle")

T = TypeVar("T")
QUEUED = "Queued"  # the step of a claimed model until the workflow's first task runs


class LifecycleNotConfigured(ServiceUnavailable):
    """No lifecycle state machine here (LISA_MODEL_LIFECYCLE_STATE_MACHINE_ARN unset): hosted models cannot be
    created at run time (register an endpoint URL, or declare the model in config.yaml)."""


def _state_machine() -> str:
    from chalicelib.staging.service import concrete_arn

    arn = get_settings().model_lifecycle_state_machine_arn
    if not arn:
        raise LifecycleNotConfigured(
            "hosted models cannot be created here: LISA_MODEL_LIFECYCLE_STATE_MACHINE_ARN is not set"
            " (give an endpointUrl to register a running server)"
        )
    return concrete_arn(arn)


def _start(record: ModelRecord, action: Action, previous: Previous | None = None) -> str:
    """Start the workflow on a claimed model; if it cannot start, the model is Failed with the reason."""
    request = LifecycleInput(
        action=action, model_id=record.model_id, poll_seconds=get_settings().model_poll_seconds, previous=previous
    )
    name = f"{record.model_id}-{action}-{time.time_ns() // 1_000_000}"[:80]
    try:
        started = aws.client("stepfunctions").start_execution(
            stateMachineArn=_state_machine(), name=name, input=json.dumps(request.wire())
        )
    except Exception as error:
        failed = {
            "status": ModelStatus.FAILED,
            "status_step": QUEUED,
            "status_reason": f"{QUEUED} failed: the {action} workflow did not start: {error}"[:2000],
        }
        ModelStore().modify(record.model_id, lambda current: failed)
        raise
    logger.info("lifecycle started", model_id=record.model_id, action=action, execution=name)
    return str(started["executionArn"])


def create_hosted(request: CreateModelRequest) -> ModelChangeStarted:
    """POST /models without an endpointUrl: register the model Creating and start the create workflow."""
    if request.container_config is None:
        raise InvalidModel("containerConfig: required for a hosted model (one without an endpointUrl)")
    _state_machine()  # refuse before anything is written
    record = ModelStore().create(request, status_step=QUEUED, hosting=request.hosting or Hosting())
    return ModelChangeStarted(model=record, execution_arn=_start(record, "create"))


def _busy(record: ModelRecord) -> ModelConflict | None:
    if record.status in BUSY_STATUSES:
        step = f" ({record.status_step})" if record.status_step else ""
        return ModelConflict(
            f"model {record.model_id!r} is {record.status.value}{step}: wait until that ends, then retry",
            record.version,
        )
    return None


def _lifecycle_status(current: ModelRecord, hosting: Hosting) -> ModelStatus:
    if not hosting.enabled:
        return ModelStatus.STOPPING
    if current.status is ModelStatus.STOPPED or (current.hosting is not None and not current.hosting.enabled):
        return ModelStatus.STARTING
    return ModelStatus.UPDATING


def _hosting(current: Hosting, body: UpdateModelRequest) -> Hosting:
    enabled = body.enabled if body.enabled is not None else current.enabled
    return Hosting(enabled=enabled, scaling=body.scaling or current.scaling)


def _previous(current: ModelRecord) -> Previous:
    """What an update replaces: the settings the workflow writes back if it fails."""
    record: dict[str, Any] = {
        "hosting": current.hosting.model_dump(mode="json", by_alias=True) if current.hosting else None,
        "container_config": current.container_config.model_dump(mode="json", by_alias=True)
        if current.container_config
        else None,
        "instance_type": current.instance_type,
    }
    return Previous(record=record)


def claim_update(
    store: ModelStore, current: ModelRecord, body: UpdateModelRequest, extra: Mapping[str, Any] | None = None
) -> tuple[ModelRecord, Previous]:
    """The conditional write (on `body.version`) that hands a hosted model to the update workflow: the new
    settings, a busy status at step Queued (plus `extra` fields); with the settings to put back if it fails."""
    assert current.hosting is not None
    changes = body.changes()
    refused = {"hf_model_id", "inference_container", "model_type", "endpoint_url"} & set(changes)
    if refused:
        raise ModelConflict(f"cannot change {', '.join(sorted(refused))} of a hosted model: delete it and create it")
    hosting = _hosting(current.hosting, body)
    claim = {
        **changes,
        **(extra or {}),
        "hosting": hosting,
        "status": _lifecycle_status(current, hosting),
        "status_step": QUEUED,
        "status_reason": None,
    }
    return store.update(current.model_id, body.version, claim), _previous(current)


def _check_schedule(current: ModelRecord, body: UpdateModelRequest) -> None:
    """A schedule belongs to models the lifecycle workflows run (409 for the others)."""
    if "schedule" not in body.model_fields_set:
        return
    if current.source == "config":
        raise ModelConflict(f"model {current.model_id!r} is managed by config.yaml: it cannot have a schedule")
    if not current.is_hosted:
        raise ModelConflict(
            f"schedule: model {current.model_id!r} is registered by URL; only a hosted model can have a schedule"
        )


def _scheduled_write(store: ModelStore, model_id: str, body: UpdateModelRequest, write: Callable[[], T]) -> T:
    """`write()` the record; with a new schedule, EventBridge Scheduler is made to match it first (a refusal
    leaves the record as it was), and back to the stored record's if the write is refused (409)."""
    if "schedule" not in body.model_fields_set:
        return write()
    sync_model_schedule(model_id, body.schedule)
    try:
        return write()
    except Exception:
        try:
            sync_model_schedule(model_id, store.get(model_id).schedule)
        except Exception:  # the record is the truth; the next PUT or delete converges EventBridge again
            logger.exception("could not put the model's schedules back", model_id=model_id)
        raise


def update(model_id: str, body: UpdateModelRequest) -> ModelRecord | ModelChangeStarted:
    """PUT /models/{modelId}: metadata at once; for a hosted model a change of what runs starts the update
    workflow (the claim carries the new settings; the workflow puts the old ones back if it fails). A schedule
    is written with the record, its EventBridge schedules made to match at once."""
    store = ModelStore()
    current = store.get(model_id)
    changes = body.changes()
    lifecycle = body.lifecycle_changes
    if current.source == "config" and lifecycle & {"enabled", "scaling"}:
        raise ModelConflict(f"model {model_id!r} is managed by config.yaml: change it there and redeploy")
    _check_schedule(current, body)
    if not current.is_hosted:
        if "scaling" in lifecycle:
            raise ModelConflict(f"model {model_id!r} is registered by URL: LISA does not scale it")
        if body.enabled is not None:
            changes["status"] = ModelStatus.IN_SERVICE if body.enabled else ModelStatus.STOPPED
            changes["status_reason"] = None if body.enabled else "stopped by an administrator"
        return store.update(model_id, body.version, changes)
    conflict = _busy(current)
    if conflict is not None and lifecycle:
        raise conflict
    if not lifecycle:
        return _scheduled_write(store, model_id, body, lambda: store.update(model_id, body.version, changes))
    record, previous = _scheduled_write(store, model_id, body, lambda: claim_update(store, current, body))
    return ModelChangeStarted(model=record, execution_arn=_start(record, "update", previous))


def delete(model_id: str, expected_version: int | None) -> ModelRecord | ModelChangeStarted:
    """DELETE /models/{modelId}: a hosted model goes through the delete workflow (drain, remove); any other
    record is deleted at once."""
    store = ModelStore()
    current = store.get(model_id)
    if not current.is_hosted:
        return store.delete(model_id, expected_version=expected_version)
    conflict = _busy(current)
    if conflict is not None:
        raise conflict
    version = expected_version if expected_version is not None else current.version
    claim = {"status": ModelStatus.DELETING, "status_step": QUEUED, "status_reason": None}
    record = store.update(model_id, version, claim)
    return ModelChangeStarted(model=record, execution_arn=_start(record, "delete"))
