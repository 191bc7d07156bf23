"""Where moto differs from AWS in ways LISA would notice, made to behave as AWS does (local runs and tests)."""

from __future__ import annotations

import threading

_DYNAMODB_LOCK = threading.Lock()


def serialize_moto_dynamodb() -> None:
    """Make moto's DynamoDB apply one request at a time, as DynamoDB applies each item write atomically.

    moto reads, evaluates and writes an item without a lock, so concurrent `list_append`/conditional updates
    lose writes there (measured), which real DynamoDB never does.
    """
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.call_action
    if getattr(original, "serialized", False):
        return

    def call_action(self: DynamoHandler) -> object:
        with _DYNAMODB_LOCK:
            return original(self)

    call_action.serialized = True  # type: ignore[attr-defined]
    DynamoHandler.call_action = call_action  # type: ignore[method-assign,assignment]
