"""The document list in DynamoDB (`Settings.rag_documents_table`: `repositoryId` + `documentId`, GSI `bySource`).

A document is an object `s3://<docs bucket>/<repositoryId>/<filename>`; its id is derived from bucket and key, so
re-uploading a file addresses the same document. The vector store is the source of truth for a document's chunks
and hands out a `generation` per write; records are written in generation order (a final write is refused if a
newer generation is already recorded, a progress write if the generation moved on since it was read), so
concurrent or out-of-order ingestions never leave the list describing an older version than the store holds.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError
from pydantic import ValidationError

from chalicelib import aws, bounded_json
from chalicelib.rag.errors import InvalidRequest
from chalicelib.rag.models import DocumentPageToken, DocumentRecord
from chalicelib.settings import get_settings

logger = Logger(service="lisa-rag")

MAX_PAGE = 1000


def now() -> str:
    """The current time as the ISO 8601 UTC string stored on records."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def document_id(bucket: str, key: str) -> str:
    """The stable id of the document at `s3://bucket/key`."""
    return hashlib.sha256(f"{bucket}/{key}".encode()).hexdigest()[:32]


def _failed_condition(error: ClientError) -> bool:
    return bool(error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


def _from_item(item: dict[str, Any]) -> DocumentRecord:
    plain = {k: (int(v) if k in ("size", "chunkCount", "generation", "attempts") else v) for k, v in item.items()}
    return DocumentRecord.model_validate(plain)


def _encode_token(key: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode()


def _decode_token(token: str, repository_id: str) -> dict[str, Any]:
    """The ExclusiveStartKey a `nextToken` stands for; InvalidRequest (400) naming nextToken for anything else."""
    try:
        key = DocumentPageToken.model_validate(bounded_json.loads(base64.urlsafe_b64decode(token), "nextToken"))
    except (ValueError, binascii.Error):  # InvalidJson and pydantic's ValidationError are ValueErrors
        raise InvalidRequest("nextToken: not a token this API returned") from None
    if key.repository_id != repository_id:
        raise InvalidRequest("nextToken: not a token this API returned for this repository")
    return key.model_dump(by_alias=True)


class DocumentStore:
    """Reads and generation-ordered writes of document records."""

    def __init__(self, table_name: str | None = None) -> None:
        self._table_name = table_name

    def _table(self) -> Any:
        return aws.table(self._table_name or get_settings().rag_documents_table)

    def get(self, repository_id: str, doc_id: str) -> DocumentRecord | None:
        """A document's record (strongly consistent: ingestion reads its own writes), or None."""
        item = self._table().get_item(Key={"repositoryId": repository_id, "documentId": doc_id}, ConsistentRead=True)
        return _from_item(item["Item"]) if "Item" in item else None

    def page(
        self, repository_id: str, limit: int = 100, token: str | None = None
    ) -> tuple[builtins.list[DocumentRecord], str | None]:
        """Up to `limit` documents of a repository (by id) and the token for the next page (None at the end)."""
        query: dict[str, Any] = {
            "KeyConditionExpression": "repositoryId = :r",
            "ExpressionAttributeValues": {":r": repository_id},
            "Limit": max(1, min(limit, MAX_PAGE)),
        }
        if token:
            query["ExclusiveStartKey"] = _decode_token(token, repository_id)
        page = self._table().query(**query)
        records = []
        for item in page.get("Items", []):
            try:
                records.append(_from_item(item))
            except ValidationError as error:
                logger.error("skipping an invalid document item", item=item.get("documentId"), error=str(error))
        last = page.get("LastEvaluatedKey")
        return records, (_encode_token(last) if last else None)

    def list(self, repository_id: str) -> builtins.list[DocumentRecord]:
        """Every document of a repository."""
        records: list[DocumentRecord] = []
        token: str | None = None
        while True:
            batch, token = self.page(repository_id, MAX_PAGE, token)
            records.extend(batch)
            if token is None:
                return records

    def put_progress(self, record: DocumentRecord, seen_generation: int | None) -> bool:
        """Write a progress state (INGESTING, RETRYING) unless the document moved on since it was read."""
        condition = "attribute_not_exists(documentId)"
        values: dict[str, Any] = {}
        if seen_generation is not None:
            condition = "#g = :g"
            values = {":g": seen_generation}
        return self._put(record, condition, values)

    def put_final(self, record: DocumentRecord) -> bool:
        """Write an outcome (READY, FAILED) of `record.generation` unless a newer generation is recorded."""
        return self._put(record, "attribute_not_exists(documentId) OR #g <= :g", {":g": record.generation})

    def _put(self, record: DocumentRecord, condition: str, values: dict[str, Any]) -> bool:
        request: dict[str, Any] = {"Item": record.wire(), "ConditionExpression": condition}
        request["Item"] = {k: v for k, v in request["Item"].items() if v is not None}
        if "#g" in condition:
            request["ExpressionAttributeNames"] = {"#g": "generation"}
        if values:
            request["ExpressionAttributeValues"] = values
        try:
            self._table().put_item(**request)
        except ClientError as error:
            if _failed_condition(error):
                logger.info("document record moved on; not overwritten", document_id=record.document_id)
                return False
            raise
        return True

    def delete(self, repository_id: str, doc_id: str, generation: int | None = None) -> bool:
        """Remove a record (only if no newer generation than `generation` is recorded, when given)."""
        request: dict[str, Any] = {"Key": {"repositoryId": repository_id, "documentId": doc_id}}
        if generation is not None:
            request["ConditionExpression"] = "attribute_not_exists(documentId) OR #g <= :g"
            request["ExpressionAttributeNames"] = {"#g": "generation"}
            request["ExpressionAttributeValues"] = {":g": generation}
        try:
            self._table().delete_item(**request)
        except ClientError as error:
            if _failed_condition(error):
                return False
            raise
        return True

    def delete_all(self, repository_id: str) -> int:
        """Remove every record of a repository; returns how many."""
        records = self.list(repository_id)
        with self._table().batch_writer() as batch:
            for record in records:
                batch.delete_item(Key={"repositoryId": repository_id, "documentId": record.document_id})
        return len(records)
