"""A pgvector repository's two tables (DDL): created on first use under advisory locks, and what this process
believes about them (a flag per table), forgotten when another process drops them."""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from chalicelib.rag.errors import DimensionMismatch

if TYPE_CHECKING:
    from psycopg import Connection

logger = Logger(service="lisa-rag")

HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64


def table_names(repository_id: str) -> tuple[str, str]:
    """(documents table, chunks table) of a repository: readable, unique and within PostgreSQL's 63 bytes."""
    slug = re.sub(r"[^a-z0-9]+", "_", repository_id.lower()).strip("_")[:32] or "repo"
    digest = hashlib.sha256(repository_id.encode()).hexdigest()[:8]
    base = f"rag_{slug}_{digest}"
    return f"{base}_documents", f"{base}_chunks"


class RepositoryTables:
    """The documents and chunks tables of one repository; `dimensions` is the chunks table's vector size once
    this process has seen it (the table exists with that size)."""

    def __init__(self, repository_id: str) -> None:
        self.repository_id = repository_id
        self.documents_table, self.chunks_table = table_names(repository_id)
        self.dimensions: int | None = None
        self._documents_ready = False

    def forget(self) -> None:
        """The tables changed elsewhere (dropped, perhaps recreated): check them again on next use."""
        self.dimensions = None
        self._documents_ready = False

    def sql(self, template: str) -> Any:
        """`template` with `{documents}`, `{chunks}`, `{hnsw}`, `{meta}` filled in as quoted identifiers."""
        from psycopg import sql

        return sql.SQL(template).format(
            documents=sql.Identifier(self.documents_table),
            chunks=sql.Identifier(self.chunks_table),
            hnsw=sql.Identifier(f"{self.chunks_table}_hnsw"),
            meta=sql.Identifier(f"{self.chunks_table}_meta"),
        )

    def ensure_documents(self, conn: Connection[Any]) -> None:
        """Create the documents table if it is missing."""
        if self._documents_ready:
            return
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (self.documents_table,))
            conn.execute(
                self.sql(
                    "CREATE TABLE IF NOT EXISTS {documents} ("
                    " document_id text PRIMARY KEY, source text NOT NULL, content_hash text,"
                    " chunk_count integer NOT NULL DEFAULT 0, generation bigint NOT NULL,"
                    " updated_at timestamptz NOT NULL DEFAULT now())"
                )
            )
        self._documents_ready = True

    def stored_dimensions(self, conn: Connection[Any]) -> int | None:
        """The chunks table's vector size, or None if the table does not exist (nothing ingested yet)."""
        row = conn.execute(
            "SELECT a.atttypmod FROM pg_attribute a WHERE a.attrelid = to_regclass(%s) AND a.attname = 'embedding'",
            (self.chunks_table,),
        ).fetchone()
        return None if row is None else int(row[0])

    def has_chunks_table(self, conn: Connection[Any]) -> bool:
        """Whether the chunks table exists (known, or asked)."""
        return self.dimensions is not None or self.stored_dimensions(conn) is not None

    def ensure_chunks(self, conn: Connection[Any], dimensions: int) -> None:
        """Create the chunks table and its indexes for `dimensions`-sized vectors, or check the stored size."""
        if self.dimensions == dimensions:
            return
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (self.chunks_table,))
            stored = self.stored_dimensions(conn)
            if stored is None:
                self._create_chunks(conn, dimensions)
            elif stored != dimensions:
                raise DimensionMismatch(
                    f"repository {self.repository_id!r} stores {stored}-dimensional vectors but its embedding model"
                    f" gives {dimensions}; delete and recreate the repository to change its embedding model"
                )
        self.dimensions = dimensions

    def _create_chunks(self, conn: Connection[Any], dimensions: int) -> None:
        from psycopg import sql

        conn.execute(
            sql.SQL(
                "CREATE TABLE {chunks} ("
                " id bigserial PRIMARY KEY, document_id text NOT NULL, chunk_index integer NOT NULL,"
                " text text NOT NULL, source text NOT NULL, metadata jsonb NOT NULL DEFAULT '{{}}',"
                " embedding vector({dims}) NOT NULL, UNIQUE (document_id, chunk_index))"
            ).format(chunks=sql.Identifier(self.chunks_table), dims=sql.Literal(dimensions))
        )
        conn.execute(
            sql.SQL(
                "CREATE INDEX {hnsw} ON {chunks} USING hnsw (embedding vector_cosine_ops)"
                " WITH (m = {m}, ef_construction = {ef})"
            ).format(
                hnsw=sql.Identifier(f"{self.chunks_table}_hnsw"),
                chunks=sql.Identifier(self.chunks_table),
                m=sql.Literal(HNSW_M),
                ef=sql.Literal(HNSW_EF_CONSTRUCTION),
            )
        )
        conn.execute(self.sql("CREATE INDEX {meta} ON {chunks} USING gin (metadata jsonb_path_ops)"))
        logger.info("created the chunks table", table=self.chunks_table, dimensions=dimensions)
