"""RAG throughput and search quality, against baselines measured in the same run.

1. Ingestion, end to end: documents put into the docs bucket (moto server) → S3 notifications → SQS → the local
   event source mapping (runner/sqs_poller.py) → the ingestion handler (parse, chunk, embed through the real TEI
   worker serving all-MiniLM-L6-v2, write to pgvector) — chunks/s, against the same worker's raw embedding
   throughput on the same chunk texts (batches of 32, no LISA in between). Target at least 0.8 of it.
2. Search at scale: 100k synthetic 384-dim chunks (a mixture of clusters, bulk COPY) in a repository's pgvector
   table with its HNSW cosine index; `PgVectorStore.search` k=10 latency p50/p99 and recall@10 against exact search
   (the same query with index scans off) on the same table. Targets: p50 ≤ 10 ms, recall ≥ 0.95.
"""

from __future__ import annotations

import logging
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

DOCUMENTS = 8
SENTENCES_PER_DOCUMENT = 240  # ~48 chunks of ≤512 characters each
CHUNKS = 100_000
DIMENSIONS = 384
CLUSTERS = 200
QUERIES = 200
EXACT_QUERIES = 50
K = 10

_VOCABULARY = (
    "solar wind battery grid turbine panel storage voltage current inverter river valley mountain forest harbour "
    "engine rotor blade cell lithium copper steel concrete bridge tunnel station signal network cable fibre data "
    "model token cluster vector index query answer source document library archive report budget revenue margin"
)


def _prose(seed: int) -> str:
    import random

    rng, words = random.Random(seed), _VOCABULARY.split()
    paragraphs, sentences = [], []
    for i in range(SENTENCES_PER_DOCUMENT):
        words = [rng.choice(words) for _ in range(rng.randint(8, 16))]
        sentences.append(" ".join(words).capitalize() + ".")
        if i % 6 == 5:
            paragraphs.append(" ".join(sentences))
            sentences = []
    return "\n\n".join(paragraphs)


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def _ingestion(tei_url: str) -> None:
    from chalicelib import aws
    from chalicelib.config import RagRepository
    from chalicelib.rag.chunking import split_text
    from chalicelib.rag.repositories import RepositoryStore
    from chalicelib.rag.vectorstores import store_for
    from chalicelib.registry.models import CreateModelRequest
    from chalicelib.registry.resolver import reset_registry
    from chalicelib.registry.store import ModelStore
    from chalicelib.serve.clients import TeiClient
    from chalicelib.settings import get_settings
    from runner.sqs_poller import SqsPoller

    ModelStore().create(
        CreateModelRequest.model_validate(
            {"modelName": "minilm", "hfModelId": "sentence-transformers/all-MiniLM-L6-v2", "inferenceContainer": "tei",
             "endpointUrl": tei_url}
        )
    )  # fmt: skip
    reset_registry()
    repository = RagRepository.model_validate(
        {"repositoryId": "bench", "type": "pgvector", "embeddingModelId": "minilm",
         "chunking": {"size": 512, "overlap": 51}}
    )  # fmt: skip
    RepositoryStore().create(repository, created_by="bench")
    texts = [_prose(i) for i in range(DOCUMENTS)]
    chunk_texts = [c for t in texts for c in split_text(t, 512, 51)]

    client = TeiClient(tei_url)
    client.embed(chunk_texts[:32])  # warm up

    def raw_throughput() -> float:
        start = time.perf_counter()
        for i in range(0, len(chunk_texts), 32):
            client.embed(chunk_texts[i : i + 32])
        return len(chunk_texts) / (time.perf_counter() - start)

    raw_before = raw_throughput()
    poller = SqsPoller.for_ingestion(retry_delay=1)
    s3, bucket = aws.client("s3"), get_settings().docs_bucket
    s3.put_object(Bucket=bucket, Key="bench/warmup.txt", Body=b"Warm up the handler, the pool and the tables.")
    poller.drain(60)
    store: Any = store_for(RepositoryStore().get("bench"))
    before = store.count()
    start = time.perf_counter()
    for i, text in enumerate(texts):
        s3.put_object(Bucket=bucket, Key=f"bench/doc-{i:03d}.txt", Body=text.encode())
    stats = poller.drain(300)
    elapsed = time.perf_counter() - start
    stored = store.count() - before
    end_to_end = stored / elapsed
    raw_after = raw_throughput()  # the machine is shared: the baseline is measured before and after, averaged
    raw = (raw_before + raw_after) / 2
    print(f"ingestion: {DOCUMENTS} documents, {stored} chunks ({len(chunk_texts)} expected), failed messages "
          f"{stats.failed}", flush=True)  # fmt: skip
    print(f"  baseline: raw TEI /embed, batches of 32        {raw:8.1f} chunks/s (before {raw_before:.1f}, after"
          f" {raw_after:.1f})", flush=True)  # fmt: skip
    print(
        f"  end to end: S3 → SQS → handler → TEI → pgvector {end_to_end:8.1f} chunks/s"
        f"   x{end_to_end / raw:.2f} of baseline (target ≥ 0.80)",
        flush=True,
    )


def _search(dsn: str) -> None:
    import numpy as np
    import psycopg
    from pgvector import Vector
    from pgvector.psycopg import register_vector
    from psycopg import sql
    from psycopg.types.json import Jsonb

    from chalicelib.rag.models import PgVectorConnection
    from chalicelib.rag.vectorstores.pgvector import HNSW_EF_CONSTRUCTION, HNSW_M, PgVectorStore, close_pools

    rng = np.random.default_rng(7)
    centers = rng.normal(size=(CLUSTERS, DIMENSIONS)).astype(np.float32)

    def sample(n: int) -> Any:
        points = centers[rng.integers(0, CLUSTERS, n)] + 0.6 * rng.normal(size=(n, DIMENSIONS)).astype(np.float32)
        return points / np.linalg.norm(points, axis=1, keepdims=True)

    data, queries = sample(CHUNKS), sample(QUERIES)
    store = PgVectorStore("bench-100k", PgVectorConnection(), conninfo=dsn)
    store.ensure_schema(DIMENSIONS)
    hnsw = sql.Identifier(f"{store.chunks_table}_hnsw")
    chunks = sql.Identifier(store.chunks_table)
    start = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        register_vector(conn)
        conn.execute(sql.SQL("DROP INDEX {}").format(hnsw))  # bulk load first, then build the index once
        with conn.cursor() as cursor, cursor.copy(
            sql.SQL("COPY {} (document_id, chunk_index, text, source, metadata, embedding) FROM STDIN (FORMAT BINARY)")
            .format(chunks)
        ) as copy:  # fmt: skip
            copy.set_types(["text", "int4", "text", "text", "jsonb", "vector"])
            for i, vector in enumerate(data):
                doc = f"doc-{i // 100:04d}"
                copy.write_row(
                    (doc, i % 100, f"chunk {i}", f"s3://bench/{doc}.txt", Jsonb({"filename": "x.txt"}), Vector(vector))
                )
        loaded = time.perf_counter() - start
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("SET max_parallel_maintenance_workers = 1")
        start = time.perf_counter()
        conn.execute(
            sql.SQL("CREATE INDEX {} ON {} USING hnsw (embedding vector_cosine_ops)"
                    " WITH (m = {}, ef_construction = {})")
            .format(hnsw, chunks, sql.Literal(HNSW_M), sql.Literal(HNSW_EF_CONSTRUCTION))
        )  # fmt: skip
        built = time.perf_counter() - start
        conn.execute(sql.SQL("ANALYZE {}").format(chunks))
        print(f"search: {CHUNKS} chunks x {DIMENSIONS} dims loaded by COPY in {loaded:.1f} s, HNSW (m={HNSW_M}, "
              f"ef_construction={HNSW_EF_CONSTRUCTION}) built in {built:.1f} s", flush=True)  # fmt: skip

        def exact(query: Any) -> tuple[list[str], float]:
            with conn.transaction():
                conn.execute("SET LOCAL enable_indexscan = off")
                begin = time.perf_counter()
                rows = conn.execute(
                    sql.SQL("SELECT text FROM {} ORDER BY embedding <=> %s LIMIT %s").format(chunks), (Vector(query), K)
                ).fetchall()
                return [r[0] for r in rows], (time.perf_counter() - begin) * 1000

        exact_ms, truth = [], []
        for query in queries[:EXACT_QUERIES]:
            ids, ms = exact(query)
            truth.append(set(ids))
            exact_ms.append(ms)
    for query in queries[:20]:
        store.search(query.tolist(), K)  # warm up the pool and the index pages
    hnsw_ms, recalls = [], []
    for n, query in enumerate(queries):
        vector = query.tolist()
        begin = time.perf_counter()
        hits = store.search(vector, K)
        hnsw_ms.append((time.perf_counter() - begin) * 1000)
        if n < EXACT_QUERIES:
            recalls.append(len({h.text for h in hits} & truth[n]) / K)
    close_pools()
    p50, p99 = statistics.median(hnsw_ms), _percentile(hnsw_ms, 0.99)
    e50, e99 = statistics.median(exact_ms), _percentile(exact_ms, 0.99)
    print(f"  baseline: exact search (seq scan), {EXACT_QUERIES} queries     p50 {e50:7.2f} ms   p99 {e99:7.2f} ms",
          flush=True)  # fmt: skip
    print(
        f"  PgVectorStore.search (HNSW), {QUERIES} queries, k={K}   p50 {p50:7.2f} ms   p99 {p99:7.2f} ms"
        f"   x{e50 / p50:.1f} faster than exact (target p50 ≤ 10 ms)",
        flush=True,
    )
    print(f"  recall@{K} vs exact: {statistics.mean(recalls):.3f} (min {min(recalls):.2f}; target ≥ 0.95)", flush=True)


def run() -> None:
    from moto.server import ThreadedMotoServer

    from chalicelib import aws
    from runner.bootstrap import bootstrap
    from runner.postgres import LocalPostgres
    from testkit.workers import running_worker
    from workers.launch import free_port
    from workers.prepare import MINILM_ID

    for name in ("werkzeug", "lisa-rag", "lisa-registry", "lisa-sqs-poller"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ["POWERTOOLS_LOG_LEVEL"] = "WARNING"
    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    with tempfile.TemporaryDirectory(prefix="bench-rag-") as tmp:
        postgres = LocalPostgres(Path(tmp) / "postgres", durable=False)
        dsn = postgres.start()
        os.environ.update(
            {
                "LISA_AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
                "AWS_ACCESS_KEY_ID": "bench",
                "AWS_SECRET_ACCESS_KEY": "bench",
                "AWS_DEFAULT_REGION": "us-east-1",
                "LISA_RAG_PG_DSN": dsn,
            }
        )
        aws.reset()
        try:
            bootstrap()
            with running_worker("tei", MINILM_ID, Path(tmp) / "logs") as tei_url:
                _ingestion(tei_url)
            _search(dsn)
        finally:
            postgres.stop()
            moto.stop()
            aws.reset()
