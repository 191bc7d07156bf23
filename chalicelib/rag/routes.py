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
from typing import TYPE_CHECKING, Any

from chalice.app import BadRequestError, SQSEvent

from chalicelib.apidocs.operations import ApiBlueprint, Link, Reply
from chalicelib.auth.routes import current_principal, lisa_authorizer
from chalicelib.rag.errors import Forbidden

if TYPE_CHECKING:
    from chalicelib.auth.principal import Principal
    from chalicelib.rag.models import (
        DocumentDeleted,
        DocumentList,
        DocumentRecord,
        RepositoryDeleted,
        RepositoryRecord,
        SearchResults,
        UploadUrl,
    )
    from chalicelib.rag.service import RagService


rag_bp = ApiBlueprint(__name__)

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,62}$")
_DOCUMENT_ID = re.compile(r"^[0-9a-f]{32}$")


def _service() -> RagService:
    from chalicelib.rag.service import RagService

    return RagService()


def _principal() -> Principal:
    return current_principal(rag_bp.current_request)


def _repository_id(raw: str) -> str:
    if not _ID.match(raw):
        raise BadRequestError("repositoryId: must be 1-63 letters, digits, '.', '_' or '-', starting with one")
    return raw


def _document_id(raw: str) -> str:
    if not _DOCUMENT_ID.match(raw):
        raise BadRequestError("documentId: must be 32 lowercase hex digits")
    return raw


_MODELS = "chalicelib.rag.models"
REPOSITORY = f"{_MODELS}:RepositoryRecord"
_REPOSITORY_ID = {"repositoryId": "$response.body#/repositoryId"}


# -- repositories ------------------------------------------------------------------------------------------------
@rag_bp.operation(
    "/", "GET", authorizer=lisa_authorizer, responses={200: f"{_MODELS}:RepositoryList"}, errors=(503,), tag="rag"
)
def list_repositories() -> Reply:
    """The repositories the caller may use (admins: all, with connection details)."""
    from chalicelib.rag.models import RepositoryList

    principal = _principal()
    repositories = _service().list_repositories(principal)
    return Reply(RepositoryList(repositories=repositories), public=not principal.is_admin)


@rag_bp.operation(
    "/",
    "POST",
    authorizer=lisa_authorizer,
    body=f"{_MODELS}:CreateRepositoryRequest",
    responses={201: REPOSITORY},
    errors=(403, 409, 422, 503),
    links={
        "GetRepository": Link("getRepository", _REPOSITORY_ID),
        "ListDocuments": Link("listDocuments", _REPOSITORY_ID),
        "Search": Link("search", _REPOSITORY_ID),
        "DeleteRepository": Link("deleteRepository", _REPOSITORY_ID),
    },
    tag="rag",
)
def create_repository() -> RepositoryRecord:
    """Create a repository (admin); 409 if the id is taken."""
    from chalicelib.rag.models import CreateRepositoryRequest

    principal = _principal()
    if not principal.is_admin:
        raise Forbidden(f"user {principal.username!r} is not an administrator; this needs the admin group")
    return _service().create_repository(principal, rag_bp.body(CreateRepositoryRequest))


@rag_bp.operation(
    "/{repositoryId}", "GET", authorizer=lisa_authorizer, responses={200: REPOSITORY}, errors=(403, 404), tag="rag"
)
def get_repository(repositoryId: str) -> Reply:
    """One repository (admins see its connection details)."""
    principal = _principal()
    record = _service().repository(principal, _repository_id(repositoryId))
    return Reply(record, public=not principal.is_admin)


@rag_bp.operation(
    "/{repositoryId}",
    "DELETE",
    authorizer=lisa_authorizer,
    responses={200: f"{_MODELS}:RepositoryDeleted"},
    errors=(403, 404, 503),
    tag="rag",
)
def delete_repository(repositoryId: str) -> RepositoryDeleted:
    """Delete a repository, its documents in S3, its vectors and its document list (admin)."""
    return _service().delete_repository(_principal(), _repository_id(repositoryId))


# -- documents ---------------------------------------------------------------------------------------------------
@rag_bp.operation(
    "/{repositoryId}/upload-url",
    "POST",
    authorizer=lisa_authorizer,
    body=f"{_MODELS}:UploadUrlRequest",
    responses={200: f"{_MODELS}:UploadUrl"},
    errors=(403, 404),
    links={"GetDocument": Link("getDocument", {"documentId": "$response.body#/documentId"})},
    tag="rag",
)
def upload_url(repositoryId: str) -> UploadUrl:
    """A presigned PUT into the docs bucket; the upload is ingested automatically (see its document's status)."""
    from chalicelib.rag.models import UploadUrlRequest

    request = rag_bp.body(UploadUrlRequest)
    return _service().upload_url(_principal(), _repository_id(repositoryId), request)


@rag_bp.operation(
    "/{repositoryId}/documents",
    "GET",
    authorizer=lisa_authorizer,
    query=f"{_MODELS}:DocumentsQuery",
    responses={200: f"{_MODELS}:DocumentList"},
    errors=(403, 404),
    tag="rag",
)
def list_documents(repositoryId: str) -> DocumentList:
    """Documents and their ingestion status, a page at a time (`nextToken` of the last page)."""
    from chalicelib.rag.models import DocumentList, DocumentsQuery

    query = rag_bp.query(DocumentsQuery)
    records, token = _service().list_documents(
        _principal(), _repository_id(repositoryId), query.limit, query.next_token or None
    )
    return DocumentList(documents=records, next_token=token)


@rag_bp.operation(
    "/{repositoryId}/documents/{documentId}",
    "GET",
    authorizer=lisa_authorizer,
    responses={200: f"{_MODELS}:DocumentRecord"},
    errors=(403, 404),
    tag="rag",
)
def get_document(repositoryId: str, documentId: str) -> DocumentRecord:
    """One document and its ingestion status."""
    return _service().document(_principal(), _repository_id(repositoryId), _document_id(documentId))


@rag_bp.operation(
    "/{repositoryId}/documents/{documentId}",
    "DELETE",
    authorizer=lisa_authorizer,
    responses={200: f"{_MODELS}:DocumentDeleted"},
    errors=(403, 404, 503),
    tag="rag",
)
def delete_document(repositoryId: str, documentId: str) -> DocumentDeleted:
    """Delete the document's object, chunks and record (its uploader or an admin)."""
    from chalicelib.rag.models import DocumentDeleted

    result = _service().delete_document(_principal(), _repository_id(repositoryId), _document_id(documentId))
    return DocumentDeleted(repository_id=repositoryId, document_id=documentId, deleted=result.outcome == "deleted")


# -- search ------------------------------------------------------------------------------------------------------
@rag_bp.operation(
    "/{repositoryId}/search",
    "POST",
    authorizer=lisa_authorizer,
    body=f"{_MODELS}:SearchRequest",
    responses={200: f"{_MODELS}:SearchResults"},
    errors=(403, 404, 422, 503),
    tag="rag",
)
def search(repositoryId: str) -> SearchResults:
    """The `k` most similar chunks, best first, each with its score (cosine similarity) and source."""
    from chalicelib.rag.models import SearchHitView, SearchRequest, SearchResults

    request = rag_bp.body(SearchRequest)
    hits = _service().search(_principal(), _repository_id(repositoryId), request)
    results = [SearchHitView.model_validate(hit.wire()) for hit in hits]
    return SearchResults(repository_id=repositoryId, query=request.query, results=results)


# -- ingestion ---------------------------------------------------------------------------------------------------
# The queue's name is fixed when the app is packaged: the same variable and default as Settings.ingestion_queue
# (read directly: pydantic-settings costs ~150 ms of cold start).
INGESTION_QUEUE = os.environ.get("LISA_INGESTION_QUEUE", "lisa-rag-ingestion")


@rag_bp.on_sqs_message(queue=INGESTION_QUEUE, batch_size=10, name="ingest_documents")
def ingest_documents(event: SQSEvent) -> dict[str, Any]:
    """S3 notifications from the ingestion queue → documents ingested or removed (partial batch response)."""
    from chalicelib.rag.ingestion import handle_sqs_event

    return handle_sqs_event(event.to_dict(), event.context)
