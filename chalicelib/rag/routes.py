"""RAG API (mounted at /repositories) and the ingestion queue's handler. Thin: authenticate, validate, call the
service, map its errors. Heavy modules (boto3, psycopg, pypdf, ...) load on first use, never at cold start.

GET    /repositories                                        repositories the caller may use
POST   /repositories                                        create one (admin)
GET    /repositories/{repositoryId}                         describe one
DELETE /repositories/{repositoryId}                         delete it with its documents and vectors (admin)
POST   /repositories/{repositoryId}/upload-url              presigned S3 PUT for `<repositoryId>/<filename>`
GET    /repositories/{repositoryId}/documents               documents and their ingestion status (?limit, ?nextToken)
GET    /repositories/{repositoryId}/documents/{documentId}  one document
DELETE /repositories/{repositoryId}/documents/{documentId}  delete it (its uploader or an admin)
POST   /repositories/{repositoryId}/search                  similarity search: {query, k, filter}

`ingest_documents` consumes the ingestion queue (S3 ObjectCreated/ObjectRemoved notifications of the docs bucket)
and answers with SQS partial batch failures. Its event source mapping must report batch item failures
(`FunctionResponseTypes: [ReportBatchItemFailures]`, set by the deployment stack; Chalice does not set it).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import wraps
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from chalice.app import BadRequestError, Blueprint, ChaliceViewError, Response, SQSEvent

from chalicelib.auth.routes import current_principal, lisa_authorizer
from chalicelib.rag.errors import RagError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from chalicelib.auth.principal import Principal
    from chalicelib.rag.service import RagService

    M = TypeVar("M", bound=BaseModel)

P = ParamSpec("P")
R = TypeVar("R")

rag_bp = Blueprint(__name__)

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,62}$")
_DOCUMENT_ID = re.compile(r"^[0-9a-f]{32}$")
_ERRORS: dict[int, type[ChaliceViewError]] = {}


def _view_error(status: int) -> type[ChaliceViewError]:
    """A Chalice error class answering `status` (Chalice only ships some statuses)."""
    if status not in _ERRORS:
        names = {400: "BadRequestError", 403: "ForbiddenError", 404: "NotFoundError", 409: "ConflictError"}
        names |= {422: "UnprocessableEntityError", 503: "ServiceUnavailableError"}
        _ERRORS[status] = type(names.get(status, "RagError"), (ChaliceViewError,), {"STATUS_CODE": status})
    return _ERRORS[status]


@contextmanager
def _rag_errors() -> Iterator[None]:
    try:
        yield
    except RagError as error:
        raise _view_error(error.status)(error.message) from None


def _mapped(view: Callable[P, R]) -> Callable[P, R]:
    @wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with _rag_errors():
            return view(*args, **kwargs)

    return wrapper


def _service() -> RagService:
    from chalicelib.rag.service import RagService

    return RagService()


def _principal() -> Principal:
    return current_principal(rag_bp.current_request)


def _parse(model: type[M]) -> M:
    from chalicelib.validation import parse_request

    return parse_request(model, rag_bp.current_request)


def _repository_id(raw: str) -> str:
    if not _ID.match(raw):
        raise BadRequestError("repositoryId: must be 1-63 letters, digits, '.', '_' or '-', starting with one")
    return raw


def _document_id(raw: str) -> str:
    if not _DOCUMENT_ID.match(raw):
        raise BadRequestError("documentId: must be 32 lowercase hex digits")
    return raw


def _view(record: Any, principal: Principal) -> dict[str, Any]:
    return dict(record.wire() if principal.is_admin else record.public_wire())


# -- repositories ------------------------------------------------------------------------------------------------
@rag_bp.route("/", methods=["GET"], authorizer=lisa_authorizer)
@_mapped
def list_repositories() -> dict[str, Any]:
    """The repositories the caller may use (admins: all, with connection details)."""
    principal = _principal()
    return {"repositories": [_view(r, principal) for r in _service().list_repositories(principal)]}


@rag_bp.route("/", methods=["POST"], authorizer=lisa_authorizer)
@_mapped
def create_repository() -> Response:
    """Create a repository (admin); 409 if the id is taken."""
    from chalicelib.rag.models import CreateRepositoryRequest

    principal = _principal()
    if not principal.is_admin:
        raise _view_error(403)(f"user {principal.username!r} is not an administrator; this needs the admin group")
    record = _service().create_repository(principal, _parse(CreateRepositoryRequest))
    return Response(status_code=201, body=record.wire())


@rag_bp.route("/{repositoryId}", methods=["GET"], authorizer=lisa_authorizer)
@_mapped
def get_repository(repositoryId: str) -> dict[str, Any]:
    principal = _principal()
    return _view(_service().repository(principal, _repository_id(repositoryId)), principal)


@rag_bp.route("/{repositoryId}", methods=["DELETE"], authorizer=lisa_authorizer)
@_mapped
def delete_repository(repositoryId: str) -> dict[str, Any]:
    """Delete a repository, its documents in S3, its vectors and its document list (admin)."""
    return _service().delete_repository(_principal(), _repository_id(repositoryId))


# -- documents ---------------------------------------------------------------------------------------------------
@rag_bp.route("/{repositoryId}/upload-url", methods=["POST"], authorizer=lisa_authorizer)
@_mapped
def upload_url(repositoryId: str) -> dict[str, Any]:
    """A presigned PUT into the docs bucket; the upload is ingested automatically (see its document's status)."""
    from chalicelib.rag.models import UploadUrlRequest

    request = _parse(UploadUrlRequest)
    return _service().upload_url(_principal(), _repository_id(repositoryId), request)


@rag_bp.route("/{repositoryId}/documents", methods=["GET"], authorizer=lisa_authorizer)
@_mapped
def list_documents(repositoryId: str) -> dict[str, Any]:
    from chalicelib.validation import query_int

    params: Mapping[str, str] = rag_bp.current_request.query_params or {}
    limit = query_int(params, "limit", 1, 1000, default=100)
    records, token = _service().list_documents(
        _principal(), _repository_id(repositoryId), limit, params.get("nextToken") or None
    )
    return {"documents": [r.wire() for r in records], "nextToken": token}


@rag_bp.route("/{repositoryId}/documents/{documentId}", methods=["GET"], authorizer=lisa_authorizer)
@_mapped
def get_document(repositoryId: str, documentId: str) -> dict[str, Any]:
    record = _service().document(_principal(), _repository_id(repositoryId), _document_id(documentId))
    return record.wire()


@rag_bp.route("/{repositoryId}/documents/{documentId}", methods=["DELETE"], authorizer=lisa_authorizer)
@_mapped
def delete_document(repositoryId: str, documentId: str) -> dict[str, Any]:
    """Delete the document's object, chunks and record (its uploader or an admin)."""
    result = _service().delete_document(_principal(), _repository_id(repositoryId), _document_id(documentId))
    return {"repositoryId": repositoryId, "documentId": documentId, "deleted": result.outcome == "deleted"}


# -- search ------------------------------------------------------------------------------------------------------
@rag_bp.route("/{repositoryId}/search", methods=["POST"], authorizer=lisa_authorizer)
@_mapped
def search(repositoryId: str) -> dict[str, Any]:
    """The `k` most similar chunks, best first, each with its score (cosine similarity) and source."""
    from chalicelib.rag.models import SearchRequest

    request = _parse(SearchRequest)
    hits = _service().search(_principal(), _repository_id(repositoryId), request)
    return {"repositoryId": repositoryId, "query": request.query, "results": [hit.wire() for hit in hits]}


# -- ingestion ---------------------------------------------------------------------------------------------------
# The queue's name is fixed when the app is packaged: the same variable and default as Settings.ingestion_queue
# (read directly: pydantic-settings costs ~150 ms of cold start).
INGESTION_QUEUE = os.environ.get("LISA_INGESTION_QUEUE", "lisa-rag-ingestion")


@rag_bp.on_sqs_message(queue=INGESTION_QUEUE, batch_size=10, name="ingest_documents")
def ingest_documents(event: SQSEvent) -> dict[str, Any]:
    """S3 notifications from the ingestion queue → documents ingested or removed (partial batch response)."""
    from chalicelib.rag.ingestion import handle_sqs_event

    return handle_sqs_event(event.to_dict(), event.context)
