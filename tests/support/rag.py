"""RAG test helpers: register the real embedding worker, create repositories, put documents into the moto docs
bucket (S3 then notifies the ingestion queue, as configured by runner/bootstrap.py) and run the local SQS poller."""

from __future__ import annotations

from typing import Any

from chalicelib import aws
from chalicelib.config import RagRepository
from chalicelib.rag.documents import DocumentStore, document_id
from chalicelib.rag.models import DocumentRecord, RepositoryRecord
from chalicelib.rag.repositories import RepositoryStore
from chalicelib.registry.models import CreateModelRequest
from chalicelib.registry.resolver import reset_registry
from chalicelib.registry.store import ModelStore
from chalicelib.settings import get_settings
from runner.sqs_poller import PollStats, SqsPoller

EMBEDDER = "minilm"


def register_embedder(endpoint: str, name: str = EMBEDDER, container: str = "tei") -> None:
    """Register an embedding model served at `endpoint` (the `tei_worker`) in the registry."""
    request = CreateModelRequest.model_validate(
        {
            "modelName": name,
            "hfModelId": "sentence-transformers/all-MiniLM-L6-v2",
            "inferenceContainer": container,
            "endpointUrl": endpoint,
        }
    )
    ModelStore().create(request)
    reset_registry()


def create_repository(repository_id: str = "docs", **fields: Any) -> RepositoryRecord:
    repository = RagRepository.model_validate(
        {
            "repositoryId": repository_id,
            "type": "pgvector",
            "embeddingModelId": EMBEDDER,
            "chunking": {"size": 300, "overlap": 30},
            **fields,
        }
    )
    return RepositoryStore().create(repository, created_by="test")


def put_document(key: str, data: bytes, **extra: Any) -> None:
    aws.client("s3").put_object(Bucket=get_settings().docs_bucket, Key=key, Body=data, **extra)


def delete_object(key: str) -> None:
    aws.client("s3").delete_object(Bucket=get_settings().docs_bucket, Key=key)


def document(key: str) -> DocumentRecord | None:
    repository_id = key.split("/", 1)[0]
    return DocumentStore().get(repository_id, document_id(get_settings().docs_bucket, key))


def ingest(timeout: float = 120.0) -> PollStats:
    """Run the local event source mapping until the ingestion queue is empty."""
    return SqsPoller.for_ingestion(retry_delay=0).drain(timeout)


def dead_letters() -> int:
    sqs = aws.client("sqs")
    url = sqs.get_queue_url(QueueName=get_settings().ingestion_dlq)["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])
