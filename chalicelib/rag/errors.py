"""RAG's errors (a light module: routes map these to HTTP statuses without importing boto3 or psycopg)."""

from __future__ import annotations


class RagError(Exception):
    """Base of RAG's errors; `message` is meant for the API caller."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RepositoryNotFound(RagError):
    """No repository has this id, or the caller may not use it (never say which: no existence oracle)."""

    status = 404

    def __init__(self, repository_id: str) -> None:
        super().__init__(f"repository {repository_id!r} does not exist or you may not use it")
        self.repository_id = repository_id


class RepositoryConflict(RagError):
    """The repository already exists (create), or changed under the write."""

    status = 409


class DocumentNotFound(RagError):
    status = 404

    def __init__(self, repository_id: str, document_id: str) -> None:
        super().__init__(f"repository {repository_id!r} has no document {document_id!r}")


class Forbidden(RagError):
    status = 403


class InvalidRequest(RagError):
    """A request the caller must change (bad filter, k out of range, ...)."""

    status = 400


class UnusableDocument(RagError):
    """The document itself cannot be ingested (unsupported type, corrupt, empty, too large): a permanent failure,
    recorded on the document; retrying the same bytes cannot succeed."""

    status = 422


class BackendUnavailable(RagError):
    """The embedding model or the vector store cannot be used right now: a transient failure, worth a retry."""

    status = 503


class DimensionMismatch(RagError):
    """The repository's stored vectors and its embedding model disagree on the number of dimensions."""

    status = 409
