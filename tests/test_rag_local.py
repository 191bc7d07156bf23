"""`runner/rag_local.start_local_rag` as the local stack calls it, with no database given: it starts its own embedded
PostgreSQL in the state dir, creates the default repository's tables (384 dims, asked of the registered TEI worker),
ingests through its poller thread, and after stop() and a new start the documents are still there."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest

from chalicelib.config import load_config
from chalicelib.rag.models import DocumentStatus
from chalicelib.rag.repositories import RepositoryStore
from chalicelib.rag.service import search_repository
from chalicelib.rag.vectorstores.pgvector import table_names
from chalicelib.settings import get_settings
from runner.rag_local import start_local_rag
from tests.support.rag import document, put_document, register_embedder

pytestmark = pytest.mark.slow

CONFIG = Path(__file__).resolve().parents[1] / "config.yaml"


def test_local_rag_owns_its_database_and_keeps_documents_across_restarts(
    rag_env: str,
    tei_worker: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LISA_RAG_PG_DSN")
    get_settings.cache_clear()
    config = load_config(CONFIG)
    register_embedder(tei_worker, name=config.rag_repositories[0].embedding_model_id)

    rag = start_local_rag(config, tmp_path / "state")
    try:
        assert rag.postgres is not None
        assert rag.dsn != rag_env
        assert get_settings().rag_pg_dsn == rag.dsn
        assert (tmp_path / "state" / "postgres" / "PG_VERSION").exists()
        _, chunks = table_names("default")
        with psycopg.connect(rag.dsn) as conn:
            row = conn.execute(
                "SELECT atttypmod FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = 'embedding'",
                (chunks,),
            ).fetchone()
        assert row == (384,)  # the chunks table was made for the embedding model's vectors before any document

        put_document("default/notes.txt", b"The lighthouse keeper lights the lamp at dusk every evening.")
        deadline = time.monotonic() + 60
        while (record := document("default/notes.txt")) is None or record.status is not DocumentStatus.READY:
            assert time.monotonic() < deadline, "the poller thread did not ingest the document"
            time.sleep(0.2)
    finally:
        rag.stop()
    assert get_settings().rag_pg_dsn is None
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(rag.dsn, connect_timeout=2).close()

    again = start_local_rag(config, tmp_path / "state")
    try:
        [hit] = search_repository(RepositoryStore().get("default"), "when is the lamp lit?", 1)
        assert "lighthouse keeper" in hit.text
    finally:
        again.stop()
