"""One small connection pool per database per process, and the one place database failures become RAG errors."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from chalicelib.rag.errors import BackendUnavailable

if TYPE_CHECKING:
    from psycopg import Connection
    from psycopg_pool import ConnectionPool

logger = Logger(service="lisa-rag")

POOL_MAX = 4

_pools: dict[str, ConnectionPool] = {}
_pools_lock = threading.Lock()


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
def database_errors(action: str) -> Iterator[None]:
    """Every database failure becomes a `BackendUnavailable` (a 503 for the API, a retry for ingestion):
    none escapes as a bare psycopg error (a 500)."""
    import psycopg
    from psycopg.errors import UndefinedTable
    from psycopg_pool import PoolTimeout

    try:
        yield
    except UndefinedTable as error:
        raise StaleSchema(f"the vector database lost a table of this repository ({action}): {error}") from None
    except (psycopg.OperationalError, PoolTimeout) as error:
        raise BackendUnavailable(f"the vector database is unavailable ({action}): {error}") from None
    except psycopg.Error as error:
        logger.warning("vector database error", action=action, error=str(error), sqlstate=error.sqlstate)
        raise BackendUnavailable(f"the vector database failed ({action}): {error}") from None
