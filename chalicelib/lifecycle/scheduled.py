"""A fired schedule handed to the update workflow: the ClaimSchedule step (stepfunctions/model_lifecycle.json).

EventBridge Scheduler (or, locally, runner/schedule_firing.py in its place) starts the lifecycle state machine with
a `ScheduledAction`. ClaimSchedule claims the model exactly as `PUT /models/{id}` with `enabled` does
(`service.claim_update`) and turns the execution into that update, so a scheduled stop or start is the same
ApplyUpdate → WaitHealthy → Finish, with the same rollback. Delivery is at least once: the record keeps the last
transition taken (`lastScheduled`), and a repeated or older one is done already. A model a workflow owns right now
is asked again every poll interval, for up to the catch-up window; a model gone, unscheduled or not hosted is
skipped. See docs/schedules.md.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from chalicelib.contracts.lifecycle import ClaimOutcome, Previous, ScheduleClaim, TaskEvent
from chalicelib.contracts.schedules import AppliedTransition, ScheduledAction
from chalicelib.lifecycle.errors import TransientLifecycleError
from chalicelib.lifecycle.service import claim_update
from chalicelib.registry.errors import ModelConflict, ModelNotFound
from chalicelib.registry.models import BUSY_STATUSES, ModelRecord, ModelStatus, UpdateModelRequest
from chalicelib.registry.store import ModelStore
from chalicelib.settings import get_settings

WAIT_FOR_BUSY = timedelta(hours=1)  # as long as the local runner's catch-up: later, the transition is skipped
ATTEMPTS = 10  # lost claim races (a concurrent PUT) before the ASL's retry takes over


def _nothing_to_do(current: ModelRecord, fired: ScheduledAction) -> tuple[ClaimOutcome, str] | None:
    """Why this transition needs no workflow (None if it does)."""
    if current.hosting is None or current.source == "config":
        return "skipped", "the model is not hosted by the lifecycle workflows"
    if current.schedule is None:
        return "skipped", "the model has no schedule any more"
    last = current.last_scheduled
    if last is not None and last.scheduled_time >= fired.scheduled_time:
        same = (last.action, last.scheduled_time) == (fired.action, fired.scheduled_time)
        return ("done", "this transition was taken already") if same else ("skipped", "a later transition was taken")
    return None


def _attempt(store: ModelStore, fired: ScheduledAction) -> tuple[ClaimOutcome, str, Previous | None]:
    """One read and claim; ModelConflict when a concurrent write won."""
    try:
        current = store.get(fired.model_id)
    except ModelNotFound:
        return "skipped", "the model is gone", None
    verdict = _nothing_to_do(current, fired)
    if verdict is not None:
        return (*verdict, None)
    if current.status in BUSY_STATUSES:
        if time.time() > (fired.scheduled_time + WAIT_FOR_BUSY).timestamp():
            return "skipped", f"the model stayed {current.status.value} for {WAIT_FOR_BUSY}", None
        return "wait", f"the model is {current.status.value} ({current.status_step})", None
    applied = {"last_scheduled": AppliedTransition(action=fired.action, scheduled_time=fired.scheduled_time)}
    wanted = fired.action == "start"
    assert current.hosting is not None
    if current.hosting.enabled == wanted and current.status is not ModelStatus.FAILED:
        store.update(current.model_id, current.version, applied)
        return "done", f"the model is {current.status.value} already", None
    body = UpdateModelRequest(version=current.version, enabled=wanted)
    _, previous = claim_update(store, current, body, applied)
    return "claimed", f"scheduled {fired.action} ({fired.schedule_name or 'schedule'})", previous


def claim_schedule(event: dict[str, Any]) -> dict[str, Any]:
    """ClaimSchedule: claim the model for the fired start/stop (see the module docstring)."""
    task = TaskEvent.model_validate(event)
    fired = ScheduledAction.model_validate(task.request.get("scheduled") or task.request)
    store = ModelStore()
    for _ in range(ATTEMPTS):
        try:
            outcome, reason, previous = _attempt(store, fired)
        except ModelConflict:
            continue
        return ScheduleClaim(
            model_id=fired.model_id,
            poll_seconds=get_settings().model_poll_seconds,
            previous=previous,
            scheduled=fired.wire(),
            outcome=outcome,
            reason=reason,
        ).wire()
    raise TransientLifecycleError(f"model {fired.model_id!r} kept changing while a schedule claimed it")
