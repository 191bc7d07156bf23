"""The two DynamoDB tables of limits: admins' overrides, and the window counters router tasks lease quota from.

Overrides (`limits_table`): one item per principal, key (`scope`, `principalId`), with the kinds it names.

Counters (`limit_counters_table`): one item per limit and window, key `counterKey` (`<kind>#<scope>#<id>#<window
start>`), holding `granted`: how much of the window's limit has been leased to router tasks so far. A lease is one
conditional update, `granted += n` only if `granted + n <= limit`, so the sum of all leases never exceeds the limit,
however many tasks lease at once. Leases are never returned: what a task does not use by the window's end is lost
(under-use, never overshoot). Items expire (TTL `expiresAt`) a day after their window ends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from chalicelib import aws
from chalicelib.contracts.limits import LimitOverride, Scope
from chalicelib.errors import NotFound
from chalicelib.settings import get_settings

if TYPE_CHECKING:
    from collections.abc import Iterable

_LEASE_ATTEMPTS = 8  # conditional updates raced by other tasks before giving up for now (each re-reads the total)


class OverrideNotFound(NotFound):
    """No override is set for that principal."""

    def __init__(self, scope: Scope, principal_id: str) -> None:
        super().__init__(f"no limit override for {scope.value} {principal_id!r}", field="principalId")


def override_of(item: dict[str, Any]) -> LimitOverride:
    """A stored override item's limits."""
    return LimitOverride.model_validate({k: None if v is None else int(v) for k, v in item["limits"].items()})


class OverrideStore:
    """Admins' per-principal overrides."""

    def __init__(self, table_name: str | None = None) -> None:
        self._table_name = table_name

    def _table(self) -> Any:
        return aws.table(self._table_name or get_settings().limits_table)

    def put(self, scope: Scope, principal_id: str, override: LimitOverride, by: str, at: str) -> dict[str, Any]:
        """Set (replace) a principal's override; the stored item."""
        item = {
            "scope": scope.value,
            "principalId": principal_id,
            "limits": override.stored(),
            "updatedBy": by,
            "updatedAt": at,
        }
        self._table().put_item(Item=item)
        return item

    def get(self, scope: Scope, principal_id: str) -> dict[str, Any] | None:
        """A principal's stored override item, or None."""
        key = {"scope": scope.value, "principalId": principal_id}
        found: dict[str, Any] | None = self._table().get_item(Key=key, ConsistentRead=True).get("Item")
        return found

    def delete(self, scope: Scope, principal_id: str) -> None:
        """Remove a principal's override (OverrideNotFound if there is none)."""
        try:
            self._table().delete_item(
                Key={"scope": scope.value, "principalId": principal_id},
                ConditionExpression="attribute_exists(principalId)",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise OverrideNotFound(scope, principal_id) from None
            raise

    def list(self, scope: Scope | None = None) -> list[dict[str, Any]]:
        """Every override item (of one scope when given), by scope then principal."""
        table = self._table()
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {}
        if scope is not None:
            kwargs = {"KeyConditionExpression": "#s = :s", "ExpressionAttributeNames": {"#s": "scope"}}
            kwargs["ExpressionAttributeValues"] = {":s": scope.value}
        read = table.query if scope is not None else table.scan
        while True:
            page = read(**kwargs)
            items += page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return sorted(items, key=lambda item: (item["scope"], item["principalId"]))

    def overrides(self, principals: Iterable[tuple[Scope, str]]) -> dict[tuple[Scope, str], LimitOverride]:
        """The overrides of the given principals that exist (one BatchGetItem round trip per 100)."""
        keys = list(dict.fromkeys(principals))
        found: dict[tuple[Scope, str], LimitOverride] = {}
        name = self._table_name or get_settings().limits_table
        dynamodb = aws.resource("dynamodb")
        for start in range(0, len(keys), 100):
            request: dict[str, Any] = {
                name: {
                    "Keys": [{"scope": s.value, "principalId": p} for s, p in keys[start : start + 100]],
                    "ConsistentRead": True,
                }
            }
            while request:
                answer = dynamodb.batch_get_item(RequestItems=request)
                for item in answer.get("Responses", {}).get(name, []):
                    found[(Scope(item["scope"]), str(item["principalId"]))] = override_of(item)
                request = answer.get("UnprocessedKeys") or {}
        return found


class CounterStore:
    """The shared window counters (module docstring)."""

    def __init__(self, table_name: str | None = None) -> None:
        self._table_name = table_name

    def _table(self) -> Any:
        return aws.table(self._table_name or get_settings().limit_counters_table)

    def lease(self, key: str, limit: int, want: int, expires_at: int) -> tuple[int, int]:
        """Lease up to `want` of counter `key`'s `limit`: (granted, the counter's total after it). Grants less than
        `want` only when less is left (then the counter is full: total == limit); (0, total) when nothing is."""
        table = self._table()
        want = min(want, limit)  # the condition below holds for any `want` while the counter does not exist
        for _ in range(_LEASE_ATTEMPTS):
            try:
                answer = table.update_item(
                    Key={"counterKey": key},
                    UpdateExpression="SET expiresAt = if_not_exists(expiresAt, :e) ADD granted :n",
                    ConditionExpression="attribute_not_exists(granted) OR granted <= :room",
                    ExpressionAttributeValues={":n": want, ":room": limit - want, ":e": expires_at},
                    ReturnValues="UPDATED_NEW",
                )
                return want, int(answer["Attributes"]["granted"])
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise
            total = self.granted(key)
            if total >= limit:
                return 0, total
            want = min(want, limit - total)
        return 0, self.granted(key)

    def granted(self, key: str) -> int:
        """How much of counter `key` has been leased so far."""
        item = self._table().get_item(Key={"counterKey": key}, ConsistentRead=True).get("Item")
        return int(item["granted"]) if item else 0
