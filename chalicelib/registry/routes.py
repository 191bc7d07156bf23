"""Model registry API (mounted at /models). Thin: authenticate, validate, call the store, map its errors.

GET /models and GET /models/{modelId}: any authenticated caller; non-admins see only the serving limits of
containerConfig's environment (MAX_INPUT_LENGTH etc.), never the rest (it may hold credentials).
POST, PUT (body names the `version` it is based on; 409 if stale) and DELETE (optional `?version=`): admins only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from chalice.app import BadRequestError, Blueprint, ConflictError, NotFoundError, Response

from chalicelib.auth.routes import current_principal, lisa_authorizer, require_admin
from chalicelib.registry.errors import InvalidModel, ModelConflict, ModelNotFound

if TYPE_CHECKING:
    from chalicelib.registry.models import ModelRecord
    from chalicelib.registry.store import ModelStore

logger = Logger(child=True)

models_bp = Blueprint(__name__)


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


def _version_param() -> int | None:
    from chalicelib.validation import query_int

    return query_int(models_bp.current_request.query_params, "version", 1, 10**18)


@contextmanager
def _registry_errors() -> Iterator[None]:
    try:
        yield
    except ModelNotFound as error:
        raise NotFoundError(error.message) from None
    except ModelConflict as error:
        raise ConflictError(error.message) from None
    except InvalidModel as error:
        raise BadRequestError(error.message) from None


def _viewer() -> Callable[[ModelRecord], dict[str, Any]]:
    """How the caller may see records: whole for admins, with only the public environment keys otherwise."""
    if current_principal(models_bp.current_request).is_admin:
        return lambda record: record.wire()
    return lambda record: record.public_wire()


@models_bp.route("/", methods=["GET"], authorizer=lisa_authorizer)
def list_models() -> dict[str, Any]:
    """Every registered model, by name."""
    view = _viewer()
    return {"models": [view(record) for record in _store().list()]}


@models_bp.route("/{modelId}", methods=["GET"], authorizer=lisa_authorizer)
def get_model(modelId: str) -> dict[str, Any]:
    """One model."""
    view = _viewer()
    with _registry_errors():
        return view(_store().get(_model_id(modelId)))


@models_bp.route("/", methods=["POST"], authorizer=lisa_authorizer)
def create_model() -> Response:
    """Register a model (201); 409 if the name is taken."""
    from chalicelib.registry.models import CreateModelRequest
    from chalicelib.validation import parse_request

    admin = require_admin(models_bp.current_request)
    body = parse_request(CreateModelRequest, models_bp.current_request)
    with _registry_errors():
        record = _store().create(body)
    _changed()
    logger.info("model created", model_id=record.model_id, by=admin.username)
    return Response(status_code=201, body=record.wire())


@models_bp.route("/{modelId}", methods=["PUT"], authorizer=lisa_authorizer)
def update_model(modelId: str) -> dict[str, Any]:
    """Change a model based on the `version` in the body; 409 if it moved on since."""
    from chalicelib.registry.models import UpdateModelRequest
    from chalicelib.validation import parse_request

    admin = require_admin(models_bp.current_request)
    model_id = _model_id(modelId)
    body = parse_request(UpdateModelRequest, models_bp.current_request)
    with _registry_errors():
        record = _store().update(model_id, body.version, body.changes())
    _changed()
    logger.info("model updated", model_id=model_id, version=record.version, by=admin.username)
    return record.wire()


@models_bp.route("/{modelId}", methods=["DELETE"], authorizer=lisa_authorizer)
def delete_model(modelId: str) -> dict[str, Any]:
    """Remove a model (only at `?version=` when given)."""
    admin = require_admin(models_bp.current_request)
    model_id = _model_id(modelId)
    expected = _version_param()
    with _registry_errors():
        record = _store().delete(model_id, expected_version=expected)
    _changed()
    logger.info("model deleted", model_id=model_id, by=admin.username)
    return {"deleted": model_id, "model": record.wire()}
