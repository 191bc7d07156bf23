"""The model registry in DynamoDB (`Settings.models_table`, partition key `modelId` = modelName).

Every write is conditional. `create` requires the id to be free; `update` names the `version` it is based on and
is refused with `ModelConflict` if the record moved on (so two concurrent updates never lose one: the loser
re-reads and retries, see `modify`); `set_status` is one atomic `UpdateItem` that bumps the version; `delete`
can be made conditional on a version too. Items hold the record's camelCase wire fields; numbers inside
`defaultModelKwargs` and `containerConfig` are stored as DynamoDB numbers.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError
from pydantic import ValidationError
from pydantic.alias_generators import to_camel

from chalicelib import aws
from chalicelib.config import format_validation_error, model_type_of
from chalicelib.registry.errors import InvalidModel, ModelConflict, ModelNotFound
from chalicelib.registry.models import (
    HISTORY_LENGTH,
    CreateModelRequest,
    Hosting,
    ModelRecord,
    ModelSource,
    ModelStatus,
    StatusEvent,
)
from chalicelib.settings import get_settings

__all__ = ["InvalidModel", "ModelConflict", "ModelNotFound", "ModelStore"]

logger = Logger(service="lisa-registry")

DEFAULT_MODIFY_ATTEMPTS = 20


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _plain_number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def _to_item(record: ModelRecord) -> dict[str, Any]:
    """The DynamoDB item of a record: wire fields without nulls, floats as Decimals."""
    data = record.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"schedule_status"})
    item: dict[str, Any] = json.loads(json.dumps(data), parse_float=Decimal)
    return item


def _from_item(item: Mapping[str, Any]) -> ModelRecord:
    plain = json.loads(json.dumps(item, default=_plain_number))
    return ModelRecord.model_validate(plain)


def _failed_condition(error: ClientError) -> bool:
    return bool(error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


def _validated(fields: Mapping[str, Any]) -> ModelRecord:
    """A record from python-named fields; errors name the wire (camelCase) fields."""
    try:
        return ModelRecord.model_validate({to_camel(name): value for name, value in fields.items()})
    except ValidationError as error:
        raise InvalidModel(format_validation_error(error).replace("\n", "; ")) from None


class ModelStore:
    """CRUD over registered models, with optimistic concurrency on `version`."""

    def __init__(self, table_name: str | None = None) -> None:
        self._table_name = table_name

    def _table(self) -> Any:
        return aws.table(self._table_name or get_settings().models_table)

    # -- reads -----------------------------------------------------------------------------------------------
    def list(self) -> builtins.list[ModelRecord]:
        """Every registered model, by name. A stored item that is no longer valid is logged and skipped."""
        table = self._table()
        scan: dict[str, Any] = {"ConsistentRead": True}
        records: list[ModelRecord] = []
        while True:
            page = table.scan(**scan)
            for item in page.get("Items", []):
                try:
                    records.append(_from_item(item))
                except ValidationError as error:
                    logger.error("skipping an invalid registry item", model_id=item.get("modelId"), error=str(error))
            if "LastEvaluatedKey" not in page:
                break
            scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return sorted(records, key=lambda r: r.model_name)

    def get(self, model_id: str) -> ModelRecord:
        """One model; `ModelNotFound` if there is none with this id."""
        item = self._get_item(model_id)
        if item is None:
            raise ModelNotFound(model_id)
        return _from_item(item)

    def _get_item(self, model_id: str) -> dict[str, Any] | None:
        response = self._table().get_item(Key={"modelId": model_id}, ConsistentRead=True)
        item: dict[str, Any] | None = response.get("Item")
        return item

    def _current_version(self, model_id: str) -> int | None:
        item = self._get_item(model_id)
        return None if item is None else int(item["version"])

    # -- writes ----------------------------------------------------------------------------------------------
    def create(
        self,
        request: CreateModelRequest,
        *,
        source: ModelSource = "api",
        status: ModelStatus | None = None,
        status_reason: str | None = None,
        status_step: str | None = None,
        hosting: Hosting | None = None,
    ) -> ModelRecord:
        """Register a new model (version 1). Unless given, the status is `InService` when the request has an
        endpoint and `Creating` otherwise. `hosting`: a model the lifecycle workflows run. `ModelConflict` if the
        name is taken."""
        now = _now()
        if status is None:
            status = ModelStatus.IN_SERVICE if request.endpoint_url else ModelStatus.CREATING
        event = StatusEvent(at=now, status=status, step=status_step, reason=status_reason)
        record = _validated(
            {
                **request.record_fields(),
                "status": status,
                "status_reason": status_reason,
                "status_step": status_step,
                "history": [event],
                "hosting": hosting,
                "source": source,
                "created_at": now,
                "updated_at": now,
                "version": 1,
            }
        )
        try:
            self._table().put_item(Item=_to_item(record), ConditionExpression="attribute_not_exists(modelId)")
        except ClientError as error:
            if not _failed_condition(error):
                raise
            raise ModelConflict(
                f"model {record.model_id!r} already exists; update it (PUT with its version) or delete it first",
                self._current_version(record.model_id),
            ) from None
        logger.info("model registered", model_id=record.model_id, status=record.status.value, source=source)
        return record

    def update(self, model_id: str, expected_version: int, changes: Mapping[str, Any]) -> ModelRecord:
        """Apply `changes` (record fields by python name) to the model at `expected_version`; bumps the version.

        Changing `status` without `status_reason` clears the old reason; changing `inference_container` without
        `model_type` adopts the type it implies. `ModelNotFound`, `ModelConflict` (the version moved on: re-read
        and retry) or `InvalidModel` (the result would be invalid; nothing is written).
        """
        item = self._get_item(model_id)
        if item is None:
            raise ModelNotFound(model_id)
        current = _from_item(item)
        if current.version != expected_version:
            raise self._stale(model_id, expected_version, current.version)
        record = self._apply(current, changes)
        try:
            self._table().put_item(
                Item=_to_item(record),
                ConditionExpression="attribute_exists(modelId) AND #version = :expected",
                ExpressionAttributeNames={"#version": "version"},
                ExpressionAttributeValues={":expected": expected_version},
            )
        except ClientError as error:
            if not _failed_condition(error):
                raise
            latest = self._current_version(model_id)
            if latest is None:
                raise ModelNotFound(model_id, message=f"model {model_id!r} was deleted meanwhile") from None
            raise self._stale(model_id, expected_version, latest) from None
        return record

    @staticmethod
    def _stale(model_id: str, expected: int, current: int) -> ModelConflict:
        return ModelConflict(
            f"model {model_id!r} is at version {current}, not {expected}: it changed since you read it; "
            "fetch it again and reapply your change",
            current,
        )

    @staticmethod
    def _apply(current: ModelRecord, changes: Mapping[str, Any]) -> ModelRecord:
        fields = current.model_dump(exclude={"schedule_status"})
        unknown = set(changes) - set(fields) - {"provider"}
        if unknown:
            raise InvalidModel(f"unknown record field(s): {', '.join(sorted(unknown))}")
        protected = {"model_id", "model_name", "created_at", "updated_at", "version"} & set(changes)
        if protected:
            raise InvalidModel(f"cannot change {', '.join(sorted(protected))}")
        fields.update(changes)
        fields.pop("provider")  # derived again from the container
        if "status" in changes and changes["status"] != current.status:
            if "status_reason" not in changes:
                fields["status_reason"] = None
            if "status_step" not in changes:
                fields["status_step"] = None
        if changes.get("inference_container") is not None and "model_type" not in changes:
            fields["model_type"] = model_type_of(changes["inference_container"])
        now = _now()
        said = ("status", "status_step", "status_reason")
        if any(fields[name] != getattr(current, name) for name in said):
            event = StatusEvent(
                at=now, status=fields["status"], step=fields["status_step"], reason=fields["status_reason"]
            )
            fields["history"] = [*current.history, event][-HISTORY_LENGTH:]
        fields["updated_at"] = now
        fields["version"] = current.version + 1
        return _validated(fields)

    def modify(
        self,
        model_id: str,
        change: Callable[[ModelRecord], Mapping[str, Any] | None],
        attempts: int = DEFAULT_MODIFY_ATTEMPTS,
    ) -> ModelRecord:
        """Read-modify-write with retries: `change(current)` returns the fields to change (None or {}: nothing to
        do, the current record is returned). Retries when a concurrent write wins; `ModelConflict` after
        `attempts` lost races."""
        for _ in range(attempts):
            current = self.get(model_id)
            changes = change(current)
            if not changes:
                return current
            try:
                return self.update(model_id, current.version, changes)
            except ModelConflict:
                continue
        raise ModelConflict(f"model {model_id!r} kept changing; gave up after {attempts} attempts")

    def set_status(self, model_id: str, status: ModelStatus, reason: str | None = None) -> ModelRecord:
        """Atomically set the status (and its reason, cleared when None), clear the step, append the change to the
        history; bumps the version."""
        status = ModelStatus(status)
        now = _now()
        event = StatusEvent(at=now, status=status, reason=None if reason is None else reason[:2000])
        names = {
            "#status": "status",
            "#version": "version",
            "#updatedAt": "updatedAt",
            "#reason": "statusReason",
            "#step": "statusStep",
            "#history": "history",
        }
        values: dict[str, Any] = {
            ":status": status.value,
            ":now": now,
            ":one": 1,
            ":event": [event.model_dump(mode="json", by_alias=True, exclude_none=True)],
            ":empty": [],
        }
        expression = (
            "SET #status = :status, #updatedAt = :now, #version = #version + :one,"
            " #history = list_append(if_not_exists(#history, :empty), :event)"
        )
        if reason is None:
            expression += " REMOVE #reason, #step"
        else:
            expression += ", #reason = :reason REMOVE #step"
            values[":reason"] = reason[:2000]
        try:
            response = self._table().update_item(
                Key={"modelId": model_id},
                UpdateExpression=expression,
                ConditionExpression="attribute_exists(modelId)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if _failed_condition(error):
                raise ModelNotFound(model_id) from None
            raise
        logger.info("model status set", model_id=model_id, status=status.value, reason=reason)
        return _from_item(response["Attributes"])

    def delete(self, model_id: str, expected_version: int | None = None) -> ModelRecord:
        """Remove a model (only at `expected_version` when given); returns what was deleted."""
        condition: dict[str, Any] = {"ConditionExpression": "attribute_exists(modelId)"}
        if expected_version is not None:
            condition = {
                "ConditionExpression": "attribute_exists(modelId) AND #version = :expected",
                "ExpressionAttributeNames": {"#version": "version"},
                "ExpressionAttributeValues": {":expected": expected_version},
            }
        try:
            response = self._table().delete_item(Key={"modelId": model_id}, ReturnValues="ALL_OLD", **condition)
        except ClientError as error:
            if not _failed_condition(error):
                raise
            latest = self._current_version(model_id)
            if latest is None or expected_version is None:
                raise ModelNotFound(model_id) from None
            raise self._stale(model_id, expected_version, latest) from None
        logger.info("model deleted", model_id=model_id)
        return _from_item(response["Attributes"])
