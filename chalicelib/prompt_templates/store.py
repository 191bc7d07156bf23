"""Prompt templates in DynamoDB, one item per template (key `templateId`), with the caller's rights checked here.

Rights: a template is visible to its owner, to members of one of its `groups` (visibility "groups") and, when
global, to everyone; to anyone else it does not exist (404, so nobody learns of another user's private template).
Admins are not special for visibility (a private persona stays private), but may change or delete any template
they can see, and only admins may make (or keep) a template global. A non-admin shares only with groups they are
in. Listing reads two indexes, `byOwner` and `byVisibility` (global, and group-shared filtered by the caller's
groups), so it never scans the table; index reads are eventually consistent, a get by id is not.
"""

from __future__ import annotations

import uuid
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from chalicelib import aws
from chalicelib.errors import Forbidden, NotFound
from chalicelib.prompt_templates.models import Kind, PromptTemplate, TemplateWrite, placeholders
from chalicelib.sessions.items import timestamp
from chalicelib.settings import get_settings

if TYPE_CHECKING:
    from chalicelib.auth.principal import Principal

logger = Logger(service="lisa-prompt-templates")

BY_OWNER, BY_VISIBILITY = "byOwner", "byVisibility"


class TemplateNotFound(NotFound):
    """No such template, or not one the caller may see (never say which)."""

    def __init__(self, template_id: str) -> None:
        super().__init__(f"prompt template {template_id!r} not found", field="templateId")


def visible(principal: Principal, item: dict[str, Any]) -> bool:
    """Whether the caller may see the template: its owner, a member of a group it is shared with, anyone if global."""
    if item["ownerId"] == principal.owner_id or item["visibility"] == "global":
        return True
    return item["visibility"] == "groups" and bool(set(item.get("groups") or ()) & set(principal.groups))


def editable(principal: Principal, item: dict[str, Any]) -> bool:
    """Whether the caller may change or delete the template: its owner or an admin."""
    return principal.is_admin or item["ownerId"] == principal.owner_id


def check_sharing(principal: Principal, write: TemplateWrite) -> None:
    """Only admins publish globally; a non-admin shares only with groups they belong to (`Forbidden` otherwise)."""
    if principal.is_admin:
        return
    if write.visibility == "global":
        raise Forbidden("visibility: only administrators may make a template global", field="visibility")
    foreign = [group for group in write.groups if group not in principal.groups]
    if foreign:
        raise Forbidden(f"groups: you are not a member of {', '.join(map(repr, foreign))}", field="groups")


def _view(principal: Principal, item: dict[str, Any]) -> PromptTemplate:
    return PromptTemplate(
        template_id=item["templateId"],
        title=item["title"],
        kind=item["kind"],
        body=item["body"],
        description=item.get("description", ""),
        visibility=item["visibility"],
        groups=list(item.get("groups") or ()),
        owner=item["ownerName"],
        created_at=item["createdAt"],
        updated_at=item["updatedAt"],
        placeholders=placeholders(item["kind"], item["body"]),
        editable=editable(principal, item),
    )


def _failed_condition(error: ClientError) -> bool:
    return bool(error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


class TemplateStore:
    """Templates on behalf of a principal (module docstring: who sees and changes what)."""

    def __init__(self, table_name: str | None = None) -> None:
        self._table_name = table_name

    def _table(self) -> Any:
        return aws.table(self._table_name or get_settings().prompt_templates_table)

    # -- reads -----------------------------------------------------------------------------------------------
    def list_visible(self, principal: Principal, kind: Kind | None = None) -> list[PromptTemplate]:
        """Every template the caller may see (of `kind`, if given), by title."""
        found: dict[str, dict[str, Any]] = {}
        for index, key, value in (
            (BY_OWNER, "ownerId", principal.owner_id),
            (BY_VISIBILITY, "visibility", "global"),
            (BY_VISIBILITY, "visibility", "groups"),
        ):
            if value == "groups" and not principal.groups:
                continue
            for item in self._query(index, key, value):
                if visible(principal, item) and (kind is None or item["kind"] == kind):
                    found[item["templateId"]] = item
        views = [_view(principal, item) for item in found.values()]
        return sorted(views, key=lambda t: (t.title.casefold(), t.template_id))

    def _query(self, index: str, key: str, value: str) -> list[dict[str, Any]]:
        table = self._table()
        query: dict[str, Any] = {
            "IndexName": index,
            "KeyConditionExpression": "#k = :v",
            "ExpressionAttributeNames": {"#k": key},
            "ExpressionAttributeValues": {":v": value},
        }
        items: list[dict[str, Any]] = []
        while True:
            page = table.query(**query)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def get(self, principal: Principal, template_id: str) -> PromptTemplate:
        """One template the caller may see (else `TemplateNotFound`)."""
        return _view(principal, self._visible_item(principal, template_id))

    def _visible_item(self, principal: Principal, template_id: str) -> dict[str, Any]:
        item: dict[str, Any] | None = (
            self._table().get_item(Key={"templateId": template_id}, ConsistentRead=True).get("Item")
        )
        if item is None or not visible(principal, item):
            raise TemplateNotFound(template_id)
        return item

    def _editable_item(self, principal: Principal, template_id: str) -> dict[str, Any]:
        item = self._visible_item(principal, template_id)
        if not editable(principal, item):
            raise Forbidden(
                f"prompt template {template_id!r} belongs to another user; only they or an admin may change it",
                field="templateId",
            )
        return item

    # -- writes ----------------------------------------------------------------------------------------------
    def create(self, principal: Principal, write: TemplateWrite) -> PromptTemplate:
        """A new template owned by the caller."""
        check_sharing(principal, write)
        now = timestamp()
        item = {
            "templateId": uuid.uuid4().hex,
            "ownerId": principal.owner_id,
            "ownerName": principal.username,
            "createdAt": now,
            **self._fields(write, now),
        }
        self._table().put_item(Item=item, ConditionExpression="attribute_not_exists(templateId)")
        logger.info("prompt template created", extra={"templateId": item["templateId"], "kind": write.kind})
        return _view(principal, item)

    def replace(self, principal: Principal, template_id: str, write: TemplateWrite) -> PromptTemplate:
        """Replace the template's content and sharing (owner or admin); its owner and creation time stay."""
        current = self._editable_item(principal, template_id)
        check_sharing(principal, write)
        item = {key: current[key] for key in ("templateId", "ownerId", "ownerName", "createdAt")}
        item.update(self._fields(write, timestamp()))
        try:
            self._table().put_item(Item=item, ConditionExpression="attribute_exists(templateId)")
        except ClientError as error:
            if _failed_condition(error):  # deleted meanwhile: do not bring it back
                raise TemplateNotFound(template_id) from None
            raise
        return _view(principal, item)

    @staticmethod
    def _fields(write: TemplateWrite, now: str) -> dict[str, Any]:
        return {
            "title": write.title,
            "kind": write.kind,
            "body": write.body,
            "description": write.description,
            "visibility": write.visibility,
            "groups": list(write.groups),
            "updatedAt": now,
        }

    def delete(self, principal: Principal, template_id: str) -> None:
        """Delete the template (owner or admin)."""
        self._editable_item(principal, template_id)
        self._table().delete_item(Key={"templateId": template_id})
        logger.info("prompt template deleted", extra={"templateId": template_id})


@cache
def get_store() -> TemplateStore:
    """The process-wide store (the table name is read from settings on each call)."""
    return TemplateStore()
