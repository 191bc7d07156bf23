"""API tokens in DynamoDB: random secrets shown once, stored only as SHA-256 hashes.

Table `Settings.tokens_table`: partition key `tokenHash` (hex SHA-256 of the token), GSI `byTokenId` on the public
`tokenId`. Item: tokenHash, tokenId, username, groups (list), isAdmin, tokenExpiration (UNIX seconds, optional),
description, createdAt, createdBy, updatedAt, lastUsedAt (UNIX seconds of the latest request seen with it: written
by the router's metering flush, at most once a minute per token, so up to a minute plus a flush late). A revoked
token is deleted; an expired one is kept (and refused) so an admin can see and extend it.
"""

from __future__ import annotations

import builtins
import enum
import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

TOKEN_PREFIX = "lisa_"  # noqa: S105 (a prefix, not a secret)
MAX_TOKEN_LENGTH = 512  # longer credentials are refused without a lookup


class TokenNotFoundError(LookupError):
    """No token has this tokenId (never created, or revoked)."""

    def __init__(self, token_id: str) -> None:
        super().__init__(f"no API token with tokenId {token_id!r}")
        self.token_id = token_id


class Unchanged(enum.Enum):
    """A sentinel for an update that leaves a field as it is (None is a value: "no expiry")."""

    KEEP = "keep"


UNCHANGED = Unchanged.KEEP
"""Pass to `TokenStore.update` for a field that must stay as it is."""


def hash_token(token: str) -> str:
    """Hex SHA-256 of a token: the only form in which a token is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def generate_token() -> str:
    """A new high-entropy token (256 random bits), recognisable by its `lisa_` prefix."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class TokenRecord:
    """A token's public record: everything but the secret and its hash."""

    token_id: str
    username: str
    groups: tuple[str, ...]
    is_admin: bool
    token_expiration: int | None
    description: str
    created_at: int
    created_by: str
    updated_at: int | None = None
    last_used_at: int | None = None
    token_hash: str | None = field(default=None, repr=False, compare=False)  # internal; never in to_dict()

    def is_expired(self, now: float) -> bool:
        """True once `now` (UNIX seconds) has reached the expiration."""
        return self.token_expiration is not None and now >= self.token_expiration

    def to_dict(self) -> dict[str, Any]:
        """The API / CLI shape (camelCase, like the table)."""
        return {
            "tokenId": self.token_id,
            "username": self.username,
            "groups": list(self.groups),
            "isAdmin": self.is_admin,
            "tokenExpiration": self.token_expiration,
            "description": self.description,
            "createdAt": self.created_at,
            "createdBy": self.created_by,
            "updatedAt": self.updated_at,
            "lastUsedAt": self.last_used_at,
        }

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> TokenRecord:
        """Read a DynamoDB item (numbers arrive as Decimal)."""
        expiration = item.get("tokenExpiration")
        updated = item.get("updatedAt")
        used = item.get("lastUsedAt")
        return cls(
            token_id=str(item["tokenId"]),
            username=str(item["username"]),
            groups=tuple(str(g) for g in item.get("groups") or ()),
            is_admin=bool(item.get("isAdmin", False)),
            token_expiration=None if expiration is None else int(expiration),
            description=str(item.get("description", "")),
            created_at=int(item.get("createdAt", 0)),
            created_by=str(item.get("createdBy", "")),
            updated_at=None if updated is None else int(updated),
            last_used_at=None if used is None else int(used),
            token_hash=item.get("tokenHash"),
        )


class TokenStore:
    """Create, look up, list, update and revoke API tokens in the tokens table."""

    def __init__(self, table_name: str | None = None, clock: Callable[[], float] = time.time) -> None:
        if table_name is None:
            from chalicelib.settings import get_settings

            table_name = get_settings().tokens_table
        self.table_name = table_name
        self._clock = clock
        self._cached_table: tuple[Any, Any] | None = None
        self._hashes: dict[str, str] = {}  # tokenId -> tokenHash (fixed for a token's life), for record_use

    def now(self) -> float:
        """The store's clock (UNIX seconds)."""
        return self._clock()

    def _table(self) -> Any:
        from chalicelib import aws  # boto3 is heavy: only a cache miss or an admin call pays for it

        resource = aws.resource("dynamodb")
        cached = self._cached_table
        if cached is None or cached[0] is not resource:  # building a Table costs ~0.5 ms: once per resource
            cached = self._cached_table = (resource, resource.Table(self.table_name))
        return cached[1]

    def create(
        self,
        username: str,
        groups: Iterable[str] = (),
        is_admin: bool = False,
        expiration: int | None = None,
        description: str = "",
        created_by: str = "",
    ) -> tuple[str, TokenRecord]:
        """Make a new token for `username`; returns (the token, shown only now; its record)."""
        if not username or not username.strip():
            raise ValueError("username must not be empty")
        token = generate_token()
        record = TokenRecord(
            token_id=uuid.uuid4().hex,
            username=username,
            groups=tuple(dict.fromkeys(groups)),
            is_admin=is_admin,
            token_expiration=expiration,
            description=description,
            created_at=int(self._clock()),
            created_by=created_by,
        )
        item: dict[str, Any] = {
            "tokenHash": hash_token(token),
            "tokenId": record.token_id,
            "username": record.username,
            "groups": list(record.groups),
            "isAdmin": record.is_admin,
            "description": record.description,
            "createdAt": record.created_at,
            "createdBy": record.created_by,
        }
        if expiration is not None:
            item["tokenExpiration"] = int(expiration)
        self._table().put_item(Item=item, ConditionExpression="attribute_not_exists(tokenHash)")
        return token, record

    def get_by_token(self, token: str) -> TokenRecord | None:
        """The record of a presented token, or None if it is unknown or revoked (expiry is the caller's check)."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        digest = hash_token(token)
        item = self._table().get_item(Key={"tokenHash": digest}, ConsistentRead=True).get("Item")
        if item is None or not hmac.compare_digest(str(item.get("tokenHash", "")), digest):
            return None
        return TokenRecord.from_item(item)

    def get(self, token_id: str) -> TokenRecord:
        """The record with this tokenId; raises TokenNotFoundError."""
        return TokenRecord.from_item(self._item_by_id(token_id))

    def list(self, username: str | None = None) -> builtins.list[TokenRecord]:
        """Every token's record (optionally one user's), oldest first; never secrets or hashes."""
        kwargs: dict[str, Any] = {"ProjectionExpression": ", ".join(f"#{a}" for a in _PUBLIC_ATTRIBUTES)}
        kwargs["ExpressionAttributeNames"] = {f"#{a}": a for a in _PUBLIC_ATTRIBUTES}
        if username is not None:
            kwargs["FilterExpression"] = "#username = :username"
            kwargs["ExpressionAttributeValues"] = {":username": username}
        records = [TokenRecord.from_item(item) for page in self._scan(kwargs) for item in page.get("Items", [])]
        records.sort(key=lambda r: (r.created_at, r.token_id))
        return records

    def count_live(self, username: str) -> int:
        """How many unexpired tokens `username` holds, read consistently (a scan, like `list`)."""
        kwargs: dict[str, Any] = {
            "Select": "COUNT",
            "ConsistentRead": True,
            "FilterExpression": "#username = :username AND"
            " (attribute_not_exists(#tokenExpiration) OR #tokenExpiration > :now)",
            "ExpressionAttributeNames": {"#username": "username", "#tokenExpiration": "tokenExpiration"},
            "ExpressionAttributeValues": {":username": username, ":now": int(self._clock())},
        }
        return sum(int(page.get("Count", 0)) for page in self._scan(kwargs))

    def _scan(self, kwargs: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Every page of a scan of the table."""
        table = self._table()
        while True:
            page: dict[str, Any] = table.scan(**kwargs)
            yield page
            if "LastEvaluatedKey" not in page:
                return
            kwargs = {**kwargs, "ExclusiveStartKey": page["LastEvaluatedKey"]}

    def update(
        self,
        token_id: str,
        *,
        expiration: int | Unchanged | None = UNCHANGED,
        description: str | Unchanged = UNCHANGED,
    ) -> TokenRecord:
        """Change a token's expiration (None: never expires) and/or description; returns the new record."""
        item = self._item_by_id(token_id)
        sets = ["#updatedAt = :updatedAt"]
        removes: builtins.list[str] = []
        names = {"#updatedAt": "updatedAt"}
        values: dict[str, Any] = {":updatedAt": int(self._clock())}
        if expiration is None:
            removes.append("#tokenExpiration")
            names["#tokenExpiration"] = "tokenExpiration"
        elif not isinstance(expiration, Unchanged):
            sets.append("#tokenExpiration = :tokenExpiration")
            names["#tokenExpiration"] = "tokenExpiration"
            values[":tokenExpiration"] = int(expiration)
        if not isinstance(description, Unchanged):
            sets.append("#description = :description")
            names["#description"] = "description"
            values[":description"] = description
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        from botocore.exceptions import ClientError

        try:
            result = self._table().update_item(
                Key={"tokenHash": item["tokenHash"]},
                UpdateExpression=expression,
                ConditionExpression="attribute_exists(tokenHash)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise TokenNotFoundError(token_id) from None
            raise
        return TokenRecord.from_item(result["Attributes"])

    def revoke(self, token_id: str) -> TokenRecord:
        """Delete a token so it is refused from now on (after the authorizer's cache TTL); returns its record."""
        item = self._item_by_id(token_id)
        result = self._table().delete_item(Key={"tokenHash": item["tokenHash"]}, ReturnValues="ALL_OLD")
        if "Attributes" not in result:
            raise TokenNotFoundError(token_id)
        return TokenRecord.from_item(result["Attributes"])

    def record_use(self, token_id: str, when: int) -> bool:
        """Set the token's `lastUsedAt` to `when` unless it is already as late (another router task wrote a later
        use) or the token is gone: one conditional UpdateItem (plus, once per token, the lookup of its key).
        Returns whether it was written. Raises ClientError / BotoCoreError when DynamoDB cannot be written."""
        from botocore.exceptions import ClientError

        token_hash = self._hashes.get(token_id)
        if token_hash is None:
            try:
                token_hash = self._hashes[token_id] = str(self._item_by_id(token_id)["tokenHash"])
            except TokenNotFoundError:
                return False
        try:
            self._table().update_item(
                Key={"tokenHash": token_hash},
                UpdateExpression="SET #lastUsedAt = :when",
                ConditionExpression="attribute_exists(tokenHash) AND"
                " (attribute_not_exists(#lastUsedAt) OR #lastUsedAt < :when)",
                ExpressionAttributeNames={"#lastUsedAt": "lastUsedAt"},
                ExpressionAttributeValues={":when": int(when)},
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False  # revoked, or a later use is recorded already
            raise
        return True

    def _item_by_id(self, token_id: str) -> dict[str, Any]:
        if not token_id or len(token_id) > 128:
            raise TokenNotFoundError(token_id)
        page = self._table().query(
            IndexName="byTokenId",
            KeyConditionExpression="tokenId = :id",
            ExpressionAttributeValues={":id": token_id},
        )
        items: builtins.list[dict[str, Any]] = page.get("Items", [])
        if not items:
            raise TokenNotFoundError(token_id)
        return items[0]


_PUBLIC_ATTRIBUTES = (
    "tokenId",
    "username",
    "groups",
    "isAdmin",
    "tokenExpiration",
    "description",
    "createdAt",
    "createdBy",
    "updatedAt",
    "lastUsedAt",
)
