"""Ingestion through the real path: objects put into the moto docs bucket → S3 notifications → SQS → the local event
source mapping (runner/sqs_poller.py) → the Chalice `ingest_documents` handler → parsing, chunking, embeddings from
the real TEI worker → PostgreSQL + pgvector. Idempotency, replacement, deletion, failures, partial batches."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib import aws
from chalicelib.rag.ingestion import handle_sqs_event
from chalicelib.rag.models import DocumentStatus
from chalicelib.rag.repositories import RepositoryStore
from chalicelib.rag.service import search_repository
from chalicelib.rag.vectorstores import store_for
from chalicelib.registry.resolver import reset_registry
from chalicelib.registry.store import ModelStore
from chalicelib.settings import get_settings
from runner.sqs_poller import SqsPoller
from tests.support.rag import (
    EMBEDDER,
    create_repository,
    dead_letters,
    delete_object,
    document,
    ingest,
    put_document,
    register_embedder,
)
from tests.support.rag_documents import make_docx, make_pdf

pytestmark = pytest.mark.slow

SOLAR = (
    "Solar panels convert sunlight into electricity using photovoltaic cells. "
    "They produce the most power at noon when facing south.\n\n"
    "Cleaning the panels twice a year keeps their output high."
)
BAKING = "To bake sourdough bread, feed the starter the night before, then knead the dough and let it rise for hours."


@pytest.fixture
def docs(rag_env: str, tei_worker: str) -> str:
    register_embedder(tei_worker)
    create_repository("docs")
    return "docs"


def _chunks(repository_id: str = "docs") -> int:
    store: Any = store_for(RepositoryStore().get(repository_id))
    return int(store.count())


def _search(query: str, k: int = 3) -> list[Any]:
    return search_repository(RepositoryStore().get("docs"), query, k)


def test_text_markdown_html_pdf_and_docx_become_searchable(docs: str) -> None:
    put_document("docs/energy/solar.txt", SOLAR.encode())
    put_document("docs/kitchen/bread.md", f"# Bread\n\n{BAKING}".encode())
    put_document("docs/garden.html", b"<html><body><h1>Roses</h1><p>Prune roses in late winter.</p></body></html>")
    put_document("docs/birds.pdf", make_pdf([["Owls hunt small rodents at night."], ["Penguins cannot fly."]]))
    put_document("docs/cars.docx", make_docx(["Electric cars charge from a wall socket overnight."]))
    stats = ingest()
    assert stats.failed == 0
    assert stats.errors == []
    for key in ("energy/solar.txt", "kitchen/bread.md", "garden.html", "birds.pdf", "cars.docx"):
        record = document(f"docs/{key}")
        assert record is not None
        assert record.status is DocumentStatus.READY, (key, record.status_reason)
        assert record.chunk_count >= 1
    pdf = document("docs/birds.pdf")
    assert pdf is not None
    assert (pdf.chunk_count, pdf.content_type, pdf.filename) == (2, "application/pdf", "birds.pdf")

    [best] = _search("Which animal cannot fly?", k=1)
    assert "Penguins cannot fly" in best.text
    assert best.source == f"s3://{get_settings().docs_bucket}/docs/birds.pdf"
    assert best.metadata["page"] == 2
    assert best.metadata["filename"] == "birds.pdf"
    assert "sourdough" in _search("how do I make bread at home", k=1)[0].text
    assert "wall socket" in _search("charging an electric vehicle", k=1)[0].text
    filtered = search_repository(RepositoryStore().get("docs"), "bread", 3, {"filename": "solar.txt"})
    assert {h.metadata["filename"] for h in filtered} == {"solar.txt"}


def test_reuploading_the_same_bytes_writes_nothing_and_a_change_replaces_the_chunks(docs: str) -> None:
    put_document("docs/solar.txt", SOLAR.encode())
    ingest()
    first = document("docs/solar.txt")
    assert first is not None
    assert first.status is DocumentStatus.READY
    chunks = _chunks()

    put_document("docs/solar.txt", SOLAR.encode())  # same bytes: a new ObjectCreated event, nothing new stored
    ingest()
    again = document("docs/solar.txt")
    assert again is not None
    assert (again.generation, again.chunk_count, _chunks()) == (first.generation, first.chunk_count, chunks)

    put_document("docs/solar.txt", BAKING.encode())
    ingest()
    changed = document("docs/solar.txt")
    assert changed is not None
    assert changed.status is DocumentStatus.READY
    assert changed.generation == first.generation + 1
    assert changed.content_hash != first.content_hash
    assert _chunks() == changed.chunk_count == 1
    assert all("Solar" not in hit.text for hit in _search("solar panels", k=5))


def test_deleting_the_object_removes_its_chunks_and_record(docs: str) -> None:
    put_document("docs/solar.txt", SOLAR.encode())
    put_document("docs/bread.txt", BAKING.encode())
    ingest()
    delete_object("docs/solar.txt")
    ingest()
    assert document("docs/solar.txt") is None
    assert document("docs/bread.txt") is not None
    assert {hit.metadata["filename"] for hit in _search("solar panels electricity", k=5)} == {"bread.txt"}


def test_bad_files_are_recorded_failed_with_the_reason_and_never_block_the_queue(docs: str) -> None:
    put_document("docs/broken.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage")
    put_document("docs/empty.txt", b"")
    put_document("docs/photo.png", b"\x89PNG\r\n\x1a\n....")
    put_document("docs/good.txt", SOLAR.encode())
    stats = ingest()
    assert stats.failed == 0  # permanent failures are recorded, their messages succeed
    reasons = {}
    for key in ("broken.pdf", "empty.txt", "photo.png"):
        record = document(f"docs/{key}")
        assert record is not None
        assert record.status is DocumentStatus.FAILED
        assert record.chunk_count == 0
        reasons[key] = record.status_reason or ""
    assert "PDF" in reasons["broken.pdf"]
    assert "empty" in reasons["empty.txt"]
    assert "unsupported file type" in reasons["photo.png"]
    good = document("docs/good.txt")
    assert good is not None
    assert good.status is DocumentStatus.READY
    assert dead_letters() == 0
    assert SqsPoller.for_ingestion().pending() == 0

    put_document("docs/broken.pdf", make_pdf([["Fixed now: the report is readable."]]))  # a fixed upload recovers
    ingest()
    fixed = document("docs/broken.pdf")
    assert fixed is not None
    assert (fixed.status, fixed.status_reason) == (DocumentStatus.READY, None)


def test_object_keys_are_url_decoded_and_other_prefixes_ignored(docs: str) -> None:
    put_document("docs/Reports 2024/Q1 review (draft) + notes ü.txt", SOLAR.encode())
    put_document("unknown-repo/file.txt", BAKING.encode())
    put_document("no-prefix.txt", BAKING.encode())
    stats = ingest()
    assert stats.failed == 0
    record = document("docs/Reports 2024/Q1 review (draft) + notes ü.txt")
    assert record is not None
    assert record.status is DocumentStatus.READY
    assert record.filename == "Reports 2024/Q1 review (draft) + notes ü.txt"
    assert _search("solar", k=1)[0].metadata["filename"] == "Q1 review (draft) + notes ü.txt"


def test_upload_metadata_is_kept_and_searchable(docs: str) -> None:
    put_document("docs/solar.txt", SOLAR.encode(), Metadata={"team": "energy", "uploaded-by": "alice"})
    put_document("docs/bread.txt", BAKING.encode(), Metadata={"team": "kitchen"})
    ingest()
    record = document("docs/solar.txt")
    assert record is not None
    assert (record.uploaded_by, record.metadata) == ("alice", {"team": "energy"})
    hits = search_repository(RepositoryStore().get("docs"), "bread", 5, {"team": "energy"})
    assert {h.metadata["filename"] for h in hits} == {"solar.txt"}


def test_a_transient_failure_is_retried_and_recovers(rag_env: str, tei_worker: str) -> None:
    register_embedder("http://127.0.0.1:9")  # nothing listens there: the embedding model is down
    create_repository("docs")
    put_document("docs/solar.txt", SOLAR.encode())
    put_document("docs/empty.txt", b"")
    poller = SqsPoller.for_ingestion(retry_delay=3)  # a failed message is invisible for 3 s
    stats = poller.poll_once()
    for _ in range(5):  # S3's notifications (and its test event) may arrive over several receives
        if stats.failed and poller.pending() == 1:
            break
        stats.add(poller.poll_once())
    assert stats.failed == 1  # partial batch: only the failed message stays; the empty file's one succeeded
    assert stats.succeeded == stats.received - 1
    empty = document("docs/empty.txt")
    assert empty is not None
    assert empty.status is DocumentStatus.FAILED
    retrying = document("docs/solar.txt")
    assert retrying is not None
    assert retrying.status is DocumentStatus.RETRYING
    assert "embedding model" in (retrying.status_reason or "")
    assert poller.pending() == 1

    ModelStore().modify(EMBEDDER, lambda _: {"endpoint_url": tei_worker})  # the model is back
    reset_registry()
    poller.drain(60)
    ready = document("docs/solar.txt")
    assert ready is not None
    assert ready.status is DocumentStatus.READY
    assert ready.attempts == 2
    assert dead_letters() == 0


def test_handler_answers_partial_batch_failures_and_acknowledges_s3_test_events(docs: str) -> None:
    put_document("docs/solar.txt", SOLAR.encode())
    bucket = get_settings().docs_bucket
    s3_event = {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": "2026-01-01T00:00:00.000Z",
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {"key": "docs/solar.txt"},
                },
            }
        ]
    }
    messages = [
        ("m-good", json.dumps(s3_event)),
        ("m-test", json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": bucket})),
        ("m-bad", "this is not json"),
        ("m-other", json.dumps({"hello": "world"})),
    ]
    event = {
        "Records": [
            {"messageId": mid, "receiptHandle": mid, "body": body, "attributes": {}, "messageAttributes": {},
             "md5OfBody": "", "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:1:q",
             "awsRegion": "us-east-1"}
            for mid, body in messages
        ]
    }  # fmt: skip
    response = handle_sqs_event(event)
    assert sorted(item["itemIdentifier"] for item in response["batchItemFailures"]) == ["m-bad", "m-other"]
    record = document("docs/solar.txt")
    assert record is not None
    assert record.status is DocumentStatus.READY


def test_the_ingestion_queue_has_a_dead_letter_queue_and_the_bucket_notifies_it(aws_env: str) -> None:
    sqs, settings = aws.client("sqs"), get_settings()
    url = sqs.get_queue_url(QueueName=settings.ingestion_queue)["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(f":{settings.ingestion_dlq}")
    notification = aws.client("s3").get_bucket_notification_configuration(Bucket=settings.docs_bucket)
    [queue] = notification["QueueConfigurations"]
    assert queue["QueueArn"] == attributes["QueueArn"]
    assert set(queue["Events"]) == {"s3:ObjectCreated:*", "s3:ObjectRemoved:*"}
