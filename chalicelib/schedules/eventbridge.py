"""A model's schedule as EventBridge Scheduler schedules: made, replaced and removed so they match its windows.

Each (action, time of day) of a model's schedule is one schedule in the deployment's group (`Settings.schedule_group`):
a cron expression with the schedule's zone as `ScheduleExpressionTimezone`, named `<model key>-<action>-<HHMM>`
(the key is a hash of the model id: ids may hold characters a schedule name may not, and a hash prefix is unique per
model where a readable one is not). Its target is the update workflow (`Settings.schedule_target_arn`, started with
`Settings.schedule_role_arn`) and its input a `ScheduledAction` whose `scheduledTime` EventBridge fills in.
`sync_model_schedule` is idempotent: it creates what is missing, updates what exists, deletes what is no longer
wanted, so a retried workflow step or a repeated `PUT` converges.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from chalicelib import aws
from chalicelib.contracts.schedules import ModelSchedule, ScheduleAction, ScheduledAction, Transition
from chalicelib.errors import BadGateway, ServiceUnavailable
from chalicelib.schedules.cron import CronTime, cron_times, parse_cron
from chalicelib.settings import get_settings

SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"  # EventBridge Scheduler's context attribute, filled in at firing
SCHEDULE_ARN = "<aws.scheduler.schedule-arn>"


@dataclass(frozen=True)
class ScheduleTarget:
    """What a fired schedule starts (the update state machine, or a Lambda) and the role the scheduler uses."""

    arn: str
    role_arn: str

    @classmethod
    def from_settings(cls) -> ScheduleTarget:
        """The deployment's target; 503 when the deployment has none configured."""
        settings = get_settings()
        if not settings.schedule_target_arn or not settings.schedule_role_arn:
            raise ServiceUnavailable("model schedules are not configured (LISA_SCHEDULE_TARGET_ARN, _ROLE_ARN)")
        return cls(settings.schedule_target_arn, settings.schedule_role_arn)


def model_key(model_id: str) -> str:
    """The prefix of every schedule of `model_id` (16 hex digits of its SHA-256)."""
    return hashlib.sha256(model_id.encode()).hexdigest()[:16]


def target_input(model_id: str, action: ScheduleAction, name: str) -> str:
    """The target's input template: a `ScheduledAction` once EventBridge has filled in the scheduled time."""
    return json.dumps({"modelId": model_id, "action": action, "scheduledTime": SCHEDULED_TIME, "scheduleName": name})


@dataclass(frozen=True)
class ScheduleSpec:
    """One EventBridge schedule wanted for a model: a transition time of one action."""

    name: str
    model_id: str
    action: ScheduleAction
    time: CronTime
    timezone: str

    def request(self, group: str, target: ScheduleTarget) -> dict[str, Any]:
        """The CreateSchedule / UpdateSchedule request (UpdateSchedule replaces every field)."""
        hhmm = f"{self.time.minute // 60:02d}:{self.time.minute % 60:02d}"
        return {
            "Name": self.name,
            "GroupName": group,
            "Description": f"LISA model {self.model_id[:300]}: {self.action} at {hhmm} {self.timezone}",
            "ScheduleExpression": self.time.expression(),
            "ScheduleExpressionTimezone": self.timezone,
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "State": "ENABLED",
            "Target": {
                "Arn": target.arn,
                "RoleArn": target.role_arn,
                "Input": target_input(self.model_id, self.action, self.name),
            },
        }


def schedule_specs(model_id: str, schedule: ModelSchedule) -> list[ScheduleSpec]:
    """The EventBridge schedules that carry out `schedule` for `model_id`."""
    key = model_key(model_id)
    return [
        ScheduleSpec(
            f"{key}-{action}-{time.minute // 60:02d}{time.minute % 60:02d}", model_id, action, time, schedule.timezone
        )
        for (action, _), time in cron_times(schedule.transitions()).items()
    ]


def _group(group: str | None) -> str:
    return group or get_settings().schedule_group


def _refused(error: ClientError, what: str) -> BadGateway:
    code = error.response.get("Error", {}).get("Code", "error")
    return BadGateway(f"EventBridge Scheduler refused to {what}: {code}")


def model_schedule_names(model_id: str, group: str | None = None) -> list[str]:
    """The names of the EventBridge schedules `model_id` has now."""
    pages = aws.client("scheduler").get_paginator("list_schedules")
    try:
        listed = pages.paginate(GroupName=_group(group), NamePrefix=f"{model_key(model_id)}-")
        return sorted(entry["Name"] for page in listed for entry in page.get("Schedules", []))
    except ClientError as error:
        raise _refused(error, "list a model's schedules") from None


def sync_model_schedule(
    model_id: str,
    schedule: ModelSchedule | None,
    *,
    target: ScheduleTarget | None = None,
    group: str | None = None,
) -> list[str]:
    """Make `model_id`'s EventBridge schedules carry out `schedule` (None: remove them all); returns their names."""
    _apply(model_id, schedule, target, _group(group))
    return [spec.name for spec in schedule_specs(model_id, schedule)] if schedule is not None else []


def delete_model_schedule(model_id: str, group: str | None = None) -> list[str]:
    """Remove every EventBridge schedule of `model_id` (the delete workflow); returns the names removed."""
    return _apply(model_id, None, None, _group(group))


def _apply(model_id: str, schedule: ModelSchedule | None, target: ScheduleTarget | None, group: str) -> list[str]:
    """Create or update the wanted schedules, then delete the others; returns the names deleted."""
    wanted = schedule_specs(model_id, schedule) if schedule is not None else []
    requests = []
    if wanted:
        resolved = target or ScheduleTarget.from_settings()
        requests = [spec.request(group, resolved) for spec in wanted]
    existing = set(model_schedule_names(model_id, group))
    unwanted = sorted(existing - {spec.name for spec in wanted})
    scheduler = aws.client("scheduler")
    try:
        for request in requests:
            if request["Name"] in existing:
                scheduler.update_schedule(**request)
            else:
                _create(scheduler, request)
        for name in unwanted:
            _delete(scheduler, name, group)
    except ClientError as error:
        raise _refused(error, f"change the schedules of model {model_id[:100]!r}") from None
    return unwanted


def _create(scheduler: Any, request: dict[str, Any]) -> None:
    try:
        scheduler.create_schedule(**request)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ConflictException":
            raise
        scheduler.update_schedule(**request)  # made by a concurrent or retried sync since the listing


def _delete(scheduler: Any, name: str, group: str) -> None:
    try:
        scheduler.delete_schedule(Name=name, GroupName=group)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise


def ensure_schedule_group(group: str | None = None) -> str:
    """Create the schedule group if it is missing (locally: in AWS the stack makes it); returns its name."""
    group = _group(group)
    scheduler = aws.client("scheduler")
    try:
        scheduler.get_schedule_group(Name=group)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise _refused(error, "read the schedule group") from None
        scheduler.create_schedule_group(Name=group)
    return group


@dataclass(frozen=True)
class StoredSchedule:
    """An EventBridge schedule as stored: what the local runner fires in EventBridge's place."""

    name: str
    arn: str
    expression: str
    timezone: str
    input: str
    enabled: bool
    modified: datetime

    @classmethod
    def from_api(cls, schedule: dict[str, Any]) -> StoredSchedule:
        """From GetSchedule's answer (a CreateSchedule request with `Arn` and `LastModificationDate` reads too)."""
        return cls(
            name=schedule["Name"],
            arn=schedule["Arn"],
            expression=schedule["ScheduleExpression"],
            timezone=schedule.get("ScheduleExpressionTimezone") or "UTC",
            input=schedule["Target"].get("Input", "{}"),
            enabled=schedule.get("State", "ENABLED") == "ENABLED",
            modified=schedule["LastModificationDate"],
        )

    def transitions(self) -> list[Transition]:
        """The recurring transitions it fires; ValueError if it is not a schedule LISA made."""
        action = json.loads(self.input).get("action")
        if action not in ("start", "stop"):
            raise ValueError(f"schedule {self.name}: its input has no start/stop action")
        return parse_cron(self.expression).transitions(action)

    def action_at(self, at: datetime) -> ScheduledAction:
        """Its target input as EventBridge delivers it when firing at `at`."""
        scheduled = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # as EventBridge writes it
        text = self.input.replace(SCHEDULED_TIME, scheduled).replace(SCHEDULE_ARN, self.arn)
        return ScheduledAction.model_validate_json(text)


def stored_schedules(group: str | None = None) -> Iterator[StoredSchedule]:
    """Every schedule in the group, read in full (the listing omits targets)."""
    group = _group(group)
    scheduler = aws.client("scheduler")
    for page in scheduler.get_paginator("list_schedules").paginate(GroupName=group):
        for entry in page.get("Schedules", []):
            try:
                full = scheduler.get_schedule(Name=entry["Name"], GroupName=group)
            except ClientError as error:  # deleted between the listing and the read
                if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                    continue
                raise
            yield StoredSchedule.from_api(full)
