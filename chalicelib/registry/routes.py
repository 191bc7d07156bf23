"""Model registry API (mounted at /models). Thin: authenticate, validate, call the store, map its errors.

GET /models and GET /models/{modelId}: any authenticated caller; non-admins see only the serving limits of
containerConfig's environment (MAX_INPUT_LENGTH etc.), never the rest (it may hold credentials).
POST, PUT (body names the `version` it is based on; 409 if stale) and DELETE (optional `?version=`): admins only.
For a hosted model (no endpointUrl) POST, a PUT of what runs (enabled, scaling, containerConfig, instanceType) and
DELETE start the lifecycle workflow and answer 202 (chalicelib.lifecycle.service); `status` is never set by hand.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger
from chalice.app import BadRequestError

from chalicelib.apidocs.operations import ApiBlueprint, Link, Reply
from chalicelib.auth.routes import current_principal, lisa_authorizer, require_admin

if TYPE_CHECKING:
    from chalicelib.registry.models import DeletedModel, ModelChangeStarted, ModelRecord
    from chalicelib.registry.store import ModelStore

logger = Logger(child=True)

models_bp = ApiBlueprint(__name__)


def _store() -> ModelStore:
    from chalicelib.registry.store import ModelStore  # boto3 and yaml load on first use, not at cold start

    return ModelStore()


def _changed() -> None:
    """This process's data-plane cache sees a write at once (others within the registry TTL)."""
    from chalicelib.registry.resolver import get_registry

    get_registry().invalidate()


def _model_id(raw: str) -> str:
    from chalicelib.config import NAME_PATTERN

    if not NAME_PATTERN.match(raw):
        raise BadRequestError("modelId: must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return raw


_MODELS = "chalicelib.registry.models"
MODEL = f"{_MODELS}:ModelRecord"
STARTED = f"{_MODELS}:ModelChangeStarted"
_MODEL_ID = {"modelId": "$response.body#/modelId"}
_MODEL_LINKS = {
    "GetModel": Link("getModel", _MODEL_ID),
    "UpdateModel": Link("updateModel", _MODEL_ID),
    "DeleteModel": Link("deleteModel", _MODEL_ID),
}


def _public() -> bool:
    """Non-admins see records with only the public environment keys (ModelRecord's serializer)."""
    return not current_principal(models_bp.current_request).is_admin


@models_bp.operation(
    "/",
    "GET",
    operation_id="listRegisteredModels",  # listModels is the LISA-native data-plane operation
    authorizer=lisa_authorizer,
    responses={200: f"{_MODELS}:RegisteredModels"},
    tag="models",
)
def list_models() -> Reply:
    """Every registered model, by name."""
    from chalicelib.registry.models import RegisteredModels

    public = _public()
    return Reply(RegisteredModels(models=_store().list()), public=public)


@models_bp.operation(
    "/{modelId}", "GET", authorizer=lisa_authorizer, responses={200: MODEL}, errors=(404,), tag="models"
)
def get_model(modelId: str) -> Reply:
    """One model."""
    public = _public()
    return Reply(_store().get(_model_id(modelId)), public=public)


@models_bp.operation(
    "/",
    "POST",
    authorizer=lisa_authorizer,
    body=f"{_MODELS}:CreateModelRequest",
    responses={201: MODEL, 202: STARTED},
    errors=(403, 409, 503),
    links=_MODEL_LINKS,
    tag="models",
)
def create_model() -> ModelRecord | ModelChangeStarted:
    """Register a model (admin): with an endpointUrl it is InService at once (201); without, the create workflow
    hosts it (202, Creating); 409 if the name is taken."""
    from chalicelib.lifecycle.service import create_hosted
    from chalicelib.registry.models import CreateModelRequest

    admin = require_admin(models_bp.current_request)
    body = models_bp.body(CreateModelRequest)
    result = _store().create(body) if body.endpoint_url else create_hosted(body)
    _changed()
    logger.info("model created", model_id=body.model_name, hosted=not body.endpoint_url, by=admin.username)
    return result


@models_bp.operation(
    "/{modelId}",
    "PUT",
    authorizer=lisa_authorizer,
    body=f"{_MODELS}:UpdateModelRequest",
    responses={200: MODEL, 202: STARTED},
    errors=(403, 404, 409, 503),
    tag="models",
)
def update_model(modelId: str) -> ModelRecord | ModelChangeStarted:
    """Change a model (admin) based on the `version` in the body; 409 if it moved on since (or a workflow owns
    it). Metadata is written at once (200); enabled/scaling/container changes of a hosted model start the update
    workflow (202)."""
    from chalicelib.lifecycle.service import update
    from chalicelib.registry.models import UpdateModelRequest

    admin = require_admin(models_bp.current_request)
    model_id = _model_id(modelId)
    body = models_bp.body(UpdateModelRequest)
    result = update(model_id, body)
    _changed()
    logger.info("model updated", model_id=model_id, by=admin.username)
    return result


@models_bp.operation(
    "/{modelId}",
    "DELETE",
    authorizer=lisa_authorizer,
    query=f"{_MODELS}:VersionQuery",
    responses={200: f"{_MODELS}:DeletedModel", 202: STARTED},
    errors=(403, 404, 409, 503),
    tag="models",
)
def delete_model(modelId: str) -> DeletedModel | ModelChangeStarted:
    """Remove a model (admin; only at `?version=` when given): a hosted one through the delete workflow (202,
    Deleting: drained, its infrastructure removed, then the record), any other at once (200)."""
    from chalicelib.lifecycle.service import delete
    from chalicelib.registry.models import DeletedModel, ModelRecord, VersionQuery

    admin = require_admin(models_bp.current_request)
    model_id = _model_id(modelId)
    expected = models_bp.query(VersionQuery).version
    result = delete(model_id, expected)
    _changed()
    logger.info("model delete requested", model_id=model_id, by=admin.username)
    return result if not isinstance(result, ModelRecord) else DeletedModel(deleted=model_id, model=result)
