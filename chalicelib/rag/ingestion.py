"""Ingestion: S3 ObjectCreated/ObjectRemoved → SQS → this handler → parsed, chunked, embedded, stored.

Every event is handled by reconciling the document with what S3 holds *now* (`Ingestor.reconcile`), so events
may arrive late, twice or out of order: an existing object is ingested (skipped when the store already has its
content hash), a missing one is removed from the store and the document list. A file that cannot be ingested
(unsupported type, corrupt, empty, too large) is recorded FAILED with the reason and its message succeeds; a
transient failure (embedding model or database down) marks the document RETRYING and fails only that message
(SQS partial batch response), so the queue redelivers it and finally parks it in the DLQ.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger

from chalicelib import aws
from chalicelib.rag.documents import DocumentStore, document_id, now
from chalicelib.rag.errors import DimensionMismatch, RepositoryNotFound, UnusableDocument
from chalicelib.rag.models import UPLOADED_BY, DocumentRecord, DocumentStatus, RepositoryRecord
from chalicelib.rag.repositories import RepositoryStore
from chalicelib.settings import get_settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    from chalicelib.rag.vectorstores import VectorStore, WriteResult

logger = Logger(service="lisa-rag")

Outcome = Literal["ready", "failed", "unchanged", "superseded", "deleted", "ignored"]


@dataclass(frozen=True)
class IngestResult:
    """What handling one object did."""

    bucket: str
    key: str
    outcome: Outcome
    repository_id: str | None = None
    document_id: str | None = None
    chunk_count: int = 0
    reason: str | None = None


@dataclass(frozen=True)
class _Object:
    etag: str
    size: int
    content_type: str | None
    metadata: dict[str, str]
    data: bytes | None  # None when too large to read


class Ingestor:
    """Brings a repository's store and document list in line with one S3 object."""

    def __init__(self, repositories: RepositoryStore | None = None, documents: DocumentStore | None = None) -> None:
        self.repositories = repositories or RepositoryStore()
        self.documents = documents or DocumentStore()

    def reconcile(self, bucket: str, key: str) -> IngestResult:
        """Ingest `s3://bucket/key` if it exists, remove it from its repository if it does not."""
        repository_id, _, filename = key.partition("/")
        if not filename or filename.endswith("/"):
            return IngestResult(bucket, key, "ignored", reason="not a file under a <repositoryId>/ prefix")
        try:
            repository = self.repositories.get(repository_id, cached=True)
        except RepositoryNotFound:
            logger.warning("object for an unknown repository ignored", bucket=bucket, key=key)
            return IngestResult(bucket, key, "ignored", repository_id, reason=f"no repository {repository_id!r}")
        from chalicelib.rag.vectorstores import store_for

        store = store_for(repository)
        doc_id = document_id(bucket, key)
        obj = _get_object(bucket, key)
        if obj is None:
            return self._remove(repository, store, bucket, key, doc_id)
        return self._ingest(repository, store, bucket, key, doc_id, filename, obj)

    # -- removal ---------------------------------------------------------------------------------------------
    def _remove(
        self, repository: RepositoryRecord, store: VectorStore, bucket: str, key: str, doc_id: str
    ) -> IngestResult:
        generation = store.delete_document(doc_id, still_gone=lambda: _etag(bucket, key) is None)
        if generation is None:
            return IngestResult(bucket, key, "superseded", repository.repository_id, doc_id)
        self.documents.delete(repository.repository_id, doc_id, generation)
        logger.info("document removed", repository_id=repository.repository_id, document_id=doc_id, key=key)
        return IngestResult(bucket, key, "deleted", repository.repository_id, doc_id)

    # -- ingestion -------------------------------------------------------------------------------------------
    def _ingest(
        self,
        repository: RepositoryRecord,
        store: VectorStore,
        bucket: str,
        key: str,
        doc_id: str,
        filename: str,
        obj: _Object,
    ) -> IngestResult:
        from chalicelib.rag.parsing import content_type_of

        content_hash = hashlib.sha256(obj.data).hexdigest() if obj.data is not None else f"etag:{obj.etag}"
        record = self.documents.get(repository.repository_id, doc_id)
        stored = store.current(doc_id)
        base = {
            "repository_id": repository.repository_id,
            "document_id": doc_id,
            "source": f"s3://{bucket}/{key}",
            "bucket": bucket,
            "key": key,
            "filename": filename,
            "content_type": content_type_of(filename, obj.content_type),
            "size": obj.size,
            "content_hash": content_hash,
            "uploaded_by": obj.metadata.get(UPLOADED_BY),
            "metadata": {k: v for k, v in obj.metadata.items() if k != UPLOADED_BY},
            "created_at": record.created_at if record else now(),
        }
        same_bytes = stored is not None and stored.content_hash == content_hash
        if (
            same_bytes
            and record is not None
            and stored is not None
            and record.content_hash == content_hash
            and record.status in (DocumentStatus.READY, DocumentStatus.FAILED)
            and record.generation == stored.generation
        ):
            return IngestResult(bucket, key, "unchanged", repository.repository_id, doc_id, record.chunk_count)
        if same_bytes and stored is not None and stored.chunk_count > 0:
            # The store has this content (the record write was lost): only the record needs repairing.
            final = DocumentRecord(
                **base, status=DocumentStatus.READY, chunk_count=stored.chunk_count, generation=stored.generation,
                updated_at=now(), attempts=record.attempts if record else 1,
            )  # fmt: skip
            self.documents.put_final(final)
            return IngestResult(bucket, key, "unchanged", repository.repository_id, doc_id, stored.chunk_count)

        seen = record.generation if record else None
        attempts = (record.attempts + 1) if record and record.content_hash == content_hash else 1
        progress_generation = seen or 0
        progress = {**base, "generation": progress_generation, "attempts": attempts, "updated_at": now()}
        recorded = self.documents.put_progress(DocumentRecord(**progress, status=DocumentStatus.INGESTING), seen)
        still_current: Callable[[], bool] = lambda: _etag(bucket, key) == obj.etag  # noqa: E731
        try:
            try:
                write = self._prepare(repository, doc_id, filename, obj, base, content_hash)
                result = store.replace_document(write, still_current)
                status, reason = DocumentStatus.READY, None
            except (UnusableDocument, DimensionMismatch) as error:
                result = store.replace_document(_empty(doc_id, content_hash, str(base["source"])), still_current)
                status, reason = DocumentStatus.FAILED, error.message
        except Exception as error:
            message = getattr(error, "message", None) or f"{type(error).__name__}: {error}"
            retrying = DocumentRecord(**progress, status=DocumentStatus.RETRYING, status_reason=str(message)[:1000])
            try:
                if recorded:  # the INGESTING record written above (at its generation) becomes RETRYING
                    self.documents.put_progress(retrying, progress_generation)
            except Exception:  # the record is best effort; the message will be redelivered either way
                logger.exception("could not record the retry", document_id=doc_id)
            raise
        return self._finish(repository, bucket, key, doc_id, base, attempts, result, status, reason)

    def _finish(
        self,
        repository: RepositoryRecord,
        bucket: str,
        key: str,
        doc_id: str,
        base: dict[str, Any],
        attempts: int,
        result: WriteResult,
        status: DocumentStatus,
        reason: str | None,
    ) -> IngestResult:
        if result.outcome == "superseded":
            logger.info("object changed during ingestion; the newer version's event takes over", key=key)
            return IngestResult(bucket, key, "superseded", repository.repository_id, doc_id)
        final = DocumentRecord(
            **base,
            status=status,
            status_reason=reason,
            chunk_count=result.chunk_count,
            generation=result.generation,
            attempts=attempts,
            updated_at=now(),
        )
        self.documents.put_final(final)
        outcome: Outcome = "ready" if status is DocumentStatus.READY else "failed"
        logger.info(
            "document ingested" if outcome == "ready" else "document failed",
            repository_id=repository.repository_id,
            document_id=doc_id,
            key=key,
            chunks=result.chunk_count,
            reason=reason,
        )
        return IngestResult(bucket, key, outcome, repository.repository_id, doc_id, result.chunk_count, reason)

    def _prepare(
        self,
        repository: RepositoryRecord,
        doc_id: str,
        filename: str,
        obj: _Object,
        base: dict[str, Any],
        content_hash: str,
    ) -> Any:
        from chalicelib.rag.chunking import chunk_sections
        from chalicelib.rag.embedding import RepositoryEmbedder
        from chalicelib.rag.parsing import parse
        from chalicelib.rag.vectorstores import ChunkRecord, DocumentWrite

        limit = get_settings().rag_max_document_bytes
        if obj.data is None:
            raise UnusableDocument(f"the file is {obj.size} bytes; the limit is {limit} bytes")
        sections = parse(obj.data, filename, obj.content_type)
        chunks = chunk_sections(sections, repository.chunking.size, repository.chunking.overlap)
        vectors = RepositoryEmbedder(repository.embedding_model_id).embed_documents([c.text for c in chunks])
        common = {
            **base["metadata"],
            "documentId": doc_id,
            "filename": posixpath.basename(filename),
            "path": filename,
            "source": base["source"],
            "contentType": base["content_type"],
        }
        records = [
            ChunkRecord(
                index=chunk.index,
                text=chunk.text,
                embedding=vector,
                metadata={**common, **({"page": chunk.page} if chunk.page is not None else {})},
            )
            for chunk, vector in zip(chunks, vectors, strict=True)
        ]
        return DocumentWrite(doc_id, content_hash, str(base["source"]), records)


def _empty(doc_id: str, content_hash: str, source: str) -> Any:
    from chalicelib.rag.vectorstores import DocumentWrite

    return DocumentWrite(doc_id, content_hash, source, [])


def _missing(error: Exception) -> bool:
    from botocore.exceptions import ClientError

    if not isinstance(error, ClientError):
        return False
    code = str(error.response.get("Error", {}).get("Code", ""))
    return code in ("NoSuchKey", "404", "NotFound")


def _etag(bucket: str, key: str) -> str | None:
    """The object's current ETag, None if it does not exist."""
    try:
        head = aws.client("s3").head_object(Bucket=bucket, Key=key)
    except Exception as error:
        if _missing(error):
            return None
        raise
    return str(head["ETag"])


def _get_object(bucket: str, key: str) -> _Object | None:
    """The object as it is now (its bytes unless larger than the limit), None if it does not exist."""
    try:
        response = aws.client("s3").get_object(Bucket=bucket, Key=key)
    except Exception as error:
        if _missing(error):
            return None
        raise
    body = response["Body"]
    size = int(response.get("ContentLength", 0))
    try:
        data = body.read() if size <= get_settings().rag_max_document_bytes else None
    finally:
        body.close()
    metadata = {str(k).lower(): str(v) for k, v in (response.get("Metadata") or {}).items()}
    return _Object(str(response["ETag"]), size, response.get("ContentType"), metadata, data)


# -- the SQS event handler ---------------------------------------------------------------------------------------
def handle_sqs_event(event: dict[str, Any], context: Any = None, ingestor: Ingestor | None = None) -> dict[str, Any]:
    """The ingestion Lambda: each SQS message carries an S3 event notification; returns the partial batch
    response (`batchItemFailures` lists the messages to redeliver)."""
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    worker = ingestor or Ingestor()
    processor = BatchProcessor(event_type=EventType.SQS)
    response: dict[str, Any] = dict(
        process_partial_response(
            event=event,
            record_handler=lambda record: handle_message(worker, record),
            processor=processor,
            context=context,
        )
    )
    return response


def handle_message(ingestor: Ingestor, record: SQSRecord) -> list[IngestResult]:
    """One SQS message: S3's test event is acknowledged; each object record is reconciled (keys URL-decoded)."""
    from aws_lambda_powertools.utilities.data_classes import S3Event

    body = record.json_body
    if not isinstance(body, dict):
        raise ValueError("the message is not an S3 event notification")
    if body.get("Event") == "s3:TestEvent":
        return []
    if "Records" not in body:
        raise ValueError("the message is not an S3 event notification (no Records)")
    docs_bucket = get_settings().docs_bucket
    results = []
    for s3_record in S3Event(body).records:
        name = s3_record.event_name
        if not name.startswith(("ObjectCreated:", "ObjectRemoved:")):
            continue
        bucket = s3_record.s3.bucket.name
        key = unquote_plus(s3_record.s3.get_object.key)
        if bucket != docs_bucket:
            logger.warning("event for another bucket ignored", bucket=bucket, key=key)
            continue
        results.append(ingestor.reconcile(bucket, key))
    return results
