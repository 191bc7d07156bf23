"""Wire shapes of the model registry (camelCase on the wire and in the table), validated at the edge.

A registry record's id is its `modelName` (unique); `hfModelId` is the Hugging Face `org/name` its weights come
from. `provider` is derived from the inference container (`ecs.textgen.vllm`, `ecs.textgen.tgi`,
`ecs.embedding.tei`, `ecs.embedding.instructor`) and must agree with `modelType`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    computed_field,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic.alias_generators import to_camel

from chalicelib.apidocs.operations import PUBLIC
from chalicelib.config import (
    MODEL_ID_PATTERN,
    NAME_PATTERN,
    PROVIDERS,
    ContainerConfig,
    InferenceContainer,
    ModelType,
    check_container_config,
    model_type_of,
)
from chalicelib.contracts.schedules import AppliedTransition, ModelSchedule, ScheduleStatus
from chalicelib.dynamo import dynamo_storable
from chalicelib.validation import QueryInt


class ModelStatus(StrEnum):
    """Where a model is in its life. The lifecycle workflows (chalicelib.lifecycle) write it, weight staging and
    `lisa models sync` for config.yaml models; an admin changes it only by asking a workflow (PUT enabled)."""

    CREATING = "Creating"
    IN_SERVICE = "InService"
    STARTING = "Starting"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    UPDATING = "Updating"
    DELETING = "Deleting"
    FAILED = "Failed"


BUSY_STATUSES = frozenset(
    {ModelStatus.CREATING, ModelStatus.STARTING, ModelStatus.STOPPING, ModelStatus.UPDATING, ModelStatus.DELETING}
)
"""A workflow owns the model in these: another change waits until it ends (409)."""
HISTORY_LENGTH = 50


PUBLIC_ENVIRONMENT_KEYS = frozenset(
    {
        "MAX_INPUT_LENGTH",
        "MAX_INPUT_TOKENS",
        "MAX_TOTAL_TOKENS",
        "MAX_CONCURRENT_REQUESTS",
        "MAX_BATCH_PREFILL_TOKENS",
        "MAX_BATCH_TOTAL_TOKENS",
        "MAX_BATCH_TOKENS",
        "MAX_CLIENT_BATCH_SIZE",
        "VLLM_MAX_MODEL_LEN",
        "VLLM_MAX_NUM_SEQS",
    }
)
"""Container environment keys every user may see: TGI/TEI/vLLM serving limits, never credentials."""

ModelSource = Literal["config", "api"]
"""Who manages a record: `lisa models sync` (config.yaml) or the admin API."""


def _name(value: str) -> str:
    if not NAME_PATTERN.match(value):
        raise ValueError("must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return value


def _hf_model_id(value: str) -> str:
    if not MODEL_ID_PATTERN.match(value):
        raise ValueError(f"must be 'org/name' (a Hugging Face model id), got {value!r}")
    return value


def _endpoint(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http(s) URL with a host, got {value!r}")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query or fragment")
    return value.rstrip("/")


ModelName = Annotated[str, AfterValidator(_name)]
HfModelId = Annotated[str, Field(max_length=200), AfterValidator(_hf_model_id)]
EndpointUrl = Annotated[str, Field(max_length=2048), AfterValidator(_endpoint)]
ModelKwargs = Annotated[dict[str, JsonValue], Field(max_length=64), AfterValidator(dynamo_storable)]
InstanceType = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9.\-]*$")]
StatusReason = Annotated[str, Field(max_length=2000)]
StepName = Annotated[str, Field(max_length=80)]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, alias_generator=to_camel)


class StatusEvent(_Wire):
    """One entry of a model's history: a status (and the workflow step it was in) from a moment on."""

    model_config = ConfigDict(frozen=True)

    at: str
    status: ModelStatus
    step: StepName | None = None
    reason: StatusReason | None = None


class Scaling(_Wire):
    """How many tasks a hosted model runs: `desiredCapacity` within `minCapacity`..`maxCapacity` (0 min: may stop)."""

    model_config = ConfigDict(frozen=True)

    min_capacity: int = Field(1, ge=0, le=100)
    max_capacity: int = Field(1, ge=1, le=100)
    desired_capacity: int | None = Field(None, ge=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> Scaling:
        if self.min_capacity > self.max_capacity:
            raise ValueError("minCapacity must not exceed maxCapacity")
        desired = self.desired_capacity
        if desired is not None and not self.min_capacity <= desired <= self.max_capacity:
            raise ValueError("desiredCapacity must be within minCapacity..maxCapacity")
        return self

    @property
    def running(self) -> int:
        """The task count of a started model (at least one)."""
        return max(1, self.desired_capacity if self.desired_capacity is not None else self.min_capacity)


class Hosting(_Wire):
    """What LISA runs for a hosted model (created through POST /models without an endpointUrl): whether it is
    enabled (started) and its scaling. The container is the record's containerConfig; the infrastructure is
    derived from both by chalicelib.lifecycle.infra (as the CDK stack derives config.yaml models')."""

    model_config = ConfigDict(frozen=True)

    enabled: bool = True
    scaling: Scaling = Field(default_factory=Scaling)


class ModelRecord(_Wire):
    """One registered model, exactly as stored and as the API returns it."""

    model_config = ConfigDict(frozen=True)

    model_id: ModelName
    model_name: ModelName
    hf_model_id: HfModelId
    provider: str = ""
    model_type: ModelType
    inference_container: InferenceContainer
    endpoint_url: EndpointUrl | None = None
    status: ModelStatus
    status_reason: StatusReason | None = None
    status_step: StepName | None = None
    history: list[StatusEvent] = Field(default_factory=list)
    streaming: bool
    default_model_kwargs: ModelKwargs = Field(default_factory=dict)
    container_config: ContainerConfig | None = None
    instance_type: InstanceType | None = None
    hosting: Hosting | None = None
    schedule: ModelSchedule | None = Field(
        None, description="when a hosted model runs (docs/schedules.md); EventBridge Scheduler starts and stops it"
    )
    last_scheduled: AppliedTransition | None = Field(
        None, description="the last scheduled start/stop the update workflow took (set by the workflow)"
    )
    source: ModelSource = "api"
    created_at: str
    updated_at: str
    version: int = Field(ge=1)

    @model_validator(mode="before")
    @classmethod
    def _derived_fields(cls, value: Any) -> Any:
        """A record as the API answered it reads back: `scheduleStatus` is computed, never stored."""
        if isinstance(value, dict) and "scheduleStatus" in value:
            return {k: v for k, v in value.items() if k != "scheduleStatus"}
        return value

    @computed_field(description="the schedule now: whether it means the model to run, its next start and stop")  # type: ignore[prop-decorator]
    @property
    def schedule_status(self) -> ScheduleStatus | None:
        """The schedule as shown with the model at this moment (None without a schedule)."""
        if self.schedule is None:
            return None
        from chalicelib.schedules.timing import schedule_status

        return schedule_status(self.schedule, datetime.now(UTC))

    @field_validator("history", mode="before")
    @classmethod
    def _recent(cls, value: Any) -> Any:
        """The newest HISTORY_LENGTH events (appends in DynamoDB may leave more)."""
        return value[-HISTORY_LENGTH:] if isinstance(value, list) else value

    @field_validator("container_config")
    @classmethod
    def _engine(cls, value: ContainerConfig | None, info: ValidationInfo) -> ContainerConfig | None:
        container = info.data.get("inference_container")
        if container is not None:
            check_container_config(container, value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ModelRecord:
        if self.model_id != self.model_name:
            raise ValueError("modelId must equal modelName")
        container, model_type = self.inference_container.value, self.model_type.value
        if model_type_of(self.inference_container) is not self.model_type:
            raise ValueError(f"inferenceContainer {container!r} cannot serve modelType {model_type!r}")
        provider = PROVIDERS[self.inference_container]
        if self.provider and self.provider != provider:
            raise ValueError(f"provider must be {provider!r} for inferenceContainer {container!r}")
        object.__setattr__(self, "provider", provider)  # derived; frozen models are set once here
        return self

    @property
    def display_name(self) -> str:
        """`name (provider)`: how LISA's UI and SDK name a model."""
        return f"{self.model_name} ({self.provider})"

    @property
    def is_available(self) -> bool:
        """True when requests can be sent to it: in service with a known endpoint."""
        return self.status is ModelStatus.IN_SERVICE and self.endpoint_url is not None

    @property
    def is_hosted(self) -> bool:
        """Whether LISA runs this model's infrastructure through the lifecycle workflows."""
        return self.hosting is not None

    @model_serializer(mode="wrap")
    def _for_caller(self, serialize: SerializerFunctionWrapHandler, info: SerializationInfo) -> dict[str, Any]:
        """For non-admins (`public` in the context): of containerConfig's environment (which may hold
        credentials) only the serving limits clients need (`PUBLIC_ENVIRONMENT_KEYS`, e.g. MAX_INPUT_LENGTH)."""
        data: dict[str, Any] = serialize(self)
        config = data.get("containerConfig")
        if isinstance(info.context, dict) and info.context.get(PUBLIC) and config is not None:
            config["environment"] = {k: v for k, v in config["environment"].items() if k in PUBLIC_ENVIRONMENT_KEYS}
        return data

    def wire(self) -> dict[str, Any]:
        """The API shape (camelCase, nulls included so clients see every field)."""
        return self.model_dump(mode="json", by_alias=True)

    def public_wire(self) -> dict[str, Any]:
        """The API shape for non-admins (see `_for_caller`)."""
        return self.model_dump(mode="json", by_alias=True, context={PUBLIC: True})


class CreateModelRequest(_Wire):
    """POST /models. `modelType` may be left out (the container implies it).

    With an `endpointUrl` (an OpenAI-compatible or TGI/TEI server running elsewhere) the model is registered
    `InService` at once. Without one it is hosted: `containerConfig` is required, `hosting` (enabled, scaling)
    defaults to one started task, and the create workflow stages the weights, creates the infrastructure and
    waits until it is healthy (`Creating` → `InService`, or `Failed` with the step and the reason)."""

    model_name: ModelName
    hf_model_id: HfModelId
    inference_container: InferenceContainer
    model_type: ModelType | None = None  # after inferenceContainer: its check reads it
    endpoint_url: EndpointUrl | None = None
    streaming: bool | None = None
    default_model_kwargs: ModelKwargs = Field(default_factory=dict)
    container_config: ContainerConfig | None = None
    instance_type: InstanceType | None = None
    hosting: Hosting | None = None

    @field_validator("model_type")
    @classmethod
    def _fits(cls, value: ModelType | None, info: ValidationInfo) -> ModelType | None:
        container = info.data.get("inference_container")
        if value is not None and container is not None and model_type_of(container) is not value:
            raise ValueError(f"inferenceContainer {container.value!r} cannot serve modelType {value.value!r}")
        return value

    @field_validator("container_config")
    @classmethod
    def _engine(cls, value: ContainerConfig | None, info: ValidationInfo) -> ContainerConfig | None:
        container = info.data.get("inference_container")
        if container is not None:
            check_container_config(container, value)
        return value

    def record_fields(self) -> dict[str, Any]:
        """The record's fields this request decides (python names)."""
        model_type = model_type_of(self.inference_container)
        return {
            "model_id": self.model_name,
            "model_name": self.model_name,
            "hf_model_id": self.hf_model_id,
            "model_type": model_type,
            "inference_container": self.inference_container,
            "endpoint_url": self.endpoint_url,
            "streaming": self.streaming if self.streaming is not None else model_type is ModelType.TEXTGEN,
            "default_model_kwargs": self.default_model_kwargs,
            "container_config": self.container_config,
            "instance_type": self.instance_type,
        }

    @model_validator(mode="after")
    def _hosted(self) -> CreateModelRequest:
        if self.endpoint_url is not None and self.hosting is not None:
            raise ValueError("hosting: give either an endpointUrl (a server running elsewhere) or hosting, not both")
        return self


LIFECYCLE_FIELDS = frozenset({"enabled", "scaling", "container_config", "instance_type"})
"""PUT fields that change what runs: for a hosted model they start the update workflow."""


class UpdateModelRequest(_Wire):
    """PUT /models/{modelId}: `version` is the version the change is based on (409 if the model moved on).

    A field left out keeps its value; `null` clears an optional one (endpointUrl, containerConfig, instanceType).
    The name cannot change, and neither can `status`: the lifecycle workflows own it. `enabled` starts or stops
    a model and `scaling` rescales it; for a hosted model these and containerConfig/instanceType start the update
    workflow (202), the other fields are metadata written at once (200). An endpoint-registered model is
    stopped and started at once (`Stopped` ⇄ `InService`).
    """

    version: int = Field(ge=1)
    hf_model_id: HfModelId | None = None
    model_type: ModelType | None = None
    inference_container: InferenceContainer | None = None
    endpoint_url: EndpointUrl | None = None
    streaming: bool | None = None
    default_model_kwargs: ModelKwargs | None = None
    container_config: ContainerConfig | None = None
    instance_type: InstanceType | None = None
    enabled: bool | None = None
    scaling: Scaling | None = None
    schedule: ModelSchedule | None = Field(
        None,
        description="a hosted model's schedule (its EventBridge schedules follow at once; null removes it); "
        "it starts and stops the model through the update workflow from its next transition on",
    )

    status: Any = Field(None, exclude=True, description="not settable: the lifecycle workflows own it")
    status_reason: Any = Field(None, exclude=True, description="not settable: the lifecycle workflows own it")

    @field_validator("status", "status_reason", mode="before")
    @classmethod
    def _workflows_own_it(cls, value: Any) -> Any:
        raise ValueError("set by the lifecycle workflows, not by PUT; use enabled (false: stop, true: start)")

    @field_validator(
        "hf_model_id",
        "model_type",
        "inference_container",
        "streaming",
        "default_model_kwargs",
        "enabled",
        "scaling",
        mode="before",
    )
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null (leave the field out to keep its value)")
        return value

    @model_validator(mode="after")
    def _something(self) -> UpdateModelRequest:
        if self.model_fields_set == {"version"}:
            raise ValueError("nothing to change: give at least one field besides version")
        return self

    def changes(self) -> dict[str, Any]:
        """The record fields to change at once (python names), explicit nulls included (not enabled/scaling)."""
        return {
            name: getattr(self, name) for name in self.model_fields_set if name not in ("version", "enabled", "scaling")
        }

    @property
    def lifecycle_changes(self) -> frozenset[str]:
        """The fields given that change what runs."""
        return frozenset(self.model_fields_set & LIFECYCLE_FIELDS)


# -- responses -----------------------------------------------------------------------------------------------------
class RegisteredModels(_Wire):
    """GET /models."""

    models: list[ModelRecord]


class DeletedModel(_Wire):
    """DELETE /models/{modelId}: the name and the record as it was."""

    deleted: str
    model: ModelRecord


class ModelChangeStarted(_Wire):
    """202 of POST/PUT/DELETE on a hosted model: the record as the workflow starts (Creating, Starting, Stopping,
    Updating or Deleting) and the execution doing it; follow it with GET /models/{modelId}."""

    model: ModelRecord
    execution_arn: str


class VersionQuery(_Wire):
    """DELETE /models/{modelId}?version=N: delete only while the model is at version N."""

    version: QueryInt | None = Field(None, ge=1)
