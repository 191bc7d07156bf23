"""PGVector: a repository's chunks in PostgreSQL with the `vector` extension (psycopg 3 + pgvector).

Per repository, two tables named after it (`rag_<slug>_<hash>_documents` / `_chunks`): documents hold each
document's content hash, chunk count and generation; chunks hold text, source, metadata (jsonb) and the embedding
(`vector(d)`, d fixed by the first write) under an HNSW index with cosine distance and a GIN index on metadata.
A document's chunks are replaced in one transaction under a per-document advisory lock; readers see the old
chunks or the new ones, never a mix or none.

Where the database is: the repository's connection (host/port/dbname/user, password from Secrets Manager or SSM
through chalicelib/aws.py), or when it names no host the deployment's default database: `LISA_RAG_PG_DSN` (locally
the runner's embedded PostgreSQL) or `LISA_RAG_PG_SECRET` (in AWS the RDS instance of config.yaml `ragDatabase`).
Connections come from one small pool per database per process.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from aws_lambda_powertools import Logger

from chalicelib.rag.errors import BackendUnavailable, DimensionMismatch
from chalicelib.rag.vectorstores import DocumentWrite, FilterValue, SearchHit, StoredDocument, WriteResult
from chalicelib.settings import get_settings

if TYPE_CHECKING:
    from psycopg import Connection
    from psycopg_pool import ConnectionPool

    from chalicelib.rag.models import PgVectorConnection

T = TypeVar("T")

logger = Logger(service="lisa-rag")

POOL_MAX = 4
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
MIN_EF_SEARCH = 100  # pgvector defaults to 40; clustered data (real embeddings) needs more for recall ≥ 0.95

_pools: dict[str, ConnectionPool] = {}
_pools_lock = threading.Lock()


def table_names(repository_id: str) -> tuple[str, str]:
    """(documents table, chunks table) of a repository: readable, unique and within PostgreSQL's 63 bytes."""
    slug = re.sub(r"[^a-z0-9]+", "_", repository_id.lower()).strip("_")[:32] or "repo"
    digest = hashlib.sha256(repository_id.encode()).hexdigest()[:8]
    base = f"rag_{slug}_{digest}"
    return f"{base}_documents", f"{base}_chunks"


# -- connections -------------------------------------------------------------------------------------------------
def _secret(secret_id: str) -> tuple[str, dict[str, Any]]:
    """A secret's string and, when it is a JSON object (as RDS writes them), its fields."""
    from chalicelib import aws

    value = str(aws.client("secretsmanager").get_secret_value(SecretId=secret_id).get("SecretString") or "")
    try:
        parsed = json.loads(value)
    except ValueError:
        return value, {}
    return value, parsed if isinstance(parsed, dict) else {}


def _password(connection: PgVectorConnection) -> str | None:
    from chalicelib import aws

    if connection.password_secret_id:
        value, fields = _secret(connection.password_secret_id)
        return str(fields["password"]) if "password" in fields else value
    if connection.password_parameter:
        parameter = aws.client("ssm").get_parameter(Name=connection.password_parameter, WithDecryption=True)
        return str(parameter["Parameter"]["Value"])
    return None


def conninfo_for(connection: PgVectorConnection) -> str:
    """The libpq connection string for a repository's connection settings."""
    from psycopg.conninfo import make_conninfo

    if connection.host is None:
        settings = get_settings()
        if settings.rag_pg_dsn:
            return settings.rag_pg_dsn
        if settings.rag_pg_secret:
            return _default_database(settings.rag_pg_secret)
        raise BackendUnavailable(
            "no PostgreSQL database is configured for pgvector repositories"
            " (set LISA_RAG_PG_DSN or LISA_RAG_PG_SECRET, or give the repository a connection host)"
        )
    try:
        password = _password(connection)
    except Exception as error:
        raise BackendUnavailable(f"cannot read the database password: {error}") from None
    return make_conninfo(
        host=connection.host,
        port=connection.port,
        dbname=connection.dbname,
        user=connection.user,
        password=password,
        sslmode=connection.sslmode,
    )


def _default_database(secret_id: str) -> str:
    """The deployment's database from its Secrets Manager secret (RDS's JSON: host, port, username, password,
    dbname), over TLS."""
    from psycopg.conninfo import make_conninfo

    try:
        _, fields = _secret(secret_id)
    except Exception as error:
        raise BackendUnavailable(f"cannot read the database secret {secret_id!r}: {error}") from None
    missing = [key for key in ("host", "username", "password") if not fields.get(key)]
    if missing:
        raise BackendUnavailable(f"the database secret {secret_id!r} has no {', '.join(missing)}")
    return make_conninfo(
        host=str(fields["host"]),
        port=int(fields.get("port") or 5432),
        dbname=str(fields.get("dbname") or "postgres"),
        user=str(fields["username"]),
        password=str(fields["password"]),
        sslmode=str(fields.get("sslmode") or "require"),
    )


def _set_local(name: str, value: int) -> Any:
    from psycopg import sql

    return sql.SQL("SET LOCAL {} = {}").format(sql.SQL(name), sql.Literal(value))


def _configure(conn: Connection[Any]) -> None:
    from pgvector.psycopg import register_vector

    register_vector(conn)


def pool_for(conninfo: str) -> ConnectionPool:
    """The process's pool for a database; the `vector` extension is created on first use if missing."""
    with _pools_lock:
        pool = _pools.get(conninfo)
        if pool is not None:
            return pool
        import psycopg
        from psycopg_pool import ConnectionPool

        with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        pool = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=POOL_MAX,
            open=True,
            configure=_configure,
            check=ConnectionPool.check_connection,
            timeout=15.0,
            kwargs={"connect_timeout": 10, "autocommit": True},
            name="lisa-rag",
        )
        _pools[conninfo] = pool
        return pool


def close_pools() -> None:
    """Close every pool (tests, process shutdown)."""
    with _pools_lock:
        for pool in _pools.values():
            pool.close()
        _pools.clear()


class StaleSchema(BackendUnavailable):
    """A table this process believed in is gone (the repository was deleted, perhaps recreated, by another
    process). The store forgets what it knew and retries once; if it escapes, it is a 503 like any outage."""


@contextmanager
def _database_errors(what: str) -> Iterator[None]:
    """Every database failure becomes a `BackendUnavailable` (a 503 for the API, a retry for ingestion):
    none escapes as a bare psycopg error (a 500)."""
    import psycopg
    from psycopg.errors import UndefinedTable
    from psycopg_pool import PoolTimeout

    try:
        yield
    except UndefinedTable as error:
        raise StaleSchema(f"the vector database lost a table of this repository ({what}): {error}") from None
    except (psycopg.OperationalError, PoolTimeout) as error:
        raise BackendUnavailable(f"the vector database is unavailable ({what}): {error}") from None
    except psycopg.Error as error:
        logger.warning("vector database error", what=what, error=str(error), sqlstate=error.sqlstate)
        raise BackendUnavailable(f"the vector database failed ({what}): {error}") from None


# -- the store ---------------------------------------------------------------------------------------------------
class PgVectorStore:
    """A repository's chunks in PostgreSQL + pgvector."""

    def __init__(self, repository_id: str, connection: PgVectorConnection, conninfo: str | None = None) -> None:
        self.repository_id = repository_id
        self.documents_table, self.chunks_table = table_names(repository_id)
        self._connection = connection
        self._conninfo = conninfo
        self._dimensions: int | None = None
        self._documents_ready = False

    def _pool(self) -> ConnectionPool:
        if self._conninfo is None:
            self._conninfo = conninfo_for(self._connection)
        with _database_errors("connect"):
            return pool_for(self._conninfo)

    @contextmanager
    def _conn(self, what: str) -> Iterator[Connection[Any]]:
        with _database_errors(what), self._pool().connection() as conn:
            yield conn

    def _run(self, what: str, operation: Callable[[Connection[Any]], T]) -> T:
        """`operation` on a pooled connection; if a table it relied on is gone (dropped elsewhere, so this
        process's "tables exist" flags are stale), forget the flags and run it once more from the start."""
        try:
            with self._conn(what) as conn:
                return operation(conn)
        except StaleSchema:
            logger.info("repository tables changed elsewhere; re-checking them", repository=self.repository_id)
            self._forget_schema()
        with self._conn(what) as conn:
            return operation(conn)

    def _forget_schema(self) -> None:
        self._dimensions = None
        self._documents_ready = False

    def _sql(self, template: str) -> Any:
        from psycopg import sql

        return sql.SQL(template).format(
            documents=sql.Identifier(self.documents_table),
            chunks=sql.Identifier(self.chunks_table),
            hnsw=sql.Identifier(f"{self.chunks_table}_hnsw"),
            meta=sql.Identifier(f"{self.chunks_table}_meta"),
        )

    # -- schema ----------------------------------------------------------------------------------------------
    def _ensure_documents(self, conn: Connection[Any]) -> None:
        if self._documents_ready:
            return
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (self.documents_table,))
            conn.execute(
                self._sql(
                    "CREATE TABLE IF NOT EXISTS {documents} ("
                    " document_id text PRIMARY KEY, source text NOT NULL, content_hash text,"
                    " chunk_count integer NOT NULL DEFAULT 0, generation bigint NOT NULL,"
                    " updated_at timestamptz NOT NULL DEFAULT now())"
                )
            )
        self._documents_ready = True

    def _stored_dimensions(self, conn: Connection[Any]) -> int | None:
        row = conn.execute(
            "SELECT a.atttypmod FROM pg_attribute a WHERE a.attrelid = to_regclass(%s) AND a.attname = 'embedding'",
            (self.chunks_table,),
        ).fetchone()
        return None if row is None else int(row[0])

    def _ensure_chunks(self, conn: Connection[Any], dimensions: int) -> None:
        if self._dimensions == dimensions:
            return
        from psycopg import sql

        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (self.chunks_table,))
            stored = self._stored_dimensions(conn)
            if stored is None:
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
                conn.execute(self._sql("CREATE INDEX {meta} ON {chunks} USING gin (metadata jsonb_path_ops)"))
                logger.info("created the chunks table", table=self.chunks_table, dimensions=dimensions)
            elif stored != dimensions:
                raise DimensionMismatch(
                    f"repository {self.repository_id!r} stores {stored}-dimensional vectors but its embedding model"
                    f" gives {dimensions}; delete and recreate the repository to change its embedding model"
                )
        self._dimensions = dimensions

    def ensure_schema(self, dimensions: int | None = None) -> None:
        """Create the repository's tables now (the chunks table and its indexes need the vectors' dimensions);
        otherwise they are created on first use."""

        def run(conn: Connection[Any]) -> None:
            self._ensure_documents(conn)
            if dimensions is not None:
                self._ensure_chunks(conn, dimensions)

        self._run("create the tables", run)

    # -- reads -----------------------------------------------------------------------------------------------
    def current(self, document_id: str) -> StoredDocument | None:
        def run(conn: Connection[Any]) -> Any:
            self._ensure_documents(conn)
            return conn.execute(
                self._sql("SELECT content_hash, chunk_count, generation FROM {documents} WHERE document_id = %s"),
                (document_id,),
            ).fetchone()

        row = self._run("read a document", run)
        return None if row is None else StoredDocument(row[0], int(row[1]), int(row[2]))

    def search(
        self, embedding: Sequence[float], k: int, filters: Mapping[str, FilterValue] | None = None
    ) -> list[SearchHit]:
        from pgvector import Vector

        def run(conn: Connection[Any]) -> list[Any]:
            if self._stored_dimensions(conn) is None:
                return []  # nothing ingested yet
            self._ensure_chunks(conn, len(embedding))
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
        return self._sql(select + where + " ORDER BY distance LIMIT %s")

    # -- writes ----------------------------------------------------------------------------------------------
    def replace_document(self, write: DocumentWrite, still_current: Callable[[], bool]) -> WriteResult:
        from pgvector import Vector
        from psycopg.types.json import Jsonb

        dimensions = {len(c.embedding) for c in write.chunks}
        if len(dimensions) > 1:
            raise ValueError("all chunks of a document must have embeddings of one size")
        size = next(iter(dimensions), None)

        def run(conn: Connection[Any]) -> WriteResult:
            self._ensure_documents(conn)
            if size is not None:
                self._ensure_chunks(conn, size)
            has_chunks = self._dimensions is not None or self._stored_dimensions(conn) is not None
            with conn.transaction():
                self._lock(conn, write.document_id)
                row = conn.execute(
                    self._sql("SELECT content_hash, chunk_count, generation FROM {documents} WHERE document_id = %s"),
                    (write.document_id,),
                ).fetchone()
                generation = int(row[2]) if row else 0
                if row is not None and row[0] == write.content_hash:
                    return WriteResult("unchanged", generation, int(row[1]))
                if not still_current():
                    return WriteResult("superseded", generation, int(row[1]) if row else 0)
                if has_chunks:
                    conn.execute(self._sql("DELETE FROM {chunks} WHERE document_id = %s"), (write.document_id,))
                if write.chunks:
                    with (
                        conn.cursor() as cursor,
                        cursor.copy(
                            self._sql(
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
                    self._sql(
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
        def run(conn: Connection[Any]) -> int | None:
            self._ensure_documents(conn)
            has_chunks = self._dimensions is not None or self._stored_dimensions(conn) is not None
            with conn.transaction():
                self._lock(conn, document_id)
                row = conn.execute(
                    self._sql("SELECT generation FROM {documents} WHERE document_id = %s"), (document_id,)
                ).fetchone()
                if not still_gone():
                    return None
                generation = (int(row[0]) if row else 0) + 1
                if has_chunks:
                    conn.execute(self._sql("DELETE FROM {chunks} WHERE document_id = %s"), (document_id,))
                # A tombstone keeps the generation increasing if the document comes back.
                conn.execute(
                    self._sql(
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
        with self._conn("drop the repository") as conn, conn.transaction():
            conn.execute(self._sql("DROP TABLE IF EXISTS {chunks}, {documents}"))
        self._dimensions = None
        self._documents_ready = False

    def count(self) -> int:
        """How many chunks the repository holds."""

        def run(conn: Connection[Any]) -> int:
            if self._stored_dimensions(conn) is None:
                return 0
            row = conn.execute(self._sql("SELECT count(*) FROM {chunks}")).fetchone()
            return int(row[0]) if row else 0

        return self._run("count", run)
