"""Wire shapes of staging: the API's request body, the execution's input, and the status the API reports."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

S3Prefix = Annotated[str, Field(max_length=1024, pattern=r"^[^\x00-\x1f]*$")]
BucketName = Annotated[str, Field(min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.\-]*[a-z0-9]$")]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, alias_generator=to_camel)


class S3Source(_Wire):
    """Weights already in S3: any prefix (default bucket: the models bucket). The model's own prefix stages in
    place; `_uploads/<org>/<name>/` is where the CLI mirrors a local folder."""

    kind: Literal["s3"] = "s3"
    bucket: BucketName | None = None
    prefix: S3Prefix | None = None
    origin: Annotated[str, Field(max_length=1024)] | None = None  # where the files came from (for messages)


class HubSource(_Wire):
    """A Hugging Face hub repository (connected deployments only), mirrored to `_uploads/` first."""

    kind: Literal["hub"]
    revision: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[\w.\-/]+$")] = "main"


Source = Annotated[S3Source | HubSource, Field(discriminator="kind")]


class StageModelRequest(_Wire):
    """`POST /models/{modelId}/stage` body (all optional): where the weights are, and whether to redo a staged
    model. Without a source: what the CLI uploaded for the model, else the model's own prefix (in place)."""

    source: Source | None = None
    force: bool = False


class StagingInput(_Wire):
    """An execution's input. `hfModelId` is checked by the workflow itself, so a bad one is a recorded failure."""

    model_config = ConfigDict(extra="ignore")

    hf_model_id: str = Field(max_length=300)
    model_ids: list[str] = Field(default_factory=list, max_length=100)  # registry records to mark
    source: Source
    force: bool = False


class StagingStatus(_Wire):
    """What `GET /models/{modelId}/stage` answers."""

    model_config = ConfigDict(extra="forbid")

    hf_model_id: str
    execution_arn: str
    execution_name: str
    status: Literal["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "PENDING_REDRIVE"]
    current_step: str | None = None
    failed_step: str | None = None  # the state that failed (before RecordFailure)
    shards_total: int | None = None
    shards_done: int = 0
    action: str | None = None  # "stage" or "skip" (already staged) once resolved
    error: str | None = None
    reason: str | None = None
    started_at: str
    stopped_at: str | None = None
    manifest: dict[str, Any] | None = None

    def wire(self) -> dict[str, Any]:
        """The status as the API's JSON."""
        return self.model_dump(mode="json", by_alias=True)


class ModelStagingStatus(StagingStatus):
    """GET /models/{modelId}/stage: the latest staging of the model's weights."""

    model_id: str


class StagingStarted(_Wire):
    """POST /models/{modelId}/stage (202): the execution that stages the weights; poll GET .../stage."""

    model_config = ConfigDict(extra="forbid")

    execution_arn: str
    execution_name: str
    hf_model_id: str
    model_id: str
    status: Literal["RUNNING"]
