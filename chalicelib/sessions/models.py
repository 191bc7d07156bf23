"""Wire shapes of the sessions API (camelCase on the wire), validated at the edge."""

from __future__ import annotations

import json
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator
from pydantic.alias_generators import to_camel

SESSION_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, alias_generator=to_camel)


class Message(_Wire):
    """One chat turn; `createdAt` is stamped by the server when absent; `metadata` holds e.g. model, usage."""

    role: Literal["system", "user", "assistant"]
    content: str
    created_at: str | None = Field(None, max_length=64)
    metadata: dict[str, JsonValue] = Field(default_factory=dict)

    @field_validator("metadata")
    @classmethod
    def _finite(cls, value: dict[str, JsonValue]) -> dict[str, JsonValue]:
        try:
            json.dumps(value, allow_nan=False)
        except ValueError:
            raise ValueError("numbers must be finite (no NaN or Infinity)") from None
        return value


class SessionParameters(_Wire):
    """The generation parameters a session was chatting with (what the UI restores on reload)."""

    model: str | None = Field(None, min_length=1, max_length=256)
    system_prompt: str | None = Field(None, max_length=20_000)
    temperature: float | None = Field(None, ge=0, le=2)
    top_k: int | None = Field(None, ge=1, le=1000)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1, le=131_072)
    rag_enabled: bool = False
    repository_id: str | None = Field(None, min_length=1, max_length=256)


SessionName = Annotated[str, Field(min_length=1, max_length=200)]


class SessionPut(_Wire):
    """PUT body. `version` is the version the change is based on: omit it to create, send it to update.

    On update, a field left out keeps its stored value (so a rename need not resend the messages).
    """

    name: SessionName | None = None
    messages: list[Message] | None = None
    parameters: SessionParameters | None = None
    version: int | None = Field(None, ge=1)


class AppendMessages(_Wire):
    """POST .../messages body: messages appended atomically, after whatever is stored at that moment."""

    messages: list[Message] = Field(min_length=1, max_length=100)


class SessionSummary(_Wire):
    """A session without its messages (the list view)."""

    session_id: str
    name: str
    created_at: str
    updated_at: str
    version: int
    message_count: int
    size_bytes: int
    parameters: SessionParameters


class Session(SessionSummary):
    """A whole session."""

    messages: list[Message]


class SessionList(_Wire):
    """GET /sessions."""

    sessions: list[SessionSummary]


class SessionsDeleted(_Wire):
    """DELETE /sessions: how many sessions were deleted."""

    deleted: int


class SessionDeleted(_Wire):
    """DELETE /sessions/{sessionId}: the id deleted."""

    deleted: str


class MessagesAppended(SessionSummary):
    """POST /sessions/{sessionId}/messages: the summary after the append and the index of the first new message."""

    first_index: int


def wire(model: BaseModel) -> dict[str, JsonValue]:
    """The JSON-ready, camelCase form of a model."""
    return model.model_dump(mode="json", by_alias=True)
