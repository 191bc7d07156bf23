"""Real PostgreSQL + pgvector for tests: the embedded server from runner/postgres.py, once per test session.

`postgres_dsn` yields the DSN of a server started in a temporary directory (fsync off: tests need no durability);
`rag_env` (tests/test_rag*.py) points LISA's settings at it per test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runner.postgres import LocalPostgres


@pytest.fixture(scope="session")
def postgres_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """DSN of a session-wide embedded PostgreSQL 18 with the `vector` extension created."""
    server = LocalPostgres(tmp_path_factory.mktemp("postgres") / "data", durable=False)
    dsn = server.start()
    try:
        yield dsn
    finally:
        server.stop()


def drop_rag_tables(dsn: str) -> None:
    """Remove every repository's tables (a clean vector database for one test)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        names = [row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE 'rag\\_%'")]
        for name in names:
            conn.execute(f'DROP TABLE IF EXISTS "{name}" CASCADE')


@pytest.fixture
def rag_env(aws_env: str, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A clean RAG world for one test: fresh moto state (tables, buckets, ingestion queue), LISA's settings pointed
    at the session's PostgreSQL (`LISA_RAG_PG_DSN`) with no repository tables in it, and no cached repositories,
    stores or registry. Yields the DSN."""
    from chalicelib import aws
    from chalicelib.rag.repositories import RepositoryStore
    from chalicelib.rag.vectorstores import forget_stores
    from chalicelib.registry.resolver import reset_registry

    monkeypatch.setenv("LISA_RAG_PG_DSN", postgres_dsn)
    aws.reset()
    drop_rag_tables(postgres_dsn)
    RepositoryStore.clear_cache()
    forget_stores()
    reset_registry()
    yield postgres_dsn
    RepositoryStore.clear_cache()
    forget_stores()
    reset_registry()
    aws.reset()
