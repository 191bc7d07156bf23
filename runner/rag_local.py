"""Local RAG for the local stack (`make run`) in one call (local-only, never deployed).

    rag = start_local_rag(config, state_dir)            # after bootstrap() and the registry sync
    app = create_app(settings, augment_chat=rag.augmenter)
    ...
    rag.stop()

`start_local_rag` starts the embedded PostgreSQL + pgvector in `<state_dir>/postgres` (kept between runs, so
documents survive a restart) unless a DSN is given, points LISA's settings at it (`LISA_RAG_PG_DSN`), makes sure the
ingestion queue, its DLQ and the docs bucket → queue notification exist (idempotent; runner/bootstrap.py), seeds the
repositories from config.yaml (`ragRepositories`, e.g. `default`), creates their pgvector tables (the chunks table
once the repository's embedding model answers: its endpoint must be in the registry by then), and starts the SQS
poller thread that feeds the ingestion handler (the Lambda event source mapping's local stand-in).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from aws_lambda_powertools import Logger

from chalicelib.config import LisaConfig
from chalicelib.settings import get_settings
from router.rag import RagAugmenter
from runner.postgres import LocalPostgres
from runner.sqs_poller import SqsPoller

logger = Logger(service="lisa-rag-local")

RETRY_DELAY_SECONDS = 10  # a failed ingestion message is retried after this long (AWS: the visibility timeout)


@dataclass
class LocalRag:
    """Local RAG's running parts; `augmenter` goes to the router's `create_app(augment_chat=...)`."""

    dsn: str
    augmenter: RagAugmenter
    poller: SqsPoller
    postgres: LocalPostgres | None = None
    repositories: list[str] = field(default_factory=list)
    _previous_dsn: str | None = None

    def stop(self) -> None:
        """Stop the poller, close the database pools and stop PostgreSQL (if this started it)."""
        from chalicelib.rag.vectorstores import forget_stores
        from chalicelib.rag.vectorstores.pgvector import close_pools

        self.poller.stop()
        close_pools()
        forget_stores()
        if self.postgres is not None:
            self.postgres.stop()
        if self._previous_dsn is None:
            os.environ.pop("LISA_RAG_PG_DSN", None)
        else:
            os.environ["LISA_RAG_PG_DSN"] = self._previous_dsn
        get_settings.cache_clear()


def start_local_rag(config: LisaConfig, state_dir: Path, *, dsn: str | None = None) -> LocalRag:
    """Bring up local RAG (see the module docstring); AWS (moto) must be up and bootstrapped."""
    from chalicelib.rag.repositories import RepositoryStore, sync_repositories
    from runner.bootstrap import create_ingestion_queue

    postgres: LocalPostgres | None = None
    if dsn is None:
        postgres = LocalPostgres(Path(state_dir) / "postgres")
        dsn = postgres.start()
    previous_dsn = os.environ.get("LISA_RAG_PG_DSN")
    os.environ["LISA_RAG_PG_DSN"] = dsn
    get_settings.cache_clear()
    try:
        create_ingestion_queue()
        result = sync_repositories(config)
        RepositoryStore.clear_cache()
        repositories = [r.repository_id for r in config.rag_repositories]
        for repository_id in repositories:
            _prepare_store(repository_id)
        poller = SqsPoller.for_ingestion(retry_delay=RETRY_DELAY_SECONDS).start()
    except BaseException:
        if postgres is not None:
            postgres.stop()
        raise
    logger.info("local RAG is up", repositories=result.to_dict(), dsn_host=dsn.rsplit("@", 1)[-1])
    return LocalRag(dsn, RagAugmenter(), poller, postgres, repositories, previous_dsn)


def _prepare_store(repository_id: str) -> None:
    """Create a pgvector repository's tables now; its chunks table once its embedding model answers."""
    from chalicelib.rag.embedding import RepositoryEmbedder
    from chalicelib.rag.errors import RagError
    from chalicelib.rag.repositories import RepositoryStore
    from chalicelib.rag.vectorstores import store_for
    from chalicelib.rag.vectorstores.pgvector import PgVectorStore

    repository = RepositoryStore().get(repository_id)
    store = store_for(repository)
    if not isinstance(store, PgVectorStore):
        return  # OpenSearch creates its index on the first write
    dimensions: int | None = None
    with contextlib.suppress(RagError):  # the model is not up yet: the chunks table comes with the first document
        dimensions = len(RepositoryEmbedder(repository.embedding_model_id).embed_query("dimensions"))
    store.ensure_schema(dimensions)
