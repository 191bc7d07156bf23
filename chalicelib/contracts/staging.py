"""What the staging workflow's states pass each other (stepfunctions/staging.json), as typed contracts.

Each Lambda task validates its input with one of these models and returns `model.wire()`; the ASL only moves
these JSON objects between states (`$.plan`, `$.converted`, ...), so the field names and order are the wire:
camelCase, every field present (a missing origin is `null`). The execution's own input is
`chalicelib.staging.models.StagingInput`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

ShardKind = Literal["convert", "verify"]


class _StateJson(BaseModel):
    """The states' JSON: camelCase on the wire, snake_case in Python; nothing unknown (only LISA writes it)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, alias_generator=to_camel)

    def wire(self) -> dict[str, Any]:
        """The JSON object the state returns (all fields, by alias)."""
        return self.model_dump(mode="json", by_alias=True)


class FetchFromHubInput(_StateJson):
    """FetchFromHub's input: the execution's state so far (its input; the execution's name is not needed)."""

    model_config = ConfigDict(extra="ignore")

    request: dict[str, Any]  # validated by the task as StagingInput (a bad one is a recorded failure, not a crash)


class ResolveInput(FetchFromHubInput):
    """Resolve's input: the execution's state so far and the execution's name (it names the work prefix)."""

    execution_name: str


class PlanSource(_StateJson):
    """Where the weights are read from (after FetchFromHub: the mirror in S3)."""

    bucket: str
    prefix: str
    origin: str | None


class PlanShard(_StateJson):
    """One weights file to convert (or, if already safetensors, to verify), and the safetensors it becomes."""

    name: str
    key: str
    size: int
    kind: ShardKind
    target: str


class PlanFile(_StateJson):
    """A non-weight file (config, tokenizer, ...) copied as it is."""

    name: str
    key: str
    size: int


class StagingPlan(_StateJson):
    """Resolve's result (`$.plan`): what every later state follows. `skip`: already staged, nothing to do."""

    action: Literal["stage", "skip"]
    hf_model_id: str
    model_ids: list[str]
    bucket: str
    prefix: str
    work_prefix: str
    execution_name: str
    source: PlanSource
    source_fingerprint: str
    format: ShardKind
    shards: list[PlanShard]
    files: list[PlanFile]
    ignored: list[str]


class ConvertShardInput(_StateJson):
    """One ConvertShards Map iteration's input (the ASL's ItemSelector)."""

    shard: PlanShard
    source_bucket: str
    bucket: str
    prefix: str
    work_prefix: str


class ConvertedShard(_StateJson):
    """One ConvertShard result (an item of `$.converted`). `staged`: written to the work prefix (False: verified
    in place, already where it belongs)."""

    name: str
    size: int
    sha256: str
    tensors: int
    staged: bool


class PublishInput(_StateJson):
    """Publish's input: the plan and every shard's result."""

    plan: StagingPlan
    converted: list[ConvertedShard]


class Published(_StateJson):
    """Publish's result (`$.published`): files in the published model, their bytes, stale files removed."""

    files: int
    total_bytes: int = Field(alias="bytes")
    removed: int


class MarkInServiceInput(_StateJson):
    """MarkInService's input."""

    plan: StagingPlan


class MarkedInService(_StateJson):
    """MarkInService's result (`$.registry`): the registry records now InService."""

    in_service: list[str]


class FailureInput(_StateJson):
    """RecordFailure's input: the state when a step failed (any shape: the failure may precede the plan), the
    caught error (`{"Error", "Cause"}`), and the execution's name."""

    model_config = ConfigDict(extra="ignore")

    request: Any
    error: dict[str, Any] | None = None
    execution_name: str


class FailureRecord(_StateJson):
    """RecordFailure's result (`$.failure`): the Fail state's error and cause, and the records marked Failed."""

    error: str
    reason: str
    marked_failed: list[str]


class ManifestEntry(_StateJson):
    """One file of a published model."""

    name: str
    size: int
    sha256: str


class StagedManifest(_StateJson):
    """The manifest Publish writes last into the model's prefix: while it is there, the prefix is a valid model."""

    hf_model_id: str
    format: Literal["safetensors"]
    staged_at: str
    execution_name: str
    source: PlanSource
    source_fingerprint: str
    converted: bool
    files: list[ManifestEntry]
