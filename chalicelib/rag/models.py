"""Wire shapes of the RAG API (camelCase, as stored in DynamoDB), validated at the edge.

A repository is config.yaml's `RagRepository` plus bookkeeping (who manages it, when). Its `connection` is checked
against its type: PGVector takes host/port/dbname/user and where the password lives (Secrets Manager or SSM, never
the password itself; an empty connection means the deployment's own database, `LISA_RAG_PG_DSN` locally);
OpenSearch takes the domain endpoint, region and auth.
"""

from __future__ import annotations

import posixpath
import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    StringConstraints,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic.alias_generators import to_camel

from chalicelib.apidocs.operations import PUBLIC
from chalicelib.config import RagRepository
from chalicelib.validation import QueryInt

MAX_K = 50
METADATA_KEY = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")
FILTER_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$")
SUPPORTED_EXTENSIONS = {
    ".txt": "text/plain",
    ".text": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
    ".pdf": "application/pdf",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, alias_generator=to_camel)


# -- repositories ------------------------------------------------------------------------------------------------
class PgVectorConnection(_Wire):
    """Where a PGVector repository's database is. All empty: the deployment's default database."""

    host: str | None = Field(None, min_length=1, max_length=253)
    port: int = Field(5432, ge=1, le=65535)
    dbname: str = Field("postgres", min_length=1, max_length=63)
    user: str = Field("postgres", min_length=1, max_length=63)
    password_secret_id: str | None = Field(None, min_length=1, max_length=2048)
    password_parameter: str | None = Field(None, min_length=1, max_length=2048)
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = "prefer"

    @model_validator(mode="before")
    @classmethod
    def _no_plain_password(cls, data: Any) -> Any:
        if isinstance(data, dict) and ("password" in data or "dsn" in data):
            raise ValueError("give passwordSecretId (Secrets Manager) or passwordParameter (SSM), not a password")
        return data

    @model_validator(mode="after")
    def _one_source(self) -> PgVectorConnection:
        if self.password_secret_id and self.password_parameter:
            raise ValueError("give passwordSecretId or passwordParameter, not both")
        if self.host is None and (self.password_secret_id or self.password_parameter):
            raise ValueError("a password source needs a host")
        return self


class OpenSearchConnection(_Wire):
    """An OpenSearch domain (or serverless collection) reached over HTTPS, signed with SigV4 by default."""

    endpoint: Annotated[str, StringConstraints(pattern=r"^https?://[^/\s]+/?$", max_length=2048)]
    region: str | None = Field(None, min_length=1, max_length=32)
    auth: Literal["sigv4", "none"] = "sigv4"
    service: Literal["es", "aoss"] = "es"
    engine: Literal["lucene", "faiss"] = "lucene"
    index_prefix: str = Field("lisa-rag-", pattern=r"^[a-z0-9][a-z0-9_\-]{0,40}$")
    verify_certs: bool = True


class RepositoryRecord(RagRepository):
    """A repository as stored and returned: config.yaml's RagRepository plus who manages it and when."""

    source: Literal["config", "api"] = "api"
    created_at: str = Field(alias="createdAt")
    updated_at: str = Field(alias="updatedAt")
    created_by: str = Field("config", alias="createdBy")

    @model_validator(mode="after")
    def _connection_fits_type(self) -> RepositoryRecord:
        connection_model(self.type).model_validate(self.connection)
        return self

    @model_serializer(mode="wrap")
    def _for_caller(self, serialize: SerializerFunctionWrapHandler, info: SerializationInfo) -> dict[str, Any]:
        """For non-admins (`public` in the context) no connection details."""
        data: dict[str, Any] = serialize(self)
        if isinstance(info.context, dict) and info.context.get(PUBLIC):
            data.pop("connection", None)
        return data

    def wire(self) -> dict[str, Any]:
        """The full record as JSON (admins; the table's item)."""
        return self.model_dump(mode="json", by_alias=True)

    def public_wire(self) -> dict[str, Any]:
        """What any user of the repository may see (no connection details)."""
        return self.model_dump(mode="json", by_alias=True, context={PUBLIC: True})

    def can_use(self, groups: tuple[str, ...] | list[str], is_admin: bool) -> bool:
        """Admins use every repository; others need one of `allowedGroups` (none listed: everyone)."""
        return is_admin or not self.allowed_groups or bool(set(groups) & set(self.allowed_groups))


def connection_model(repository_type: str) -> type[PgVectorConnection] | type[OpenSearchConnection]:
    """The connection model of a repository type."""
    return PgVectorConnection if repository_type == "pgvector" else OpenSearchConnection


class CreateRepositoryRequest(RagRepository):
    """POST /repositories: config.yaml's shape (repositoryId, type, connection, embeddingModelId, ...)."""

    @model_validator(mode="after")
    def _connection_fits_type(self) -> CreateRepositoryRequest:
        connection_model(self.type).model_validate(self.connection)
        return self


# -- documents ---------------------------------------------------------------------------------------------------
class DocumentStatus(StrEnum):
    """INGESTING while being parsed/embedded, READY once searchable, FAILED (with the reason) if the file cannot
    be ingested, RETRYING after a transient failure (the queue redelivers it)."""

    INGESTING = "INGESTING"
    READY = "READY"
    FAILED = "FAILED"
    RETRYING = "RETRYING"


class DocumentRecord(_Wire):
    """One document (an object under `<repositoryId>/` in the docs bucket) and its ingestion state."""

    repository_id: str
    document_id: str
    source: str  # s3://bucket/key
    bucket: str
    key: str
    filename: str
    content_type: str
    size: int
    content_hash: str
    status: DocumentStatus
    status_reason: str | None = None
    chunk_count: int = 0
    uploaded_by: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    generation: int = 0
    attempts: int = 0
    created_at: str
    updated_at: str

    def wire(self) -> dict[str, Any]:
        """The record as JSON (the table's item, and the API's answer)."""
        return self.model_dump(mode="json", by_alias=True)


class DocumentPageToken(_Wire):
    """A documents page's `nextToken` (base64url JSON): DynamoDB's LastEvaluatedKey, both key attributes strings.
    Typed so that a forged one is refused here, not by DynamoDB's serializer (a float) or the JSON parser."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, alias_generator=to_camel, strict=True)

    repository_id: str = Field(min_length=1, max_length=63)
    document_id: str = Field(min_length=1, max_length=64)


def _check_filename(value: str) -> str:
    if value.startswith("/") or "\\" in value or "\x00" in value:
        raise ValueError("must be a relative path with '/' separators")
    parts = value.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError("must not contain empty, '.' or '..' path segments")
    extension = posixpath.splitext(value)[1].lower()
    if extension not in SUPPORTED_EXTENSIONS:
        supported = ", ".join(sorted(SUPPORTED_EXTENSIONS))
        raise ValueError(f"unsupported file type {extension or '(none)'!r}; supported: {supported}")
    return value


class UploadUrlRequest(_Wire):
    """POST /repositories/{id}/upload-url: a presigned PUT for `<repositoryId>/<filename>`."""

    filename: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    content_type: str | None = Field(None, max_length=255)
    metadata: dict[str, Annotated[str, StringConstraints(max_length=256)]] = Field(default_factory=dict, max_length=8)

    @field_validator("filename")
    @classmethod
    def _filename(cls, value: str) -> str:
        return _check_filename(value)

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, str]) -> dict[str, str]:
        for key, item in value.items():
            if not METADATA_KEY.match(key):
                raise ValueError(f"key {key!r} must be 1-64 lowercase letters, digits, '_' or '-'")
            if key in RESERVED_METADATA or not item.isprintable() or not item.isascii():
                raise ValueError(f"key {key!r} is reserved or its value is not printable ASCII")
        return value


RESERVED_METADATA = ("uploaded-by", "documentid", "source", "filename", "contenttype", "repositoryid")
UPLOADED_BY = "uploaded-by"

FilterValue = str | int | float | bool


class SearchRequest(_Wire):
    """POST /repositories/{id}/search: the `k` chunks most similar to `query`, optionally filtered by metadata
    equality (`{"filename": "a.pdf"}`; keys: documentId, filename, source, contentType or upload metadata)."""

    query: Annotated[str, StringConstraints(min_length=1, max_length=8000)]
    k: int = Field(4, ge=1, le=MAX_K)
    filter: dict[str, FilterValue] = Field(default_factory=dict, max_length=16)

    @field_validator("query")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("filter")
    @classmethod
    def _filter_keys(cls, value: dict[str, FilterValue]) -> dict[str, FilterValue]:
        for key in value:
            if not FILTER_KEY.match(key):
                raise ValueError(f"key {key!r} must be 1-64 letters, digits, '_' or '-'")
        return value


# -- responses -----------------------------------------------------------------------------------------------------
class RepositoryList(_Wire):
    """GET /repositories."""

    repositories: list[RepositoryRecord]


class RepositoryDeleted(_Wire):
    """DELETE /repositories/{repositoryId}: what went with it."""

    repository_id: str
    deleted_documents: int
    deleted_objects: int


class UploadUrl(_Wire):
    """POST /repositories/{repositoryId}/upload-url: PUT the file to `url` with `headers` before `expiresIn` s."""

    url: str
    method: Literal["PUT"]
    headers: dict[str, str]
    bucket: str
    key: str
    document_id: str
    expires_in: int


class DocumentsQuery(_Wire):
    """GET /repositories/{repositoryId}/documents: a page of at most `limit`, after `nextToken`'s page."""

    limit: QueryInt = Field(100, ge=1, le=1000)
    next_token: str | None = Field(None, max_length=4096)


class DocumentList(_Wire):
    """GET .../documents: one page of documents."""

    documents: list[DocumentRecord]
    next_token: str | None = Field(description="pass as ?nextToken= for the next page; null: the last page")


class DocumentDeleted(_Wire):
    """DELETE .../documents/{documentId}: what was deleted."""

    repository_id: str
    document_id: str
    deleted: bool


class SearchHitView(_Wire):
    """One chunk found: its document, its place, its text and its cosine similarity to the query."""

    document_id: str
    chunk_index: int
    text: str
    source: str
    score: float
    metadata: dict[str, Any]


class SearchResults(_Wire):
    """POST .../search: the best chunks, best first."""

    repository_id: str
    query: str
    results: list[SearchHitView]
