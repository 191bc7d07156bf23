"""How a chat session is stored as a DynamoDB item: its size by AWS's sizing rules, numbers as boto3 stores them,
messages and parameters encoded, and the fields a listing reads back."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from chalicelib.sessions.models import Message, SessionParameters

DEFAULT_NAME = "New chat"
_NAME_FROM_MESSAGE_CHARS = 60


def dynamo_size(value: Any) -> int:
    """An upper bound of `value`'s DynamoDB storage size in bytes (AWS item-size rules)."""
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, int | float | Decimal):
        # "about 1 byte per 2 significant digits, plus 1 byte"; the string form over-counts, which is safe.
        return math.ceil(len(str(value)) / 2) + 1
    if isinstance(value, dict):
        return 3 + sum(len(str(k).encode()) + 1 + dynamo_size(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return 3 + sum(1 + dynamo_size(v) for v in value)
    raise TypeError(f"no DynamoDB size for {type(value).__name__}")


def item_size(item: dict[str, Any]) -> int:
    """The estimated size of a whole item: attribute names plus values."""
    return sum(len(name.encode()) + dynamo_size(value) for name, value in item.items())


def timestamp() -> str:
    """The current time as the ISO 8601 UTC string stored on items."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_dynamo(value: Any) -> Any:
    """`value` as boto3 stores it (floats as Decimal: boto3 refuses floats)."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: to_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_dynamo(v) for v in value]
    return value


def from_dynamo(value: Any) -> Any:
    """`value` as read back, Decimals turned into the ints or floats they were."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_dynamo(v) for v in value]
    return value


def stored_message(message: Message, now: str) -> dict[str, Any]:
    """A message as stored in the item's list (metadata as compact JSON: any shape, counted by size)."""
    stored: dict[str, Any] = {
        "role": message.role,
        "content": message.content,
        "createdAt": message.created_at or now,
    }
    if message.metadata:
        stored["metadata"] = json.dumps(message.metadata, separators=(",", ":"), ensure_ascii=False)
    return stored


def message_from_item(stored: dict[str, Any]) -> Message:
    """A stored message back as the API's Message."""
    return Message(
        role=stored["role"],
        content=stored["content"],
        created_at=stored.get("createdAt"),
        metadata=json.loads(stored["metadata"]) if stored.get("metadata") else {},
    )


def stored_parameters(parameters: SessionParameters) -> dict[str, Any]:
    """The session's parameters as stored (aliases, no nulls)."""
    return dict(to_dynamo(parameters.model_dump(by_alias=True, exclude_none=True)))


def default_name(messages: list[Message]) -> str:
    """A new session's name: the start of its first user message, else DEFAULT_NAME."""
    for message in messages:
        if message.role == "user" and message.content.strip():
            text = " ".join(message.content.split())
            return text if len(text) <= _NAME_FROM_MESSAGE_CHARS else text[: _NAME_FROM_MESSAGE_CHARS - 1] + "…"
    return DEFAULT_NAME


def summary_fields(item: dict[str, Any]) -> dict[str, Any]:
    """The SessionSummary fields of an item (what a listing projects)."""
    plain = from_dynamo(item)
    return {
        "session_id": plain["sessionId"],
        "name": plain["name"],
        "created_at": plain["createdAt"],
        "updated_at": plain["updatedAt"],
        "version": plain["version"],
        "message_count": plain["messageCount"],
        "size_bytes": plain["sizeBytes"],
        "parameters": SessionParameters.model_validate(plain.get("parameters") or {}),
    }
