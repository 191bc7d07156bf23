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


def answer_s3_preflights() -> None:
    """Answer CORS preflights (OPTIONS) to presigned object URLs from the bucket's CORS rules, as S3 does.

    moto checks an OPTIONS request against the presigned URL's signature (made for the PUT, with headers the
    preflight does not carry) and refuses it with 403 SignatureDoesNotMatch, so browsers could never upload to a
    presigned URL of the local stack.
    """
    from moto.s3.responses import S3Response

    original = S3Response._key_response
    if getattr(original, "preflights_answered", False):
        return

    def key_response(self: S3Response, request: object, full_url: str) -> object:
        if getattr(request, "method", "") == "OPTIONS":
            return self._response_options(request.headers, self.parse_bucket_name_from_url(request, full_url))  # type: ignore[attr-defined]
        return original(self, request, full_url)

    key_response.preflights_answered = True  # type: ignore[attr-defined]
    S3Response._key_response = key_response  # type: ignore[method-assign,assignment]
