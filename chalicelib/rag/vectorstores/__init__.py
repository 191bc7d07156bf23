"""One interface for the vector stores behind repositories: PGVector (psycopg + pgvector) and OpenSearch k-NN.

The store is the source of truth for a document's chunks. Every write names the document and the content hash of
the bytes it came from: writing the hash the store already holds writes nothing; anything else replaces the
document's chunks as one unit and returns a new `generation` (increasing per document), which orders the document
records kept in DynamoDB. Just before replacing, the store asks the caller `still_current()` (is the object in S3
still the one that was read?) while it holds the document's lock, so a slow ingestion of an old version never
overwrites a newer one. `store_for(repository)` gives the store of a repository (cached per process).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from chalicelib.rag.models import RepositoryRecord

FilterValue = str | int | float | bool


@dataclass(frozen=True)
class ChunkRecord:
    """One chunk as stored: its text, vector and metadata (documentId, filename, source, page, ...)."""

    index: int
    text: str
    embedding: Sequence[float]
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DocumentWrite:
    """All the chunks of one version of a document (none for a document that could not be ingested)."""

    document_id: str
    content_hash: str
    source: str
    chunks: Sequence[ChunkRecord]


@dataclass(frozen=True)
class StoredDocument:
    """What the store holds for a document: the content hash of its chunks, their number, the generation."""

    content_hash: str | None
    chunk_count: int
    generation: int


@dataclass(frozen=True)
class WriteResult:
    """`written`: chunks replaced; `unchanged`: the store already had this content; `superseded`: the object
    changed meanwhile, nothing written (its own event will bring the newer version)."""

    outcome: Literal["written", "unchanged", "superseded"]
    generation: int
    chunk_count: int


@dataclass(frozen=True)
class SearchHit:
    """A chunk found by similarity search; `score` is the cosine similarity (1 = same direction)."""

    document_id: str
    chunk_index: int
    text: str
    source: str
    score: float
    metadata: Mapping[str, Any]

    def wire(self) -> dict[str, Any]:
        """The hit as the API's JSON (camelCase)."""
        return {
            "documentId": self.document_id,
            "chunkIndex": self.chunk_index,
            "text": self.text,
            "source": self.source,
            "score": round(self.score, 6),
            "metadata": dict(self.metadata),
        }


class VectorStore(Protocol):
    """What a repository's vector store does."""

    def current(self, document_id: str) -> StoredDocument | None:
        """What the store holds for the document (None if it never held it)."""
        ...

    def replace_document(self, write: DocumentWrite, still_current: Callable[[], bool]) -> WriteResult:
        """Make the document's chunks exactly `write.chunks` (see the module docstring)."""
        ...

    def delete_document(self, document_id: str, still_gone: Callable[[], bool]) -> int | None:
        """Remove the document's chunks (if `still_gone()`); the new generation, None if it was not removed."""
        ...

    def search(
        self, embedding: Sequence[float], k: int, filters: Mapping[str, FilterValue] | None = None
    ) -> list[SearchHit]:
        """The `k` chunks nearest to `embedding` (cosine), optionally only those whose metadata equals `filters`."""
        ...

    def drop(self) -> None:
        """Remove everything the repository stored."""
        ...


_stores: dict[tuple[str, str, str], VectorStore] = {}
_lock = threading.Lock()


def store_for(repository: RepositoryRecord) -> VectorStore:
    """The vector store of `repository` (one per repository and connection, per process)."""
    import json

    key = (repository.repository_id, repository.type, json.dumps(repository.connection, sort_keys=True))
    with _lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = _make(repository)
        return store


def forget_stores() -> None:
    """Drop cached stores (after a repository was deleted, or the environment changed in tests)."""
    with _lock:
        _stores.clear()


def _make(repository: RepositoryRecord) -> VectorStore:
    from chalicelib.rag.models import OpenSearchConnection, PgVectorConnection

    if repository.type == "pgvector":
        from chalicelib.rag.vectorstores.pgvector import PgVectorStore

        return PgVectorStore(repository.repository_id, PgVectorConnection.model_validate(repository.connection))
    from chalicelib.rag.vectorstores.opensearch import OpenSearchStore

    return OpenSearchStore(repository.repository_id, OpenSearchConnection.model_validate(repository.connection))
