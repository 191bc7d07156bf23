"""Attachments: a record per (userId, attachmentId) in DynamoDB, the file in S3 under the caller's own prefix.

The record holds what the caller declared (name, type, size), so the upload is checked against it, not against
anything the uploader sent along. Every read goes through the caller's own record: another user's attachment
(or an expired one) is a 404, never an object fetched by a guessed key. A record whose file is not in S3 yet is a
409. Records expire by TTL and objects by the bucket's lifecycle rule on `ATTACHMENTS_PREFIX`, a day on; a record
past its expiry (TTL deletes lazily) counts as gone.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from chalicelib import aws
from chalicelib.attachments.models import (
    ATTACHMENT_DAYS,
    ATTACHMENTS_PREFIX,
    UPLOAD_URL_SECONDS,
    AttachmentRequest,
    AttachmentText,
    AttachmentUpload,
)
from chalicelib.errors import BadRequest, Conflict, NotFound, ServiceUnavailable
from chalicelib.sessions.items import timestamp
from chalicelib.settings import get_settings

if TYPE_CHECKING:
    from chalicelib.auth.principal import Principal

logger = Logger(service="lisa-attachments")


class AttachmentNotFound(NotFound):
    """The caller has no such attachment (never uploaded by them, deleted, or expired)."""

    def __init__(self, attachment_id: str) -> None:
        super().__init__(
            f"attachment {attachment_id!r} not found (attachments are kept for {ATTACHMENT_DAYS} day)",
            field="attachmentId",
        )


def object_key(owner_id: str, attachment_id: str) -> str:
    """The S3 key of an attachment: under the owner's own prefix (a hash: owner ids hold '/' and '|')."""
    owner = hashlib.sha256(owner_id.encode()).hexdigest()[:32]
    return f"{ATTACHMENTS_PREFIX}{owner}/{attachment_id}"


def cut(text: str, max_chars: int) -> tuple[str, int]:
    """`text` cut to `max_chars` characters, and how many were cut off."""
    kept = text[:max_chars]
    return kept, len(text) - len(kept)


class AttachmentStore:
    """Attachments on behalf of their owner (module docstring)."""

    def __init__(self, table_name: str | None = None) -> None:
        self._table_name = table_name

    def _table(self) -> Any:
        return aws.table(self._table_name or get_settings().attachments_table)

    def create(self, principal: Principal, request: AttachmentRequest) -> AttachmentUpload:
        """Record the declared file and answer a presigned PUT for it."""
        attachment_id = uuid.uuid4().hex
        key = object_key(principal.owner_id, attachment_id)
        self._table().put_item(
            Item={
                "userId": principal.owner_id,
                "attachmentId": attachment_id,
                "fileName": request.file_name,
                "contentType": request.content_type,
                "size": request.size,
                "key": key,
                "createdAt": timestamp(),
                "expiresAt": int(time.time()) + ATTACHMENT_DAYS * 86_400,
            }
        )
        url, headers = aws.presigned_put(get_settings().docs_bucket, key, request.content_type, UPLOAD_URL_SECONDS)
        logger.info("attachment declared", extra={"attachmentId": attachment_id, "size": request.size})
        return AttachmentUpload(
            attachment_id=attachment_id, upload_url=url, upload_headers=headers, expires_in=UPLOAD_URL_SECONDS
        )

    def _record(self, principal: Principal, attachment_id: str) -> dict[str, Any]:
        key = {"userId": principal.owner_id, "attachmentId": attachment_id}
        item: dict[str, Any] | None = self._table().get_item(Key=key, ConsistentRead=True).get("Item")
        if item is None or int(item["expiresAt"]) <= time.time():
            raise AttachmentNotFound(attachment_id)
        return item

    def text(self, principal: Principal, attachment_id: str, max_chars: int) -> AttachmentText:
        """The uploaded file's text (RAG's parsers), cut to `max_chars`."""
        record = self._record(principal, attachment_id)
        data = _read_upload(record)
        from chalicelib.rag.errors import UnusableDocument
        from chalicelib.rag.parsing import parse

        try:
            sections = parse(data, record["fileName"], record["contentType"])
        except UnusableDocument as error:
            raise BadRequest(f"file: {error.message}", field="file") from None
        except ImportError:  # pypdf / python-docx ship in the rag layer (layers/rag)
            raise ServiceUnavailable("this deployment cannot read this kind of file (no document parsers)") from None
        text = "\n\n".join(section.text for section in sections)
        kept, cut_chars = cut(text, max_chars)
        return AttachmentText(
            attachment_id=attachment_id,
            file_name=record["fileName"],
            content_type=record["contentType"],
            text=kept,
            chars=len(text),
            truncated=cut_chars > 0,
            cut_chars=cut_chars,
        )

    def delete(self, principal: Principal, attachment_id: str) -> None:
        """Delete the file (if uploaded) and the record."""
        record = self._record(principal, attachment_id)
        aws.client("s3").delete_object(Bucket=get_settings().docs_bucket, Key=record["key"])
        self._table().delete_item(Key={"userId": principal.owner_id, "attachmentId": attachment_id})
        logger.info("attachment deleted", extra={"attachmentId": attachment_id})


def _read_upload(record: dict[str, Any]) -> bytes:
    """The uploaded bytes, once they are checked to be what was declared (nothing else is read)."""
    attachment_id, declared_size, declared_type = record["attachmentId"], int(record["size"]), record["contentType"]
    try:
        answer = aws.client("s3").get_object(Bucket=get_settings().docs_bucket, Key=record["key"])
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            raise Conflict(
                f"attachment {attachment_id!r} is not uploaded yet: PUT the file to its uploadUrl first",
                field="attachmentId",
            ) from None
        raise
    body = answer["Body"]
    try:
        size, uploaded_type = int(answer["ContentLength"]), str(answer.get("ContentType", "")).split(";")[0].strip()
        if size != declared_size:
            raise BadRequest(f"size: the upload is {size} bytes, not the {declared_size} declared", field="size")
        if uploaded_type.lower() != declared_type:
            raise BadRequest(
                f"contentType: the file was uploaded as {uploaded_type or '(none)'!r}, not {declared_type}",
                field="contentType",
            )
        data: bytes = body.read(declared_size + 1)
    finally:
        body.close()
    return data


@cache
def get_store() -> AttachmentStore:
    """The process-wide store (the table name is read from settings on each call)."""
    return AttachmentStore()
