"""Weight staging API (mounted at /models, admins only) and the workflow's Lambda task functions. Thin: the
logic is in `service` and `tasks`, which (with boto3, pydantic, torch) load on first use, not at cold start.

POST /models/{modelId}/stage   start staging the model's weights (`hfModelId` prefix) → 202 with the execution
GET  /models/{modelId}/stage   the latest staging: status, current step, shards done, failure reason, manifest
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from chalice.app import BadRequestError, NotFoundError

from chalicelib.apidocs.operations import ApiBlueprint, Link
from chalicelib.auth.routes import lisa_authorizer, require_admin
from chalicelib.staging import FUNCTIONS

if TYPE_CHECKING:
    from chalicelib.staging.models import ModelStagingStatus, StagingStarted

logger = Logger(child=True)

staging_bp = ApiBlueprint(__name__)


def _model_id(raw: str) -> str:
    from chalicelib.config import NAME_PATTERN

    if not NAME_PATTERN.match(raw):
        raise BadRequestError("modelId: must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return raw


def _hf_model_id(model_id: str) -> str:
    from chalicelib.registry.store import ModelStore

    return ModelStore().get(model_id).hf_model_id


_MODELS = "chalicelib.staging.models"


@staging_bp.operation(
    "/{modelId}/stage",
    "POST",
    authorizer=lisa_authorizer,
    body=f"{_MODELS}:StageModelRequest",
    body_required=False,
    responses={202: f"{_MODELS}:StagingStarted"},
    errors=(403, 404, 409, 503),
    links={"GetStaging": Link("getStaging", {"modelId": "$response.body#/modelId"})},
    tag="staging",
)
def start_staging(modelId: str) -> StagingStarted:
    """Stage a registered model's weights (admin); body (optional): {"source": {...}, "force": false}."""
    from chalicelib.staging.models import StageModelRequest, StagingStarted
    from chalicelib.staging.service import start_staging

    admin = require_admin(staging_bp.current_request)
    model_id = _model_id(modelId)
    body = staging_bp.body(StageModelRequest, default=b"{}")
    started = start_staging(_hf_model_id(model_id), model_ids=[model_id], source=body.source, force=body.force)
    logger.info("staging requested", model_id=model_id, execution=started.execution_name, by=admin.username)
    return StagingStarted.model_validate({**started.wire(), "modelId": model_id, "status": "RUNNING"})


@staging_bp.operation(
    "/{modelId}/stage",
    "GET",
    authorizer=lisa_authorizer,
    responses={200: f"{_MODELS}:ModelStagingStatus"},
    errors=(403, 404),
    tag="staging",
)
def get_staging(modelId: str) -> ModelStagingStatus:
    """The latest staging of a registered model's weights (admin); 404 if they were never staged."""
    from chalicelib.staging.models import ModelStagingStatus
    from chalicelib.staging.service import latest_status

    require_admin(staging_bp.current_request)
    model_id = _model_id(modelId)
    hf_model_id = _hf_model_id(model_id)
    status = latest_status(hf_model_id)
    if status is None:
        raise NotFoundError(f"the weights of {model_id!r} ({hf_model_id}) were never staged")
    return ModelStagingStatus.model_validate({"modelId": model_id, **status.wire()})


# -- the workflow's Lambda tasks (stepfunctions/staging.json; Resource ARNs from DefinitionSubstitutions) -------
@staging_bp.lambda_function(name=FUNCTIONS["FetchFromHubFunctionArn"])
def staging_fetch_from_hub(event: dict[str, Any], context: Any) -> Any:
    """FetchFromHub (hub.fetch_from_hub)."""
    from chalicelib.staging import hub

    return hub.fetch_from_hub(event)


@staging_bp.lambda_function(name=FUNCTIONS["ResolveFunctionArn"])
def staging_resolve(event: dict[str, Any], context: Any) -> Any:
    """Resolve (tasks.resolve)."""
    from chalicelib.staging import tasks

    return tasks.resolve(event)


@staging_bp.lambda_function(name=FUNCTIONS["ConvertShardFunctionArn"])
def staging_convert_shard(event: dict[str, Any], context: Any) -> Any:
    """ConvertShards' ConvertShard (tasks.convert_shard)."""
    from chalicelib.staging import tasks

    return tasks.convert_shard(event)


@staging_bp.lambda_function(name=FUNCTIONS["PublishFunctionArn"])
def staging_publish(event: dict[str, Any], context: Any) -> Any:
    """Publish (tasks.publish)."""
    from chalicelib.staging import tasks

    return tasks.publish(event)


@staging_bp.lambda_function(name=FUNCTIONS["MarkInServiceFunctionArn"])
def staging_mark_in_service(event: dict[str, Any], context: Any) -> Any:
    """MarkInService (tasks.mark_in_service)."""
    from chalicelib.staging import tasks

    return tasks.mark_in_service(event)


@staging_bp.lambda_function(name=FUNCTIONS["RecordFailureFunctionArn"])
def staging_record_failure(event: dict[str, Any], context: Any) -> Any:
    """RecordFailure (tasks.record_failure)."""
    from chalicelib.staging import tasks

    return tasks.record_failure(event)
