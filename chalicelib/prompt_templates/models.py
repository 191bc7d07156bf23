"""Wire shapes of the prompt-templates API (camelCase on the wire), validated at the edge."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator
from pydantic.alias_generators import to_camel

TEMPLATE_ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")
PLACEHOLDER = re.compile(r"\{\{([A-Za-z0-9_]+)\}\}")
MAX_GROUPS = 50

Kind = Literal["persona", "directive"]
Visibility = Literal["private", "groups", "global"]
GroupName = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, alias_generator=to_camel)


def placeholders(kind: str, body: str) -> list[str]:
    """A directive's `{{name}}` placeholders in order of first appearance (a persona has none)."""
    if kind != "directive":
        return []
    return list(dict.fromkeys(PLACEHOLDER.findall(body)))


class TemplateWrite(_Wire):
    """POST and PUT body (PUT replaces the whole template). `groups`: exactly when `visibility` is "groups"."""

    title: str = Field(min_length=1, max_length=200)
    kind: Kind
    body: str = Field(min_length=1, max_length=20_000)
    description: str = Field("", max_length=1000)
    visibility: Visibility = "private"
    groups: list[GroupName] = Field(default_factory=list, max_length=MAX_GROUPS, validate_default=True)

    @field_validator("title", "body")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("groups")
    @classmethod
    def _groups_iff_shared(cls, value: list[str], info: ValidationInfo) -> list[str]:
        visibility = info.data.get("visibility")  # absent when it was invalid: that error is reported instead
        if visibility == "groups" and not value:
            raise ValueError("name at least one group when visibility is 'groups'")
        if visibility not in (None, "groups") and value:
            raise ValueError(f"must be empty when visibility is {visibility!r}")
        return list(dict.fromkeys(value))


class TemplatesQuery(_Wire):
    """GET /prompt-templates: only templates of this kind (default: both)."""

    kind: Kind | None = None


class PromptTemplate(_Wire):
    """A template as the caller sees it. `owner`: its creator's username (for display; rights follow the creator's
    stable id); `editable`: whether the caller may change or delete it (its owner, or an admin)."""

    template_id: str
    title: str
    kind: Kind
    body: str
    description: str
    visibility: Visibility
    groups: list[str]
    owner: str
    created_at: str
    updated_at: str
    placeholders: list[str]
    editable: bool


class TemplateList(_Wire):
    """GET /prompt-templates: the caller's own, those shared with one of the caller's groups, and the global ones,
    by title."""

    templates: list[PromptTemplate]


class TemplateDeleted(_Wire):
    """DELETE /prompt-templates/{templateId}: the id deleted."""

    deleted: str
