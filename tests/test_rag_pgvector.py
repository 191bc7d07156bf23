"""The PGVector store on a real embedded PostgreSQL 18 + pgvector: cosine search, idempotent writes, atomic
replacement, deletes with increasing generations, metadata filters, dimension checks, the HNSW index."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator

import psycopg
import psycopg.sql
import pytest

from chalicelib.rag.errors import BackendUnavailable, DimensionMismatch
from chalicelib.rag.models import PgVectorConnection
from chalicelib.rag.vectorstores import ChunkRecord, DocumentWrite
from chalicelib.rag.vectorstores.pgvector import PgVectorStore, close_pools, table_names
from tests.support.postgres import drop_rag_tables

DIMS = 8


def _unit(*weights: float) -> list[float]:
    vector = list(weights) + [0.0] * (DIMS - len(weights))
    norm = math.sqrt(sum(v * v for v in vector))
    return [v / norm for v in vector]


def _write(doc: str, content_hash: str, vectors: list[list[float]], **metadata: str) -> DocumentWrite:
    chunks = [
        ChunkRecord(
            i, f"{doc} chunk {i} ({content_hash})", v, {"documentId": doc, "filename": f"{doc}.txt", **metadata}
        )
        for i, v in enumerate(vectors)
    ]
    return DocumentWrite(doc, content_hash, f"s3://docs/repo/{doc}.txt", chunks)


def _always() -> bool:
    return True


@pytest.fixture
def store(postgres_dsn: str) -> Iterator[PgVectorStore]:
    drop_rag_tables(postgres_dsn)
    yield PgVectorStore("Test Repo", PgVectorConnection(), conninfo=postgres_dsn)
    close_pools()


def test_search_ranks_by_cosine_similarity_and_reports_sources(store: PgVectorStore) -> None:
    store.replace_document(_write("a", "h1", [_unit(1), _unit(0, 1)]), _always)
    store.replace_document(_write("b", "h1", [_unit(1, 1), _unit(0, 0, 1)]), _always)
    hits = store.search(_unit(1, 0.1), k=3)
    assert [(h.document_id, h.chunk_index) for h in hits] == [("a", 0), ("b", 0), ("a", 1)]
    assert hits[0].score == pytest.approx(_unit(1, 0.1)[0], abs=1e-5)
    assert hits[1].score == pytest.approx(sum(x * y for x, y in zip(_unit(1, 0.1), _unit(1, 1), strict=True)), abs=1e-5)
    assert hits[0].source == "s3://docs/repo/a.txt"
    assert hits[0].text == "a chunk 0 (h1)"
    assert hits[0].metadata["filename"] == "a.txt"
    assert store.count() == 4


def test_same_content_hash_writes_nothing_new(store: PgVectorStore) -> None:
    first = store.replace_document(_write("a", "h1", [_unit(1), _unit(0, 1)]), _always)
    again = store.replace_document(_write("a", "h1", [_unit(1), _unit(0, 1)]), _always)
    assert (first.outcome, first.generation, first.chunk_count) == ("written", 1, 2)
    assert (again.outcome, again.generation, again.chunk_count) == ("unchanged", 1, 2)
    assert store.count() == 2
    current = store.current("a")
    assert current is not None
    assert (current.content_hash, current.chunk_count, current.generation) == ("h1", 2, 1)


def test_a_changed_document_replaces_its_chunks(store: PgVectorStore) -> None:
    store.replace_document(_write("a", "h1", [_unit(1), _unit(0, 1), _unit(0, 0, 1)]), _always)
    store.replace_document(_write("b", "h1", [_unit(0, 0, 0, 1)]), _always)
    result = store.replace_document(_write("a", "h2", [_unit(1, 1)]), _always)
    assert (result.outcome, result.generation, result.chunk_count) == ("written", 2, 1)
    texts = sorted(h.text for h in store.search(_unit(1), k=10))
    assert texts == ["a chunk 0 (h2)", "b chunk 0 (h1)"]


def test_a_write_for_an_object_that_changed_meanwhile_is_superseded(store: PgVectorStore) -> None:
    store.replace_document(_write("a", "h1", [_unit(1)]), _always)
    result = store.replace_document(_write("a", "h2", [_unit(0, 1)]), lambda: False)
    assert result.outcome == "superseded"
    assert [h.text for h in store.search(_unit(1), k=5)] == ["a chunk 0 (h1)"]


def test_delete_removes_chunks_and_generations_keep_increasing(store: PgVectorStore) -> None:
    store.replace_document(_write("a", "h1", [_unit(1), _unit(0, 1)]), _always)
    store.replace_document(_write("b", "h1", [_unit(1)]), _always)
    assert store.delete_document("a", still_gone=lambda: False) is None  # the object came back: keep it
    assert store.count() == 3
    assert store.delete_document("a", still_gone=_always) == 2
    assert {h.document_id for h in store.search(_unit(1), k=10)} == {"b"}
    gone = store.current("a")
    assert gone is not None
    assert (gone.content_hash, gone.chunk_count) == (None, 0)
    back = store.replace_document(_write("a", "h1", [_unit(1)]), _always)  # same bytes as before the delete
    assert (back.outcome, back.generation) == ("written", 3)


def test_metadata_filters_select_by_equality(store: PgVectorStore) -> None:
    store.replace_document(_write("a", "h1", [_unit(1), _unit(1, 0.2)], team="red"), _always)
    store.replace_document(_write("b", "h1", [_unit(1, 0.1)], team="blue"), _always)
    assert {h.document_id for h in store.search(_unit(1), k=5, filters={"team": "blue"})} == {"b"}
    assert [h.chunk_index for h in store.search(_unit(1), k=5, filters={"documentId": "a"})] == [0, 1]
    assert store.search(_unit(1), k=5, filters={"team": "green"}) == []


def test_vectors_of_another_size_are_refused(store: PgVectorStore) -> None:
    store.replace_document(_write("a", "h1", [_unit(1)]), _always)
    with pytest.raises(DimensionMismatch, match="8-dimensional"):
        store.replace_document(DocumentWrite("b", "h1", "s3://x", [ChunkRecord(0, "t", [1.0, 0.0, 0.0])]), _always)
    fresh = PgVectorStore("Test Repo", PgVectorConnection(), conninfo=store._conninfo)  # another process's view
    with pytest.raises(DimensionMismatch):
        fresh.search([1.0, 0.0], k=1)


def test_empty_repository_searches_find_nothing_and_failed_documents_store_no_chunks(store: PgVectorStore) -> None:
    assert store.search(_unit(1), k=3) == []
    result = store.replace_document(DocumentWrite("bad", "h9", "s3://docs/repo/bad.pdf", []), _always)
    assert (result.outcome, result.chunk_count) == ("written", 0)
    assert store.search(_unit(1), k=3) == []
    assert store.replace_document(DocumentWrite("bad", "h9", "s3://x", []), _always).outcome == "unchanged"


def test_chunks_use_an_hnsw_cosine_index(store: PgVectorStore, postgres_dsn: str) -> None:
    store.replace_document(_write("a", "h1", [_unit(1)]), _always)
    documents, chunks = table_names("Test Repo")
    assert documents.startswith("rag_test_repo_")
    assert chunks.endswith("_chunks")
    with psycopg.connect(postgres_dsn) as conn:
        definitions = [r[0] for r in conn.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s", (chunks,))]
    assert any("USING hnsw (embedding vector_cosine_ops)" in d for d in definitions), definitions


def test_readers_never_see_a_half_replaced_document(store: PgVectorStore) -> None:
    """A replacement is one transaction: concurrent searches see the old 3 chunks or the new 3, never a mix."""
    store.replace_document(_write("a", "v0", [_unit(1), _unit(1, 0.1), _unit(1, 0.2)]), _always)
    stop = threading.Event()
    seen: list[set[str]] = []

    def read() -> None:
        while not stop.is_set():
            hits = store.search(_unit(1), k=10, filters={"documentId": "a"})
            seen.append({h.text.rsplit("(", 1)[1] for h in hits} | {f"n={len(hits)}"})

    readers = [threading.Thread(target=read) for _ in range(2)]
    for reader in readers:
        reader.start()
    try:
        for version in range(1, 15):
            vectors = [_unit(1, 0.05 * version), _unit(1, 0.1), _unit(1, 0.3)]
            store.replace_document(_write("a", f"v{version}", vectors), _always)
    finally:
        stop.set()
        for reader in readers:
            reader.join(10)
    assert seen
    for snapshot in seen:
        assert len(snapshot) == 2, snapshot  # one version...
        assert "n=3" in snapshot, snapshot  # ...and all three of its chunks


@pytest.mark.parametrize("source", ["secret-json", "secret-plain", "ssm"])
def test_a_repository_database_password_comes_from_secrets_manager_or_ssm(
    aws_env: str, postgres_dsn: str, source: str
) -> None:
    """A repository naming its own database: host/port/dbname/user plus where the password is (never the password)."""
    import json
    from urllib.parse import unquote, urlsplit

    from chalicelib import aws

    parts = urlsplit(postgres_dsn)
    password = unquote(parts.password or "")
    fields: dict[str, object] = {"host": parts.hostname, "port": parts.port, "dbname": "lisa", "user": parts.username}
    if source == "ssm":
        aws.client("ssm").put_parameter(Name="/lisa/rag/pg", Value=password, Type="SecureString")
        fields["passwordParameter"] = "/lisa/rag/pg"
    else:
        value = json.dumps({"username": parts.username, "password": password}) if source == "secret-json" else password
        aws.client("secretsmanager").create_secret(Name="lisa/rag/pg", SecretString=value)
        fields["passwordSecretId"] = "lisa/rag/pg"
    connection = PgVectorConnection.model_validate({**fields, "sslmode": "disable"})
    drop_rag_tables(postgres_dsn)
    store = PgVectorStore(f"own-db-{source}", connection)
    try:
        store.replace_document(_write("a", "h1", [_unit(1)]), _always)
        assert [h.document_id for h in store.search(_unit(1), k=1)] == ["a"]
    finally:
        close_pools()


def test_a_wrong_password_source_is_a_clear_unavailable_error(aws_env: str) -> None:
    from chalicelib.rag.errors import BackendUnavailable

    connection = PgVectorConnection.model_validate({"host": "127.0.0.1", "passwordSecretId": "missing-secret"})
    with pytest.raises(BackendUnavailable, match="cannot read the database password"):
        PgVectorStore("x", connection).search(_unit(1), k=1)


def test_the_default_database_comes_from_an_rds_style_secret(
    aws_env: str, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In AWS the repositories without a host use the deployment's RDS database, found through its secret."""
    import json
    from urllib.parse import unquote, urlsplit

    from chalicelib import aws
    from chalicelib.rag.errors import BackendUnavailable
    from chalicelib.settings import get_settings

    parts = urlsplit(postgres_dsn)
    rds_secret = {  # the fields RDS writes, plus an sslmode override (the embedded server has no TLS)
        "engine": "postgres",
        "host": parts.hostname,
        "port": parts.port,
        "username": parts.username,
        "password": unquote(parts.password or ""),
        "dbname": parts.path.lstrip("/"),
        "sslmode": "disable",
    }
    secrets = aws.client("secretsmanager")
    secrets.create_secret(Name="lisa-dev-rag-db", SecretString=json.dumps(rds_secret))
    secrets.create_secret(Name="no-password", SecretString=json.dumps({"host": "db", "username": "u"}))
    monkeypatch.delenv("LISA_RAG_PG_DSN", raising=False)
    monkeypatch.setenv("LISA_RAG_PG_SECRET", "lisa-dev-rag-db")
    get_settings.cache_clear()
    drop_rag_tables(postgres_dsn)
    try:
        store = PgVectorStore("default-db", PgVectorConnection())
        store.replace_document(_write("a", "h1", [_unit(1)]), _always)
        assert [h.document_id for h in store.search(_unit(1), k=1)] == ["a"]
        monkeypatch.setenv("LISA_RAG_PG_SECRET", "no-password")
        get_settings.cache_clear()
        with pytest.raises(BackendUnavailable, match="'no-password' has no password"):
            PgVectorStore("other", PgVectorConnection()).search(_unit(1), k=1)
    finally:
        close_pools()
        monkeypatch.undo()
        get_settings.cache_clear()


def test_tables_dropped_by_another_process_are_recreated_not_a_stuck_retry(store: PgVectorStore) -> None:
    """Another process (another Lambda) deletes the repository, perhaps recreates it: this process's memory that
    the tables exist is stale; writes, reads and deletes re-check the tables and succeed."""
    store.replace_document(_write("a", "h1", [_unit(1)]), _always)
    elsewhere = PgVectorStore("Test Repo", PgVectorConnection(), conninfo=store._conninfo)
    elsewhere.drop()

    assert store.replace_document(_write("b", "h1", [_unit(0, 1)]), _always).outcome == "written"
    assert [h.document_id for h in store.search(_unit(0, 1), 3)] == ["b"]
    elsewhere.drop()
    assert store.current("b") is None
    elsewhere.drop()
    assert store.delete_document("b", _always) == 1
    assert store.count() == 0


def test_other_database_errors_are_a_backend_unavailable_not_a_bare_psycopg_error(
    store: PgVectorStore, postgres_dsn: str
) -> None:
    store.replace_document(_write("a", "h1", [_unit(1)]), _always)
    documents, _ = table_names("Test Repo")
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:  # a schema this code did not make
        conn.execute(psycopg.sql.SQL("ALTER TABLE {} DROP COLUMN generation").format(psycopg.sql.Identifier(documents)))
    with pytest.raises(BackendUnavailable, match="the vector database failed"):
        store.current("a")
