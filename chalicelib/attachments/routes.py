"""Attachments API (mounted at /attachments): documents given to the model in the prompt, without a repository.
Thin: authenticate, validate, call the store.

The session records which files a message carried in that message's `metadata` (any JSON: the sessions API
stores it as sent), e.g. `{"attachments": [{"attachmentId", "fileName", "chars", "truncated"}]}`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.apidocs.operations import ApiBlueprint, Link, Reply
from chalicelib.auth.routes import current_principal, lisa_authorizer

if TYPE_CHECKING:
    from chalicelib.attachments.models import AttachmentDeleted, AttachmentText
    from chalicelib.attachments.store import AttachmentStore
    from chalicelib.auth.principal import Principal

attachments_bp = ApiBlueprint(__name__)


def _principal() -> Principal:
    return current_principal(attachments_bp.current_request)


def _store() -> AttachmentStore:
    from chalicelib.attachments.store import get_store  # boto3 loads on first use, not at cold start

    return get_store()


def _attachment_id(raw: str) -> str:
    from chalicelib.attachments.models import ATTACHMENT_ID_PATTERN
    from chalicelib.validation import path_id

    return path_id(raw, ATTACHMENT_ID_PATTERN, "attachmentId", "32 lowercase hex digits")


_MODELS = "chalicelib.attachments.models"
_CREATED_ID = {"attachmentId": "$response.body#/attachmentId"}


@attachments_bp.operation(
    "/",
    "POST",
    authorizer=lisa_authorizer,
    body=f"{_MODELS}:AttachmentRequest",
    responses={201: f"{_MODELS}:AttachmentUpload"},
    links={
        "GetAttachmentText": Link("getAttachmentText", _CREATED_ID),
        "DeleteAttachment": Link("deleteAttachment", _CREATED_ID),
    },
    tag="attachments",
)
def create_attachment() -> Reply:
    """Declare a file (name, type, size) and get a presigned S3 PUT for its bytes; kept for a day."""
    from chalicelib.attachments.models import AttachmentRequest

    body = attachments_bp.body(AttachmentRequest)
    return Reply(_store().create(_principal(), body), 201)


@attachments_bp.operation(
    "/{attachmentId}/text",
    "GET",
    authorizer=lisa_authorizer,
    query=f"{_MODELS}:TextQuery",
    responses={200: f"{_MODELS}:AttachmentText"},
    errors=(404, 409, 503),
    tag="attachments",
)
def get_attachment_text(attachmentId: str) -> AttachmentText:
    """The uploaded file's text, cut to `maxChars` (409 before the upload; 400 if the file is not what was declared
    or cannot be read)."""
    from chalicelib.attachments.models import TextQuery

    attachment_id = _attachment_id(attachmentId)
    query = attachments_bp.query(TextQuery)
    return _store().text(_principal(), attachment_id, query.max_chars)


@attachments_bp.operation(
    "/{attachmentId}",
    "DELETE",
    authorizer=lisa_authorizer,
    responses={200: f"{_MODELS}:AttachmentDeleted"},
    errors=(404,),
    tag="attachments",
)
def delete_attachment(attachmentId: str) -> AttachmentDeleted:
    """Delete one of the caller's attachments now (else it goes a day after it was made)."""
    from chalicelib.attachments.models import AttachmentDeleted

    attachment_id = _attachment_id(attachmentId)
    _store().delete(_principal(), attachment_id)
    return AttachmentDeleted(deleted=attachment_id)
