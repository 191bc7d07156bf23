"""What the RAG API, the CLI and the router do, with the caller's rights checked in one place.

Rights: a repository is usable by admins and by members of one of its `allowedGroups` (none listed: everyone);
to anyone else it does not exist (404, no existence oracle). Users of a repository may list and search its
documents and upload new ones; a document can be deleted (or overwritten through an upload URL) by the user who
uploaded it or an admin. Creating and deleting repositories is for admins only.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from chalicelib import aws
from chalicelib.rag.documents import DocumentStore, document_id
from chalicelib.rag.errors import DocumentNotFound, Forbidden, InvalidRequest, RagError, RepositoryNotFound
from chalicelib.rag.models import (
    UPLOADED_BY,
    CreateRepositoryRequest,
    DocumentRecord,
    RepositoryDeleted,
    RepositoryRecord,
    SearchRequest,
    UploadUrl,
    UploadUrlRequest,
)
from chalicelib.rag.parsing import content_type_of
from chalicelib.rag.repositories import RepositoryStore
from chalicelib.settings import get_settings

if TYPE_CHECKING:
    from chalicelib.auth.principal import Principal
    from chalicelib.rag.ingestion import IngestResult
    from chalicelib.rag.vectorstores import SearchHit

logger = Logger(service="lisa-rag")

UPLOAD_URL_SECONDS = 900


class RagService:
    """Repository, document and search operations on behalf of a principal."""

    def __init__(self, repositories: RepositoryStore | None = None, documents: DocumentStore | None = None) -> None:
        self.repositories = repositories or RepositoryStore()
        self.documents = documents or DocumentStore()

    # -- repositories ----------------------------------------------------------------------------------------
    def list_repositories(self, principal: Principal) -> list[RepositoryRecord]:
        """The repositories the principal may use (admins: all)."""
        return [r for r in self.repositories.list() if r.can_use(principal.groups, principal.is_admin)]

    def repository(self, principal: Principal, repository_id: str, *, cached: bool = False) -> RepositoryRecord:
        """The repository, if the principal may use it (else `RepositoryNotFound`)."""
        record = self.repositories.get(repository_id, cached=cached)
        if not record.can_use(principal.groups, principal.is_admin):
            raise RepositoryNotFound(repository_id)
        return record

    def create_repository(self, admin: Principal, request: CreateRepositoryRequest) -> RepositoryRecord:
        """Create a repository (admin) after checking its embedding model is registered."""
        _require_admin(admin)
        _check_embedding_model(request.embedding_model_id)
        record = self.repositories.create(request, created_by=admin.username)
        logger.info("repository created", repository_id=record.repository_id, by=admin.username)
        return record

    def delete_repository(self, admin: Principal, repository_id: str) -> RepositoryDeleted:
        """Remove the repository: its documents in S3, its vector store, its document list, and its record last,
        so that a failure on the way (a vector store that is down: 503) leaves a repository a retry can delete,
        never tables or an index nobody knows of."""
        from chalicelib.rag.vectorstores import forget_stores, store_for

        _require_admin(admin)
        record = self.repositories.get(repository_id)
        objects = _delete_prefix(get_settings().docs_bucket, f"{repository_id}/")
        store = store_for(record)
        store.drop()
        documents = self.documents.delete_all(repository_id)
        with contextlib.suppress(RepositoryNotFound):  # a concurrent delete got there first: gone either way
            self.repositories.delete(repository_id)
        try:  # an ingestion that raced the delete (an event of a removed object) may have recreated tables
            store.drop()
        except RagError:
            logger.warning("could not re-check the dropped vector store", repository_id=repository_id, exc_info=True)
        forget_stores()
        logger.info("repository deleted", repository_id=repository_id, by=admin.username, documents=documents)
        return RepositoryDeleted(repository_id=repository_id, deleted_documents=documents, deleted_objects=objects)

    # -- documents -------------------------------------------------------------------------------------------
    def upload_url(self, principal: Principal, repository_id: str, request: UploadUrlRequest) -> UploadUrl:
        """A presigned S3 PUT for `<repositoryId>/<filename>`; the headers listed must be sent with the PUT."""
        repository = self.repository(principal, repository_id)
        bucket = get_settings().docs_bucket
        key = f"{repository.repository_id}/{request.filename}"
        doc_id = document_id(bucket, key)
        existing = self.documents.get(repository.repository_id, doc_id)
        if existing is not None and not _may_change(principal, existing):
            raise Forbidden(f"{request.filename!r} was uploaded by another user; only they or an admin may replace it")
        content_type = request.content_type or content_type_of(request.filename)
        metadata = {**request.metadata, UPLOADED_BY: principal.owner_id}
        url, headers = aws.presigned_put(bucket, key, content_type, UPLOAD_URL_SECONDS, metadata)
        return UploadUrl(
            url=url,
            method="PUT",
            headers=headers,
            bucket=bucket,
            key=key,
            document_id=doc_id,
            expires_in=UPLOAD_URL_SECONDS,
        )

    def list_documents(
        self, principal: Principal, repository_id: str, limit: int = 100, token: str | None = None
    ) -> tuple[list[DocumentRecord], str | None]:
        """One page of a repository's documents, if the principal may use it."""
        self.repository(principal, repository_id)
        return self.documents.page(repository_id, limit, token)

    def document(self, principal: Principal, repository_id: str, doc_id: str) -> DocumentRecord:
        """One document, if the principal may use its repository (else `DocumentNotFound`)."""
        self.repository(principal, repository_id)
        record = self.documents.get(repository_id, doc_id)
        if record is None:
            raise DocumentNotFound(repository_id, doc_id)
        return record

    def delete_document(self, principal: Principal, repository_id: str, doc_id: str) -> IngestResult:
        """Delete the object from S3 and its chunks and record at once (the ObjectRemoved event then finds
        nothing left to do)."""
        from chalicelib.rag.ingestion import Ingestor

        record = self.document(principal, repository_id, doc_id)
        if not _may_change(principal, record):
            raise Forbidden(f"document {doc_id!r} was uploaded by another user; only they or an admin may delete it")
        aws.client("s3").delete_object(Bucket=record.bucket, Key=record.key)
        result = Ingestor(self.repositories, self.documents).reconcile(record.bucket, record.key)
        logger.info("document deleted", repository_id=repository_id, document_id=doc_id, by=principal.username)
        return result

    # -- search ----------------------------------------------------------------------------------------------
    def search(self, principal: Principal, repository_id: str, request: SearchRequest) -> list[SearchHit]:
        """The `k` chunks most similar to the query (cosine similarity, best first)."""
        repository = self.repository(principal, repository_id, cached=True)
        return search_repository(repository, request.query, request.k, request.filter)


def search_repository(
    repository: RepositoryRecord, query: str, k: int, filters: dict[str, Any] | None = None
) -> list[SearchHit]:
    """Similarity search in a repository whose access was already checked (the router uses this too)."""
    from chalicelib.rag.embedding import RepositoryEmbedder
    from chalicelib.rag.vectorstores import store_for

    vector = RepositoryEmbedder(repository.embedding_model_id).embed_query(query)
    return store_for(repository).search(vector, k, filters or None)


def _require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise Forbidden(f"user {principal.username!r} is not an administrator; this needs the admin group")


def _may_change(principal: Principal, record: DocumentRecord) -> bool:
    return principal.is_admin or (record.uploaded_by is not None and record.uploaded_by == principal.owner_id)


def _check_embedding_model(model_name: str) -> None:
    from chalicelib.config import ModelType
    from chalicelib.registry.errors import ModelNotFound
    from chalicelib.registry.resolver import get_registry

    try:
        record = get_registry().resolve(model_name)
    except ModelNotFound as error:
        raise InvalidRequest(f"embeddingModelId: {error.message}") from None
    if record.model_type is not ModelType.EMBEDDING:
        raise InvalidRequest(f"embeddingModelId: {model_name!r} is a {record.model_type.value} model, not embedding")


def _delete_prefix(bucket: str, prefix: str) -> int:
    s3 = aws.client("s3")
    deleted = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
            deleted += len(keys)
    return deleted
