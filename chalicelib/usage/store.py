"""Usage aggregates in DynamoDB: one item per (principal, UTC day, model), counters added by the router's batches.

Table `Settings.usage_table`: partition key `ownerId` (the principal's owner id), sort key `dayModel`
(`YYYY-MM-DD#<model>`); attributes day, month, model, requests, errors, promptTokens, completionTokens. GSI
`byMonth` (`month`, `day`) answers "everyone" queries with one query per calendar month of the range.

Exactly-once batches: a batch (at most `MAX_BATCH_ITEMS` aggregates) is one TransactWriteItems: a Put of a marker
item (`ownerId` "#batch", `dayModel` the batch id, expiring after `MARKER_TTL_SECONDS`) conditioned on its absence,
plus one `ADD` update per aggregate. All or nothing: a retry of a batch that was applied (its answer lost) fails
the marker's condition and changes nothing, and is recognised as applied. A conditional marker is used rather than
only TransactWriteItems' ClientRequestToken because the token's idempotency lasts 10 minutes, while a batch may be
retried later than that after an outage; the token is sent as well (a quick retry is then answered as a success).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from chalicelib import aws
from chalicelib.contracts.usage import UsageDay
from chalicelib.settings import get_settings

logger = Logger(service="lisa-usage")

BY_MONTH = "byMonth"
MARKER_OWNER = "#batch"  # owner ids are `token:...` / `jwt:...`: no principal has this one
MARKER_TTL_SECONDS = 14 * 24 * 3600
MAX_BATCH_ITEMS = 99  # TransactWriteItems takes 100 actions: the marker and 99 aggregates
_COUNTERS = (
    ("requests", "requests"),
    ("errors", "errors"),
    ("promptTokens", "prompt_tokens"),
    (
        "completionTokens",
        "completion_tokens",
    ),
)


@dataclass
class Counts:
    """One aggregate's counters (mutable: the router adds to them)."""

    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


AggregateKey = tuple[str, str, str]
"""(owner id, UTC day YYYY-MM-DD, model name)."""


@dataclass(frozen=True)
class UsageBatch:
    """Aggregates written together, exactly once. Fixed when the batch is made, so every retry sends the same
    request: `batch_id` (the marker's key and the ClientRequestToken) and `created` (UNIX seconds: the marker's
    expiry follows from it)."""

    items: tuple[tuple[AggregateKey, Counts], ...]
    batch_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created: float = field(default_factory=time.time)


def batches(aggregates: dict[AggregateKey, Counts], now: float) -> list[UsageBatch]:
    """`aggregates` cut into batches of at most MAX_BATCH_ITEMS, made at `now`."""
    items = list(aggregates.items())
    return [
        UsageBatch(tuple(items[i : i + MAX_BATCH_ITEMS]), created=now) for i in range(0, len(items), MAX_BATCH_ITEMS)
    ]


class UsageStore:
    """Writes the router's batches and reads the figures the usage API answers."""

    def __init__(self, table_name: str | None = None) -> None:
        self.table_name = table_name or get_settings().usage_table

    def write(self, batch: UsageBatch) -> bool:
        """Apply `batch` once: True if applied now (or a quick retry DynamoDB answered from its token), False if its
        marker shows it was applied before. Raises ClientError / BotoCoreError when DynamoDB refuses or cannot be
        reached (the caller retries the same batch)."""
        expires = int(batch.created + MARKER_TTL_SECONDS)
        marker = {
            "Put": {
                "TableName": self.table_name,
                "Item": {
                    "ownerId": {"S": MARKER_OWNER},
                    "dayModel": {"S": batch.batch_id},
                    "expiresAt": {"N": str(expires)},
                },
                "ConditionExpression": "attribute_not_exists(ownerId)",
            }
        }
        actions = [marker, *(self._update(key, counts) for key, counts in batch.items)]
        try:
            aws.client("dynamodb").transact_write_items(TransactItems=actions, ClientRequestToken=batch.batch_id)
        except ClientError as error:
            if _marker_existed(error):
                logger.info("usage batch was applied before", batch_id=batch.batch_id)
                return False
            raise
        return True

    def _update(self, key: AggregateKey, counts: Counts) -> dict[str, Any]:
        owner, day, model = key
        names = {f"#{attr}": attr for attr, _ in _COUNTERS}
        values = {f":{attr}": {"N": str(getattr(counts, name))} for attr, name in _COUNTERS}
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": {"ownerId": {"S": owner}, "dayModel": {"S": f"{day}#{model}"}},
                "UpdateExpression": "SET #day = :day, #month = :month, #model = :model ADD "
                + ", ".join(f"#{attr} :{attr}" for attr, _ in _COUNTERS),
                "ExpressionAttributeNames": {**names, "#day": "day", "#month": "month", "#model": "model"},
                "ExpressionAttributeValues": {
                    **values,
                    ":day": {"S": day},
                    ":month": {"S": day[:7]},
                    ":model": {"S": model},
                },
            }
        }

    # -- reading -----------------------------------------------------------------------------------------------------
    def days(self, owner: str | None, start: date, end: date, model: str | None = None) -> list[UsageDay]:
        """The figures from `start` to `end` (both included) of `owner` (None: everyone), of `model` (None: all),
        sorted by day, model, principal."""
        items = self._owner_items(owner, start, end) if owner is not None else self._everyone(start, end)
        found = [_day(item) for item in items if model is None or item["model"] == model]
        return sorted(found, key=lambda d: (d.date, d.model, d.principal))

    def _owner_items(self, owner: str, start: date, end: date) -> Iterator[dict[str, Any]]:
        table = aws.table(self.table_name)
        from boto3.dynamodb.conditions import Key

        condition = Key("ownerId").eq(owner) & Key("dayModel").between(f"{start}#", f"{end}#\U0010ffff")
        yield from _pages(table, KeyConditionExpression=condition)

    def _everyone(self, start: date, end: date) -> Iterator[dict[str, Any]]:
        table = aws.table(self.table_name)
        from boto3.dynamodb.conditions import Key

        for month in _months(start, end):
            condition = Key("month").eq(month) & Key("day").between(start.isoformat(), end.isoformat())
            yield from _pages(table, IndexName=BY_MONTH, KeyConditionExpression=condition)


def _pages(table: Any, **query: Any) -> Iterator[dict[str, Any]]:
    while True:
        page = table.query(**query)
        yield from page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _months(start: date, end: date) -> Iterable[str]:
    """The calendar months (YYYY-MM) from `start`'s to `end`'s (no date arithmetic: year 9999 is a valid end)."""
    year, month = start.year, start.month
    while (year, month) <= (end.year, end.month):
        yield f"{year:04d}-{month:02d}"
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def _day(item: dict[str, Any]) -> UsageDay:
    return UsageDay(
        date=str(item["day"]),
        principal=str(item["ownerId"]),
        model=str(item["model"]),
        **{name: int(item.get(attr, 0)) for attr, name in _COUNTERS},
    )


def _marker_existed(error: ClientError) -> bool:
    """Whether a cancelled transaction was cancelled by its marker's condition alone (the batch was applied)."""
    if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return False
    reasons: Sequence[Any] = error.response.get("CancellationReasons") or []
    if reasons:
        return reasons[0].get("Code") == "ConditionalCheckFailed" and all(
            r.get("Code") in (None, "None") for r in reasons[1:]
        )
    message = str(error.response.get("Error", {}).get("Message", ""))  # some endpoints send the reasons in the text
    return message.rstrip().endswith("]") and "[ConditionalCheckFailed" in message
