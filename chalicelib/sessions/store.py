"""Chat sessions in DynamoDB: one item per (userId, sessionId), written only with conditional writes.

Concurrency: every write bumps `version`. A PUT must name the version it was based on and fails with
`VersionConflict` otherwise; an append is one atomic `list_append` update, so concurrent appends never lose
messages and a PUT based on a version from before an append is refused instead of dropping it.

Size: an item's DynamoDB size is estimated from AWS's published sizing rules (`dynamo_size`) and kept in the
item (`sizeBytes`). Writes that would take it over `max_bytes` raise `SessionTooLarge`; an append checks the
bound inside its condition expression, so it stays exact under concurrency. Nothing is ever truncated. The
default, 200 KB, is half DynamoDB's 400 KB item limit: well clear of it, and also clear of moto (the local
stand-in), which counts an attribute's old and new value together while updating it.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from chalicelib import aws
from chalicelib.sessions.errors import SessionError, SessionNotFound, SessionTooLarge, VersionConflict
from chalicelib.sessions.items import (
    default_name,
    dynamo_size,
    item_size,
    message_from_item,
    stored_message,
    stored_parameters,
    summary_fields,
    timestamp,
)
from chalicelib.sessions.models import (
    Message,
    Session,
    SessionParameters,
    SessionPut,
    SessionSummary,
)
from chalicelib.settings import get_settings

__all__ = [
    "MAX_SESSION_BYTES",
    "SessionError",
    "SessionNotFound",
    "SessionStore",
    "SessionTooLarge",
    "VersionConflict",
    "dynamo_size",
    "get_store",
    "item_size",
]

logger = Logger(service="lisa-sessions")

MAX_SESSION_BYTES = 200_000
# Projected by alias: several of these names are DynamoDB reserved words.
_SUMMARY_ATTRIBUTES = (
    "sessionId",
    "name",
    "createdAt",
    "updatedAt",
    "version",
    "messageCount",
    "sizeBytes",
    "parameters",
)


def _failed_condition(error: ClientError) -> bool:
    return bool(error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


def _too_large_for_dynamodb(error: ClientError) -> bool:
    error_info = error.response.get("Error", {})
    return error_info.get("Code") == "ValidationException" and "size" in str(error_info.get("Message", "")).lower()


def _raise_if_refused_as_too_large(error: ClientError, size: int, limit: int) -> None:
    """DynamoDB's own size check is the last line; its refusal is a 413 like ours, never a 500."""
    if _too_large_for_dynamodb(error):
        raise SessionTooLarge(
            f"the database refused the session as too large (about {size} bytes; the limit is {limit})", size, limit
        ) from None


def _old_item(error: ClientError) -> dict[str, Any] | None:
    item: dict[str, Any] | None = error.response.get("Item")  # type: ignore[assignment]
    if not item:
        return None
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    return {k: deserializer.deserialize(v) for k, v in item.items()}


class SessionStore:
    """Sessions of each user, keyed (userId, sessionId). Callers pass the authenticated user's id."""

    def __init__(self, table_name: str | None = None, max_bytes: int = MAX_SESSION_BYTES) -> None:
        self._table_name = table_name
        self.max_bytes = max_bytes

    def _table(self) -> Any:
        return aws.table(self._table_name or get_settings().sessions_table)

    # -- reads -----------------------------------------------------------------------------------------------
    def list_sessions(self, user_id: str) -> list[SessionSummary]:
        """The user's sessions without messages, most recently updated first."""
        table = self._table()
        query: dict[str, Any] = {
            "KeyConditionExpression": "userId = :u",
            "ExpressionAttributeValues": {":u": user_id},
            "ProjectionExpression": ", ".join(f"#a{i}" for i in range(len(_SUMMARY_ATTRIBUTES))),
            "ExpressionAttributeNames": {f"#a{i}": name for i, name in enumerate(_SUMMARY_ATTRIBUTES)},
        }
        items: list[dict[str, Any]] = []
        while True:
            page = table.query(**query)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        summaries = [SessionSummary(**summary_fields(item)) for item in items]
        return sorted(summaries, key=lambda s: (s.updated_at, s.session_id), reverse=True)

    def get(self, user_id: str, session_id: str) -> Session:
        """One session with its messages; `SessionNotFound` if this user has no such session."""
        item = self._get_item(user_id, session_id)
        if item is None:
            raise SessionNotFound(f"session {session_id!r} not found")
        return self._session(item)

    def _get_item(self, user_id: str, session_id: str) -> dict[str, Any] | None:
        response = self._table().get_item(Key={"userId": user_id, "sessionId": session_id}, ConsistentRead=True)
        item: dict[str, Any] | None = response.get("Item")
        return item

    @staticmethod
    def _session(item: dict[str, Any]) -> Session:
        return Session(**summary_fields(item), messages=[message_from_item(m) for m in item.get("messages", [])])

    # -- writes ----------------------------------------------------------------------------------------------
    def put(self, user_id: str, session_id: str, body: SessionPut) -> tuple[Session, bool]:
        """Create (no `version`) or update (`version` = the one it is based on). Returns (session, created)."""
        now = timestamp()
        if body.version is None:
            return self._create(user_id, session_id, body, now), True
        return self._update(user_id, session_id, body, now), False

    def _create(self, user_id: str, session_id: str, body: SessionPut, now: str) -> Session:
        messages = body.messages or []
        item = self._new_item(
            user_id,
            session_id,
            name=body.name or default_name(messages),
            created_at=now,
            updated_at=now,
            version=1,
            messages=[stored_message(m, now) for m in messages],
            parameters=stored_parameters(body.parameters or SessionParameters()),
        )
        try:
            self._table().put_item(
                Item=item,
                ConditionExpression="attribute_not_exists(sessionId)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            _raise_if_refused_as_too_large(error, int(item["sizeBytes"]), self.max_bytes)
            if not _failed_condition(error):
                raise
            current = _old_item(error) or self._get_item(user_id, session_id) or {"version": 0}
            raise VersionConflict(
                f"session {session_id!r} already exists (version {current['version']}); "
                "send the version your change is based on to update it",
                int(current["version"]),
            ) from None
        logger.info("session created", extra={"sessionId": session_id, "sizeBytes": item["sizeBytes"]})
        return self._session(item)

    def _update(self, user_id: str, session_id: str, body: SessionPut, now: str) -> Session:
        assert body.version is not None
        current = self._get_item(user_id, session_id)
        if current is None:
            raise SessionNotFound(f"session {session_id!r} not found; omit 'version' to create it")
        self._check_version(session_id, body.version, int(current["version"]))
        item = self._new_item(
            user_id,
            session_id,
            name=body.name or str(current["name"]),
            created_at=str(current["createdAt"]),
            updated_at=now,
            version=body.version + 1,
            messages=(
                [stored_message(m, now) for m in body.messages]
                if body.messages is not None
                else list(current.get("messages", []))
            ),
            parameters=(
                stored_parameters(body.parameters) if body.parameters is not None else current.get("parameters", {})
            ),
        )
        try:
            self._table().put_item(
                Item=item,
                ConditionExpression="#version = :based_on",
                ExpressionAttributeNames={"#version": "version"},
                ExpressionAttributeValues={":based_on": body.version},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            _raise_if_refused_as_too_large(error, int(item["sizeBytes"]), self.max_bytes)
            if not _failed_condition(error):
                raise
            latest = _old_item(error) or self._get_item(user_id, session_id)
            if latest is None:
                raise SessionNotFound(f"session {session_id!r} was deleted meanwhile") from None
            raise VersionConflict(
                f"session {session_id!r} changed while you were updating it (now version {latest['version']}); "
                "fetch it again and reapply your change",
                int(latest["version"]),
            ) from None
        return self._session(item)

    @staticmethod
    def _check_version(session_id: str, based_on: int, current: int) -> None:
        if based_on != current:
            raise VersionConflict(
                f"session {session_id!r} is at version {current}, not {based_on}: it changed since you read it; "
                "fetch it again and reapply your change",
                current,
            )

    def _new_item(
        self,
        user_id: str,
        session_id: str,
        *,
        name: str,
        created_at: str,
        updated_at: str,
        version: int,
        messages: list[dict[str, Any]],
        parameters: dict[str, Any],
    ) -> dict[str, Any]:
        item: dict[str, Any] = {
            "userId": user_id,
            "sessionId": session_id,
            "name": name,
            "createdAt": created_at,
            "updatedAt": updated_at,
            "version": version,
            "messageCount": len(messages),
            "parameters": parameters,
            "messages": messages,
            "sizeBytes": 0,
        }
        # sizeBytes counts itself at a generous width so later appends never outgrow the estimate.
        item["sizeBytes"] = item_size(item) + 16
        if item["sizeBytes"] > self.max_bytes:
            raise SessionTooLarge(
                f"session would be {item['sizeBytes']} bytes; the limit is {self.max_bytes} bytes "
                "(start a new session or remove messages)",
                item["sizeBytes"],
                self.max_bytes,
            )
        return item

    def append(self, user_id: str, session_id: str, messages: list[Message]) -> tuple[SessionSummary, int]:
        """Atomically append `messages` to an existing session. Returns (summary after, index of the first one)."""
        now = timestamp()
        stored = [stored_message(m, now) for m in messages]
        delta = sum(1 + dynamo_size(m) for m in stored)
        room = self.max_bytes - delta
        if room < 0:
            raise SessionTooLarge(
                f"these messages alone are {delta} bytes; the session limit is {self.max_bytes} bytes",
                delta,
                self.max_bytes,
            )
        try:
            response = self._table().update_item(
                Key={"userId": user_id, "sessionId": session_id},
                UpdateExpression=(
                    "SET #messages = list_append(#messages, :new), #count = #count + :n, "
                    "#size = #size + :delta, #version = #version + :one, #updated = :now"
                ),
                ConditionExpression="attribute_exists(#sid) AND #size <= :room",
                ExpressionAttributeNames={
                    "#messages": "messages",
                    "#count": "messageCount",
                    "#size": "sizeBytes",
                    "#version": "version",
                    "#updated": "updatedAt",
                    "#sid": "sessionId",
                },
                ExpressionAttributeValues={
                    ":new": stored,
                    ":n": len(stored),
                    ":delta": delta,
                    ":one": 1,
                    ":now": now,
                    ":room": room,
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            _raise_if_refused_as_too_large(error, delta, self.max_bytes)
            if not _failed_condition(error):
                raise
            current = _old_item(error) or self._get_item(user_id, session_id)
            if current is None:
                raise SessionNotFound(f"session {session_id!r} not found; create it with PUT first") from None
            size = int(current["sizeBytes"]) + delta
            raise SessionTooLarge(
                f"appending would make the session {size} bytes; the limit is {self.max_bytes} bytes "
                "(start a new session)",
                size,
                self.max_bytes,
            ) from None
        attributes = response["Attributes"]
        summary = SessionSummary(**summary_fields(attributes))
        return summary, summary.message_count - len(stored)

    def delete(self, user_id: str, session_id: str) -> None:
        """Delete one session; `SessionNotFound` if there is none."""
        try:
            self._table().delete_item(
                Key={"userId": user_id, "sessionId": session_id},
                ConditionExpression="attribute_exists(sessionId)",
            )
        except ClientError as error:
            if _failed_condition(error):
                raise SessionNotFound(f"session {session_id!r} not found") from None
            raise

    def delete_all(self, user_id: str) -> int:
        """Delete every session of the user; returns how many were deleted."""
        table = self._table()
        query: dict[str, Any] = {
            "KeyConditionExpression": "userId = :u",
            "ExpressionAttributeValues": {":u": user_id},
            "ProjectionExpression": "userId, sessionId",
        }
        deleted = 0
        with table.batch_writer() as batch:
            while True:
                page = table.query(**query)
                for key in page.get("Items", []):
                    batch.delete_item(Key={"userId": key["userId"], "sessionId": key["sessionId"]})
                    deleted += 1
                if "LastEvaluatedKey" not in page:
                    break
                query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        logger.info("sessions deleted", extra={"count": deleted})
        return deleted


@cache
def get_store() -> SessionStore:
    """The process-wide store (the table name is read from settings on each call)."""
    return SessionStore()
