"""Wire shapes of the attachments API (camelCase on the wire), and where attachments live and for how long."""

from __future__ import annotations

import posixpath
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic.alias_generators import to_camel

from chalicelib.rag.models import SUPPORTED_EXTENSIONS
from chalicelib.validation import QueryInt

ATTACHMENT_ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")
# In the RAG documents bucket (its CORS rule and the UI's CSP already admit browser PUTs), under a prefix no
# repository id can have (they start with a letter or digit): ingestion events for these keys find no repository.
ATTACHMENTS_PREFIX = "_attachments/"
ATTACHMENT_DAYS = 1  # records and objects are deleted a day after the upload URL was made (TTL, S3 lifecycle)
MAX_ATTACHMENT_BYTES = 20 * 1024 * 1024
MAX_TEXT_CHARS = 200_000
UPLOAD_URL_SECONDS = 900

ContentType = Literal[
    "text/plain",
    "text/markdown",
    "application/pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, alias_generator=to_camel)


class AttachmentRequest(_Wire):
    """POST /attachments: the file to be uploaded. Its size and type are checked again against the upload."""

    file_name: str = Field(min_length=1, max_length=255)
    content_type: ContentType
    size: int = Field(ge=1, le=MAX_ATTACHMENT_BYTES, description="bytes")

    @field_validator("file_name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if "/" in value or "\\" in value or value in (".", ".."):
            raise ValueError("must be a file name, without '/' or '\\' path separators")
        if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in value):
            raise ValueError("must not contain control characters")
        return value

    @field_validator("content_type")
    @classmethod
    def _fits_extension(cls, value: str, info: ValidationInfo) -> str:
        name = info.data.get("file_name")  # absent when it was invalid: that error is reported instead
        implied = SUPPORTED_EXTENSIONS.get(posixpath.splitext(name)[1].lower()) if name else None
        if implied is not None and implied != value:
            raise ValueError(f"{name!r} is {implied}, not {value}")
        return value


class AttachmentUpload(_Wire):
    """POST /attachments: PUT the file's bytes to `uploadUrl` with `uploadHeaders` within `expiresIn` seconds,
    then read its text from /attachments/{attachmentId}/text."""

    attachment_id: str
    upload_url: str
    upload_headers: dict[str, str]
    expires_in: int


class TextQuery(_Wire):
    """GET /attachments/{attachmentId}/text: at most `maxChars` characters of the text."""

    max_chars: QueryInt = Field(MAX_TEXT_CHARS, ge=1, le=MAX_TEXT_CHARS)


class AttachmentText(_Wire):
    """The attachment's text, cut to `maxChars`: `chars` counts the whole text, `cutChars` what was cut off its end."""

    attachment_id: str
    file_name: str
    content_type: ContentType
    text: str
    chars: int
    truncated: bool
    cut_chars: int


class AttachmentDeleted(_Wire):
    """DELETE /attachments/{attachmentId}: the id deleted."""

    deleted: str
