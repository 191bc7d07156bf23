"""RAG's errors (a light module: routes map these to HTTP statuses without importing boto3 or psycopg).

Each error's status comes from the LisaError class it also is (listed first, so its status wins over RagError's).
"""

from __future__ import annotations

from chalicelib.errors import (
    BadRequest,
    Conflict,
    LisaError,
    NotFound,
    ServiceUnavailable,
    Unprocessable,
)
from chalicelib.errors import (
    Forbidden as ForbiddenError,
)


class RagError(LisaError):
    """Base of RAG's errors; `message` is meant for the API caller. A bare RagError is a 400."""

    STATUS_CODE = 400
    ERROR_TYPE = "bad_request"


class RepositoryNotFound(NotFound, RagError):
    """No repository has this id, or the caller may not use it (never say which: no existence oracle)."""

    def __init__(self, repository_id: str) -> None:
        super().__init__(f"repository {repository_id!r} does not exist or you may not use it")
        self.repository_id = repository_id


class RepositoryConflict(Conflict, RagError):
    """The repository already exists (create), or changed under the write."""


class DocumentNotFound(NotFound, RagError):
    """The repository has no document of this id."""

    def __init__(self, repository_id: str, document_id: str) -> None:
        super().__init__(f"repository {repository_id!r} has no document {document_id!r}")


class Forbidden(ForbiddenError, RagError):
    """The caller may use the repository but not do this to it (e.g. delete another user's document)."""


class InvalidRequest(BadRequest, RagError):
    """A request the caller must change (bad filter, k out of range, ...)."""


class UnusableDocument(Unprocessable, RagError):
    """The document itself cannot be ingested (unsupported type, corrupt, empty, too large): a permanent failure,
    recorded on the document; retrying the same bytes cannot succeed."""


class BackendUnavailable(ServiceUnavailable, RagError):
    """The embedding model or the vector store cannot be used right now: a transient failure, worth a retry."""


class DimensionMismatch(Conflict, RagError):
    """The repository's stored vectors and its embedding model disagree on the number of dimensions."""
