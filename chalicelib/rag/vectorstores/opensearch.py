"""OpenSearch k-NN: a repository's chunks in one index (`<indexPrefix><repository>`), through opensearch-py.

Index: `knn: true`; `embedding` is a `knn_vector` (HNSW, `cosinesimil`, the connection's engine), metadata strings
are keywords (exact filters). Besides the chunks, each document has a marker doc (`_id` `doc:<documentId>`, no
vector, so never a search hit) with its content hash, chunk count and generation; marker writes use optimistic
concurrency (`if_seq_no`/`if_primary_term`), so two writers of one document never both win.

OpenSearch has no multi-document transactions: a replacement indexes the new chunks first, then moves the marker,
then deletes the old chunks; a search in between can see both versions' chunks, never none. Scores: OpenSearch
reports `(1 + cos) / 2` for cosinesimil; hits carry the cosine similarity, as PGVector's do.

Verified only against the request/response contract (tests run a fake OpenSearch on loopback that checks the
mapping, bulk, marker and k-NN query bodies); not yet against a live cluster.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from aws_lambda_powertools import Logger

from chalicelib.rag.errors import BackendUnavailable, DimensionMismatch
from chalicelib.rag.models import OpenSearchConnection
from chalicelib.rag.vectorstores import DocumentWrite, FilterValue, SearchHit, StoredDocument, WriteResult
from chalicelib.settings import get_settings

logger = Logger(service="lisa-rag")

HNSW_M = 16
HNSW_EF_CONSTRUCTION = 128


def index_name(prefix: str, repository_id: str) -> str:
    """A valid index name (lowercase, no leading '_', '-' or '+', at most 255 bytes)."""
    slug = re.sub(r"[^a-z0-9_\-]+", "-", repository_id.lower()).strip("-_") or "repo"
    return f"{prefix}{slug}"[:255]


def index_body(dimensions: int, engine: str) -> dict[str, Any]:
    """The index settings and mapping a repository's index is created with."""
    return {
        "settings": {"index": {"knn": True}},
        "mappings": {
            "dynamic_templates": [
                {
                    "metadata_strings": {
                        "path_match": "metadata.*",
                        "match_mapping_type": "string",
                        "mapping": {"type": "keyword"},
                    }
                }
            ],
            "properties": {
                "kind": {"type": "keyword"},
                "document_id": {"type": "keyword"},
                "chunk_index": {"type": "integer"},
                "content_hash": {"type": "keyword"},
                "chunk_count": {"type": "integer"},
                "generation": {"type": "long"},
                "source": {"type": "keyword"},
                "text": {"type": "text"},
                "metadata": {"type": "object"},
                "embedding": {
                    "type": "knn_vector",
                    "dimension": dimensions,
                    "method": {
                        "name": "hnsw",
                        "space_type": "cosinesimil",
                        "engine": engine,
                        "parameters": {"m": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION},
                    },
                },
            },
        },
    }


def knn_query(embedding: Sequence[float], k: int, filters: Mapping[str, FilterValue] | None) -> dict[str, Any]:
    """The search body: k-NN on `embedding`, metadata equality as an efficient (in-graph) filter."""
    knn: dict[str, Any] = {"vector": list(embedding), "k": k}
    if filters:
        knn["filter"] = {"bool": {"filter": [{"term": {f"metadata.{key}": value}} for key, value in filters.items()]}}
    return {
        "size": k,
        "_source": {"excludes": ["embedding"]},
        "query": {"knn": {"embedding": knn}},
    }


def _marker_id(document_id: str) -> str:
    return f"doc:{document_id}"


class OpenSearchStore:
    """A repository's chunks in an OpenSearch index."""

    def __init__(self, repository_id: str, connection: OpenSearchConnection, client: Any = None) -> None:
        self.repository_id = repository_id
        self.connection = connection
        self.index = index_name(connection.index_prefix, repository_id)
        self._client = client
        self._dimensions: int | None = None

    @property
    def client(self) -> Any:
        """The OpenSearch client, made on first use (signing credentials are read then)."""
        if self._client is None:
            self._client = _make_client(self.connection)
        return self._client

    # -- schema ----------------------------------------------------------------------------------------------
    def _stored_dimensions(self) -> int | None:
        from opensearchpy.exceptions import NotFoundError

        try:
            mapping = self.client.indices.get_mapping(index=self.index)
        except NotFoundError:
            return None
        properties = next(iter(mapping.values()))["mappings"]["properties"]
        return int(properties["embedding"]["dimension"])

    def _ensure(self, dimensions: int) -> None:
        from opensearchpy.exceptions import RequestError

        if self._dimensions == dimensions:
            return
        stored = self._stored_dimensions()
        if stored is None:
            try:
                self.client.indices.create(index=self.index, body=index_body(dimensions, self.connection.engine))
                logger.info("created the OpenSearch index", index=self.index, dimensions=dimensions)
            except RequestError as error:
                if error.error != "resource_already_exists_exception":
                    raise
            stored = self._stored_dimensions()
        if stored != dimensions:
            raise DimensionMismatch(
                f"repository {self.repository_id!r} stores {stored}-dimensional vectors but its embedding model"
                f" gives {dimensions}; delete and recreate the repository to change its embedding model"
            )
        self._dimensions = dimensions

    # -- reads -----------------------------------------------------------------------------------------------
    def _marker(self, document_id: str) -> dict[str, Any] | None:
        from opensearchpy.exceptions import NotFoundError

        try:
            found: dict[str, Any] = self.client.get(index=self.index, id=_marker_id(document_id))
        except NotFoundError:
            return None
        return found if found.get("found") else None

    def current(self, document_id: str) -> StoredDocument | None:
        """What the store holds of a document (content hash, chunks, generation), or None."""
        with _errors("read a document"):
            marker = self._marker(document_id)
        if marker is None:
            return None
        source = marker["_source"]
        return StoredDocument(source.get("content_hash"), int(source["chunk_count"]), int(source["generation"]))

    def search(
        self, embedding: Sequence[float], k: int, filters: Mapping[str, FilterValue] | None = None
    ) -> list[SearchHit]:
        """The `k` nearest chunks to `embedding` whose metadata contains `filters`, best first."""
        from opensearchpy.exceptions import NotFoundError

        with _errors("search"):
            try:
                response = self.client.search(index=self.index, body=knn_query(embedding, k, filters))
            except NotFoundError:
                return []  # nothing ingested yet
        hits = []
        for hit in response["hits"]["hits"]:
            source = hit["_source"]
            hits.append(
                SearchHit(
                    document_id=source["document_id"],
                    chunk_index=int(source["chunk_index"]),
                    text=source["text"],
                    source=source["source"],
                    metadata=source.get("metadata") or {},
                    score=2.0 * float(hit["_score"]) - 1.0,
                )
            )
        return hits

    # -- writes ----------------------------------------------------------------------------------------------
    def replace_document(self, write: DocumentWrite, still_current: Callable[[], bool]) -> WriteResult:
        """Replace a document's chunks unless unchanged or `still_current()` says a newer upload superseded it."""
        from opensearchpy.exceptions import ConflictError

        dimensions = {len(c.embedding) for c in write.chunks}
        with _errors("write a document"):
            if dimensions:
                self._ensure(dimensions.pop())
            elif self._stored_dimensions() is None:
                # Nothing was ever stored and there is nothing to store: no index is needed yet.
                return WriteResult("written", 1, 0) if still_current() else WriteResult("superseded", 0, 0)
            marker = self._marker(write.document_id)
            previous = marker["_source"] if marker else {}
            generation = int(previous.get("generation", 0))
            if marker is not None and previous.get("content_hash") == write.content_hash:
                return WriteResult("unchanged", generation, int(previous["chunk_count"]))
            if not still_current():
                return WriteResult("superseded", generation, int(previous.get("chunk_count", 0)))
            chunk_ids = [f"{write.document_id}:{write.content_hash[:16]}:{c.index}" for c in write.chunks]
            if write.chunks:
                self._bulk_index(write, chunk_ids)
            body = {
                "kind": "document",
                "document_id": write.document_id,
                "source": write.source,
                "content_hash": write.content_hash,
                "chunk_count": len(write.chunks),
                "generation": generation + 1,
            }
            try:
                self._put_marker(write.document_id, body, marker)
            except ConflictError:
                logger.info("another writer moved the document on", document_id=write.document_id)
                if write.chunks:
                    self._bulk_delete(chunk_ids)
                return WriteResult("superseded", generation, int(previous.get("chunk_count", 0)))
            self._delete_chunks(write.document_id, keep_hash=write.content_hash)
        return WriteResult("written", generation + 1, len(write.chunks))

    def _bulk_index(self, write: DocumentWrite, ids: list[str]) -> None:
        lines: list[dict[str, Any]] = []
        for chunk, chunk_id in zip(write.chunks, ids, strict=True):
            lines.append({"index": {"_index": self.index, "_id": chunk_id}})
            lines.append(
                {
                    "kind": "chunk",
                    "document_id": write.document_id,
                    "chunk_index": chunk.index,
                    "content_hash": write.content_hash,
                    "source": write.source,
                    "text": chunk.text,
                    "metadata": dict(chunk.metadata),
                    "embedding": list(chunk.embedding),
                }
            )
        response = self.client.bulk(body=lines, refresh="wait_for")
        if response.get("errors"):
            failed = [item["index"].get("error") for item in response["items"] if "error" in item.get("index", {})]
            raise BackendUnavailable(f"OpenSearch refused {len(failed)} chunk(s): {json.dumps(failed[:1])[:300]}")

    def _bulk_delete(self, ids: list[str]) -> None:
        lines = [{"delete": {"_index": self.index, "_id": chunk_id}} for chunk_id in ids]
        self.client.bulk(body=lines, refresh="wait_for")

    def _put_marker(self, document_id: str, body: dict[str, Any], marker: dict[str, Any] | None) -> None:
        params: dict[str, Any] = {"refresh": "wait_for"}
        if marker is None:
            params["op_type"] = "create"
        else:
            params["if_seq_no"] = marker["_seq_no"]
            params["if_primary_term"] = marker["_primary_term"]
        self.client.index(index=self.index, id=_marker_id(document_id), body=body, params=params)

    def _delete_chunks(self, document_id: str, keep_hash: str | None) -> None:
        query: dict[str, Any] = {
            "bool": {"filter": [{"term": {"kind": "chunk"}}, {"term": {"document_id": document_id}}]}
        }
        if keep_hash is not None:
            query["bool"]["must_not"] = [{"term": {"content_hash": keep_hash}}]
        self.client.delete_by_query(
            index=self.index, body={"query": query}, params={"refresh": "true", "conflicts": "proceed"}
        )

    def delete_document(self, document_id: str, still_gone: Callable[[], bool]) -> int | None:
        """Delete a document's chunks if `still_gone()`; returns the new generation (None: it came back)."""
        from opensearchpy.exceptions import ConflictError

        with _errors("delete a document"):
            if self._stored_dimensions() is None:
                return 1 if still_gone() else None
            marker = self._marker(document_id)
            if not still_gone():
                return None
            generation = int(marker["_source"]["generation"]) + 1 if marker else 1
            body = {
                "kind": "document",
                "document_id": document_id,
                "source": "",
                "content_hash": None,
                "chunk_count": 0,
                "generation": generation,
            }
            try:
                self._put_marker(document_id, body, marker)
            except ConflictError:
                return None
            self._delete_chunks(document_id, keep_hash=None)
        return generation

    def drop(self) -> None:
        """Delete the repository's index."""
        with _errors("drop the repository"):
            self.client.indices.delete(index=self.index, params={"ignore_unavailable": "true"})
        self._dimensions = None


@contextmanager
def _errors(what: str) -> Iterator[None]:
    from opensearchpy.exceptions import ImproperlyConfigured, OpenSearchException

    try:
        yield
    except (OpenSearchException, ImproperlyConfigured) as error:  # any client failure: a 503, never a bare 500
        raise BackendUnavailable(f"OpenSearch failed to {what}: {str(error)[:500]}") from None


def _make_client(connection: OpenSearchConnection) -> Any:
    from opensearchpy import OpenSearch, Urllib3AWSV4SignerAuth, Urllib3HttpConnection

    parts = urlsplit(connection.endpoint)
    auth: Any = None
    if connection.auth == "sigv4":
        import boto3

        credentials = boto3.session.Session().get_credentials()
        if credentials is None:
            raise BackendUnavailable("no AWS credentials to sign OpenSearch requests with")
        auth = Urllib3AWSV4SignerAuth(credentials, connection.region or get_settings().region, connection.service)
    return OpenSearch(
        hosts=[{"host": parts.hostname, "port": parts.port or (443 if parts.scheme == "https" else 80)}],
        http_auth=auth,
        use_ssl=parts.scheme == "https",
        verify_certs=connection.verify_certs,
        connection_class=Urllib3HttpConnection,
        timeout=30,
        max_retries=2,
        retry_on_timeout=True,
        http_compress=True,
    )
