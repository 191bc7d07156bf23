"""RAG repositories in DynamoDB (`Settings.rag_repositories_table`, partition key `repositoryId`).

Decision: repositories live in DynamoDB so admins can add and remove them at runtime (POST/DELETE /repositories);
config.yaml's `ragRepositories` seeds them (`sync_repositories`, run by `lisa rag sync` and by the local runner).
A synced repository is marked `source: config` and config wins for it on the next sync; repositories created
through the API are never touched by a sync; a config repository that left config.yaml is reported, not deleted.
"""

from __future__ import annotations

import builtins
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError
from pydantic import ValidationError

from chalicelib import aws
from chalicelib.config import LisaConfig, RagRepository, format_validation_error
from chalicelib.rag.errors import InvalidRequest, RepositoryConflict, RepositoryNotFound
from chalicelib.rag.models import RepositoryRecord
from chalicelib.settings import get_settings

logger = Logger(service="lisa-rag")

CACHE_SECONDS = 5.0  # how stale a repository read by search/ingestion may be (admin changes land within this)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _plain(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def _to_item(record: RepositoryRecord) -> dict[str, Any]:
    item: dict[str, Any] = json.loads(json.dumps(record.wire()), parse_float=Decimal)
    return item


def _from_item(item: Mapping[str, Any]) -> RepositoryRecord:
    return RepositoryRecord.model_validate(json.loads(json.dumps(item, default=_plain)))


def _failed_condition(error: ClientError) -> bool:
    return bool(error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


class RepositoryStore:
    """CRUD over repositories, plus a short read cache for the hot paths (search, ingestion)."""

    _cache: dict[str, tuple[float, RepositoryRecord]] = {}

    def __init__(self, table_name: str | None = None) -> None:
        self._table_name = table_name

    def _table(self) -> Any:
        return aws.table(self._table_name or get_settings().rag_repositories_table)

    @classmethod
    def clear_cache(cls) -> None:
        """Forget cached reads (after the environment changed, e.g. in tests)."""
        cls._cache.clear()

    def list(self) -> builtins.list[RepositoryRecord]:
        """Every repository, by id (an invalid stored item is logged and skipped)."""
        scan: dict[str, Any] = {"ConsistentRead": True}
        records: list[RepositoryRecord] = []
        while True:
            page = self._table().scan(**scan)
            for item in page.get("Items", []):
                try:
                    records.append(_from_item(item))
                except ValidationError as error:
                    logger.error("skipping an invalid repository item", item=item.get("repositoryId"), error=str(error))
            if "LastEvaluatedKey" not in page:
                break
            scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return sorted(records, key=lambda r: r.repository_id)

    def get(self, repository_id: str, *, cached: bool = False) -> RepositoryRecord:
        """One repository; `RepositoryNotFound` if none. `cached` allows a read up to CACHE_SECONDS old."""
        now = time.monotonic()
        hit = self._cache.get(repository_id)
        if cached and hit is not None and now - hit[0] < CACHE_SECONDS:
            return hit[1]
        item = self._table().get_item(Key={"repositoryId": repository_id}, ConsistentRead=True).get("Item")
        if item is None:
            self._cache.pop(repository_id, None)
            raise RepositoryNotFound(repository_id)
        record = _from_item(item)
        self._cache[repository_id] = (now, record)
        return record

    def create(self, repository: RagRepository, *, created_by: str, source: str = "api") -> RepositoryRecord:
        """Add a repository; `RepositoryConflict` if the id is taken."""
        now = _now()
        record = _record(repository, source=source, created_by=created_by, created_at=now, updated_at=now)
        try:
            self._table().put_item(Item=_to_item(record), ConditionExpression="attribute_not_exists(repositoryId)")
        except ClientError as error:
            if _failed_condition(error):
                raise RepositoryConflict(f"repository {repository.repository_id!r} already exists") from None
            raise
        self._cache.pop(record.repository_id, None)
        return record

    def replace(self, record: RepositoryRecord) -> None:
        """Overwrite a repository's record (config sync)."""
        self._table().put_item(Item=_to_item(record))
        self._cache.pop(record.repository_id, None)

    def delete(self, repository_id: str) -> RepositoryRecord:
        """Remove the record; `RepositoryNotFound` if none."""
        try:
            response = self._table().delete_item(
                Key={"repositoryId": repository_id},
                ConditionExpression="attribute_exists(repositoryId)",
                ReturnValues="ALL_OLD",
            )
        except ClientError as error:
            if _failed_condition(error):
                raise RepositoryNotFound(repository_id) from None
            raise
        self._cache.pop(repository_id, None)
        return _from_item(response["Attributes"])


def _record(repository: RagRepository, **extra: Any) -> RepositoryRecord:
    data = repository.model_dump(mode="json", by_alias=True)
    try:
        return RepositoryRecord.model_validate(
            {
                **data,
                "source": extra["source"],
                "createdBy": extra["created_by"],
                "createdAt": extra["created_at"],
                "updatedAt": extra["updated_at"],
            }
        )
    except ValidationError as error:
        problems = format_validation_error(error).replace("\n", "; ")
        raise InvalidRequest(f"repository {repository.repository_id!r}: {problems}") from None


@dataclass
class SyncResult:
    """What syncing config.yaml's repositories changed (the CLI and the runner report it)."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    orphaned: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, list[str]]:
        """The result as JSON (for `--json` output and logs)."""
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "orphaned": self.orphaned,
        }


_CONFIG_FIELDS = ("type", "connection", "embedding_model_id", "chunking", "allowed_groups")


def sync_repositories(config: LisaConfig, store: RepositoryStore | None = None) -> SyncResult:
    """Make the table hold config.yaml's `ragRepositories` (config wins for them); idempotent."""
    store = store or RepositoryStore()
    result = SyncResult()
    existing = {r.repository_id: r for r in store.list()}
    for repository in config.rag_repositories:
        now = _now()
        desired = _record(repository, source="config", created_by="config", created_at=now, updated_at=now)
        current = existing.get(repository.repository_id)
        if current is None:
            try:
                store.create(repository, created_by="config", source="config")
            except RepositoryConflict:  # created concurrently: bring it in line below on the next sync
                result.unchanged.append(repository.repository_id)
                continue
            result.created.append(repository.repository_id)
            continue
        same = current.source == "config" and all(getattr(current, f) == getattr(desired, f) for f in _CONFIG_FIELDS)
        if same:
            result.unchanged.append(repository.repository_id)
            continue
        store.replace(desired.model_copy(update={"created_at": current.created_at, "created_by": current.created_by}))
        result.updated.append(repository.repository_id)
    named = {r.repository_id for r in config.rag_repositories}
    result.orphaned = sorted(i for i, r in existing.items() if r.source == "config" and i not in named)
    logger.info("repositories synced from config", result=result.to_dict())
    return result
