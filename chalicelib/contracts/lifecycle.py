"""What the model lifecycle workflow's states pass each other (stepfunctions/model_lifecycle.json).

The execution's input is `LifecycleInput`; each task gets `{request: <the state so far>, step, executionName}`
(`TaskEvent`) and returns one of the results below, which the ASL stores at `$.validated`, `$.staging`,
`$.wait`, `$.health`, `$.removed`, `$.finished` or `$.failure`. camelCase, every field present.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

Action = Literal["create", "update", "delete"]


class _StateJson(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, alias_generator=to_camel)

    def wire(self) -> dict[str, Any]:
        """The JSON object the state returns (all fields, by alias)."""
        return self.model_dump(mode="json", by_alias=True)


class Previous(_StateJson):
    """What an update replaces, to put back if it fails: the record's fields and the service's state."""

    record: dict[str, Any] = Field(default_factory=dict)  # wire fields of the record before the PUT
    task_definition: str | None = None
    desired_count: int | None = None


class LifecycleInput(_StateJson):
    """The execution's input, written by chalicelib.lifecycle.service."""

    action: Action
    model_id: str
    poll_seconds: int = Field(ge=0)
    previous: Previous | None = None


class StagingProgress(_StateJson):
    """StageWeights / CheckStaging: done when the weights are staged (`executionArn`: the nested staging)."""

    done: bool
    execution_arn: str | None = None


class Waiting(_StateJson):
    """CreateInfrastructure / ApplyUpdate / Drain: what WaitHealthy waits for, until when (UNIX seconds)."""

    desired: int
    deadline: float
    since: float
    target_group_arn: str | None = None
    endpoint: str | None = None
    previous: Previous | None = None


class Health(_StateJson):
    """CheckHealth: `ready` when `desired` tasks serve (or none is left, for 0); the endpoint to record."""

    ready: bool
    healthy: int
    endpoint: str | None = None


class Finished(_StateJson):
    """Finish / RemoveInfrastructure: what the step did."""

    model_id: str
    outcome: str


class Failure(_StateJson):
    """RollBack: the Fail state's error and cause."""

    error: str
    reason: str


class TaskEvent(_StateJson):
    """Every task's event."""

    request: dict[str, Any]
    step: str = ""
    execution_name: str = ""
    error: dict[str, Any] | None = None

    def state(self) -> LifecycleInput:
        """The execution's own input fields."""
        return LifecycleInput.model_validate(self.request)

    def result(self, key: str, model: type[_StateJson]) -> Any:
        """An earlier state's result (`wait`, `health`, ...), or None."""
        value = self.request.get(key)
        return None if value is None else model.model_validate(value)


ClaimOutcome = Literal["claimed", "wait", "done", "skipped"]


class ScheduleClaim(_StateJson):
    """ClaimSchedule's result, which becomes the execution's state (`ResultPath: $`): for `claimed` an update's
    `LifecycleInput` (the ASL goes on to ApplyUpdate); `wait`: the model is busy, ask again after `pollSeconds`;
    `done` / `skipped`: nothing to do (`reason` says why). `scheduled` is the fired transition, kept for the next
    attempt."""

    action: Action = "update"
    model_id: str
    poll_seconds: int = Field(ge=0)
    previous: Previous | None = None
    scheduled: dict[str, Any]
    outcome: ClaimOutcome
    reason: str = ""
