"""PGVector: a repository's chunks in PostgreSQL with the `vector` extension (psycopg 3 + pgvector): the queries.

Per repository, two tables named after it (`rag_<slug>_<hash>_documents` / `_chunks`, see pg_schema): documents
hold each document's content hash, chunk count and generation; chunks hold text, source, metadata (jsonb) and the
embedding (`vector(d)`, d fixed by the first write) under an HNSW index with cosine distance and a GIN index on
metadata. A document's chunks are replaced in one transaction under a per-document advisory lock; readers see the
old chunks or the new ones, never a mix or none.

Where the database is: pg_conninfo; connections come from one small pool per database per process: pg_pools.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from aws_lambda_powertools import Logger

from chalicelib.rag.vectorstores import DocumentWrite, FilterValue, SearchHit, StoredDocument, WriteResult
from chalicelib.rag.vectorstores.pg_conninfo import conninfo_for
from chalicelib.rag.vectorstores.pg_pools import StaleSchema, close_pools, database_errors, pool_for
from chalicelib.rag.vectorstores.pg_schema import HNSW_EF_CONSTRUCTION, HNSW_M, RepositoryTables, table_names

if TYPE_CHECKING:
    from psycopg import Connection
    from psycopg_pool import ConnectionPool

    from chalicelib.rag.models import PgVectorConnection

__all__ = ["HNSW_EF_CONSTRUCTION", "HNSW_M", "PgVectorStore", "close_pools", "conninfo_for", "table_names"]

T = TypeVar("T")

logger = Logger(service="lisa-rag")

MIN_EF_SEARCH = 100  # pgvector defaults to 40; clustered data (real embeddings) needs more for recall ≥ 0.95


_DOCUMENT_ROW = "SELECT content_hash, chunk_count, generation FROM {documents} WHERE document_id = %s"


def _set_local(name: str, value: int) -> Any:
    from psycopg import sql

    return sql.SQL("SET LOCAL {} = {}").format(sql.SQL(name), sql.Literal(value))


class PgVectorStore:
    """A repository's chunks in PostgreSQL + pgvector."""

    def __init__(self, repository_id: str, connection: PgVectorConnection, conninfo: str | None = None) -> None:
        self.repository_id = repository_id
        self.tables = RepositoryTables(repository_id)
        self.documents_table, self.chunks_table = self.tables.documents_table, self.tables.chunks_table
        self._connection = connection
        self._conninfo = conninfo

    def _pool(self) -> ConnectionPool:
        if self._conninfo is None:
            self._conninfo = conninfo_for(self._connection)
        with database_errors("connect"):
            return pool_for(self._conninfo)

    @contextmanager
    def _conn(self, action: str) -> Iterator[Connection[Any]]:
        with database_errors(action), self._pool().connection() as conn:
            yield conn

    def _run(self, action: str, operation: Callable[[Connection[Any]], T]) -> T:
        """`operation` on a pooled connection; if a table it relied on is gone (dropped elsewhere, so this
        process's "tables exist" flags are stale), forget the flags and run it once more from the start."""
        try:
            with self._conn(action) as conn:
                return operation(conn)
        except StaleSchema:
            logger.info("repository tables changed elsewhere; re-checking them", repository=self.repository_id)
            self.tables.forget()
        with self._conn(action) as conn:
            return operation(conn)

    def ensure_schema(self, dimensions: int | None = None) -> None:
        """Create the repository's tables now (the chunks table and its indexes need the vectors' dimensions);
        otherwise they are created on first use."""

        def run(conn: Connection[Any]) -> None:
            self.tables.ensure_documents(conn)
            if dimensions is not None:
                self.tables.ensure_chunks(conn, dimensions)

        self._run("create the tables", run)

    # -- reads -----------------------------------------------------------------------------------------------
    def current(self, document_id: str) -> StoredDocument | None:
        """What the store holds of a document (content hash, chunks, generation), or None."""

        def run(conn: Connection[Any]) -> Any:
            self.tables.ensure_documents(conn)
            return conn.execute(
                self.tables.sql(_DOCUMENT_ROW),
                (document_id,),
            ).fetchone()

        row = self._run("read a document", run)
        return None if row is None else StoredDocument(row[0], int(row[1]), int(row[2]))

    def search(
        self, embedding: Sequence[float], k: int, filters: Mapping[str, FilterValue] | None = None
    ) -> list[SearchHit]:
        """The `k` nearest chunks to `embedding` whose metadata contains `filters`, best first."""
        from pgvector import Vector

        def run(conn: Connection[Any]) -> list[Any]:
            if self.tables.stored_dimensions(conn) is None:
                return []  # nothing ingested yet
            self.tables.ensure_chunks(conn, len(embedding))
            params: list[Any] = [Vector(list(embedding))]
            if filters:
                params.append(json.dumps(dict(filters)))
            params.append(k)
            with conn.transaction():
                conn.execute(_set_local("hnsw.ef_search", max(MIN_EF_SEARCH, 2 * k)))
                if filters:
                    conn.execute("SET LOCAL hnsw.iterative_scan = strict_order")
                return conn.execute(self._search_sql(bool(filters)), params).fetchall()

        rows = self._run("search", run)
        return [
            SearchHit(
                document_id=row[0],
                chunk_index=int(row[1]),
                text=row[2],
                source=row[3],
                metadata=row[4] or {},
                score=1.0 - float(row[5]),
            )
            for row in rows
        ]

    def _search_sql(self, filtered: bool) -> Any:
        select = "SELECT document_id, chunk_index, text, source, metadata, embedding <=> %s AS distance FROM {chunks}"
        where = " WHERE metadata @> %s::jsonb" if filtered else ""
        return self.tables.sql(select + where + " ORDER BY distance LIMIT %s")

    # -- writes ----------------------------------------------------------------------------------------------
    def replace_document(self, write: DocumentWrite, still_current: Callable[[], bool]) -> WriteResult:
        """Replace a document's chunks in one transaction, unless unchanged or `still_current()` says a newer upload
        superseded it (readers see the old chunks or the new ones)."""
        from pgvector import Vector
        from psycopg.types.json import Jsonb

        dimensions = {len(c.embedding) for c in write.chunks}
        if len(dimensions) > 1:
            raise ValueError("all chunks of a document must have embeddings of one size")
        size = next(iter(dimensions), None)

        def run(conn: Connection[Any]) -> WriteResult:
            self.tables.ensure_documents(conn)
            if size is not None:
                self.tables.ensure_chunks(conn, size)
            has_chunks = self.tables.has_chunks_table(conn)
            with conn.transaction():
                self._lock(conn, write.document_id)
                row = conn.execute(
                    self.tables.sql(_DOCUMENT_ROW),
                    (write.document_id,),
                ).fetchone()
                generation = int(row[2]) if row else 0
                if row is not None and row[0] == write.content_hash:
                    return WriteResult("unchanged", generation, int(row[1]))
                if not still_current():
                    return WriteResult("superseded", generation, int(row[1]) if row else 0)
                if has_chunks:
                    conn.execute(self.tables.sql("DELETE FROM {chunks} WHERE document_id = %s"), (write.document_id,))
                if write.chunks:
                    with (
                        conn.cursor() as cursor,
                        cursor.copy(
                            self.tables.sql(
                                "COPY {chunks} (document_id, chunk_index, text, source, metadata, embedding)"
                                " FROM STDIN (FORMAT BINARY)"
                            )
                        ) as copy,
                    ):
                        copy.set_types(["text", "int4", "text", "text", "jsonb", "vector"])
                        for chunk in write.chunks:
                            copy.write_row(
                                (
                                    write.document_id,
                                    chunk.index,
                                    chunk.text,
                                    write.source,
                                    Jsonb(dict(chunk.metadata)),
                                    Vector(list(chunk.embedding)),
                                )
                            )
                generation += 1
                conn.execute(
                    self.tables.sql(
                        "INSERT INTO {documents} (document_id, source, content_hash, chunk_count, generation)"
                        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (document_id) DO UPDATE SET"
                        " source = EXCLUDED.source, content_hash = EXCLUDED.content_hash,"
                        " chunk_count = EXCLUDED.chunk_count, generation = EXCLUDED.generation, updated_at = now()"
                    ),
                    (write.document_id, write.source, write.content_hash, len(write.chunks), generation),
                )
            return WriteResult("written", generation, len(write.chunks))

        return self._run("write a document", run)

    def delete_document(self, document_id: str, still_gone: Callable[[], bool]) -> int | None:
        """Delete a document's chunks if `still_gone()`, leaving a tombstone; returns the new generation (None: it
        came back)."""

        def run(conn: Connection[Any]) -> int | None:
            self.tables.ensure_documents(conn)
            has_chunks = self.tables.has_chunks_table(conn)
            with conn.transaction():
                self._lock(conn, document_id)
                row = conn.execute(
                    self.tables.sql("SELECT generation FROM {documents} WHERE document_id = %s"), (document_id,)
                ).fetchone()
                if not still_gone():
                    return None
                generation = (int(row[0]) if row else 0) + 1
                if has_chunks:
                    conn.execute(self.tables.sql("DELETE FROM {chunks} WHERE document_id = %s"), (document_id,))
                # A tombstone keeps the generation increasing if the document comes back.
                conn.execute(
                    self.tables.sql(
                        "INSERT INTO {documents} (document_id, source, content_hash, chunk_count, generation)"
                        " VALUES (%s, '', NULL, 0, %s) ON CONFLICT (document_id) DO UPDATE SET"
                        " content_hash = NULL, chunk_count = 0, generation = EXCLUDED.generation, updated_at = now()"
                    ),
                    (document_id, generation),
                )
            return generation

        return self._run("delete a document", run)

    def _lock(self, conn: Connection[Any], document_id: str) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"{self.chunks_table}/{document_id}",))

    def drop(self) -> None:
        """Drop the repository's tables."""
        with self._conn("drop the repository") as conn, conn.transaction():
            conn.execute(self.tables.sql("DROP TABLE IF EXISTS {chunks}, {documents}"))
        self.tables.forget()

    def count(self) -> int:
        """How many chunks the repository holds."""

        def run(conn: Connection[Any]) -> int:
            if self.tables.stored_dimensions(conn) is None:
                return 0
            row = conn.execute(self.tables.sql("SELECT count(*) FROM {chunks}")).fetchone()
            return int(row[0]) if row else 0

        return self._run("count", run)
