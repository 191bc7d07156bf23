"""Rate limits and token budgets: the values (config.yaml `limits`, admins' per-principal overrides) and the API's
wire format (`/limits/{scope}/{principalId}`).

A limit is a positive count per window, or null: no limit of that kind. Windows are fixed and in UTC: the minute
(requests and tokens per minute), the day and the calendar month (token budgets). Tokens are prompt plus completion
tokens, as the backend reported them (streams included).
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from chalicelib.contracts.base import WireModel

MAX_LIMIT = 10**15
PRINCIPAL_ID_PATTERN = r"^[^\s#][^#]{0,254}$"  # `#` separates the parts of the store's keys


class Scope(StrEnum):
    """Whom a limit is counted for: one API token, one user (every credential of that username), or one group."""

    TOKEN = "token"  # noqa: S105 (a scope name, not a credential)
    USER = "user"
    GROUP = "group"


class Kind(StrEnum):
    """What a limit counts, in which window (the wire name of each is its alias in `Limits`)."""

    REQUESTS_PER_MINUTE = "requestsPerMinute"
    TOKENS_PER_MINUTE = "tokensPerMinute"
    TOKENS_PER_DAY = "tokensPerDay"
    TOKENS_PER_MONTH = "tokensPerMonth"


Count = Annotated[int | None, Field(ge=1, le=MAX_LIMIT)]
_FIELDS = {
    Kind.REQUESTS_PER_MINUTE: "requests_per_minute",
    Kind.TOKENS_PER_MINUTE: "tokens_per_minute",
    Kind.TOKENS_PER_DAY: "tokens_per_day",
    Kind.TOKENS_PER_MONTH: "tokens_per_month",
}


class Limits(BaseModel):
    """One principal's limits; null (or left out) is no limit of that kind."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    requests_per_minute: Count = Field(None, alias="requestsPerMinute")
    tokens_per_minute: Count = Field(None, alias="tokensPerMinute")
    tokens_per_day: Count = Field(None, alias="tokensPerDay")
    tokens_per_month: Count = Field(None, alias="tokensPerMonth")

    def of(self, kind: Kind) -> int | None:
        """The limit of one kind (None: unlimited)."""
        value: int | None = getattr(self, _FIELDS[kind])
        return value

    def merged(self, override: LimitOverride | None) -> Limits:
        """These limits with the kinds an override names replaced (an override's null lifts that limit)."""
        if override is None:
            return self
        named = {name: getattr(override, name) for name in override.model_fields_set}
        return self.model_copy(update=named)


class LimitsConfig(BaseModel):
    """config.yaml `limits`: the defaults of each scope (what applies to a principal without an override).

    A request must pass every limit that applies to it: its token's, its user's and its groups' (of a user's
    groups the most permissive limit of each kind counts). Admins override them per principal (`PUT /limits`)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    token: Limits = Field(default_factory=Limits)
    user: Limits = Field(default_factory=Limits)
    group: Limits = Field(default_factory=Limits)

    def of(self, scope: Scope) -> Limits:
        """The defaults of one scope."""
        limits: Limits = getattr(self, scope.value)
        return limits

    def environment(self) -> dict[str, str]:
        """The environment the router and the API read (`chalicelib.settings.Settings.limits`, `LISA_LIMITS`)."""
        return {"LISA_LIMITS": json.dumps(self.model_dump(mode="json", by_alias=True, exclude_none=True))}


class LimitOverride(Limits):
    """The body of `PUT /limits/{scope}/{principalId}`: the kinds it names replace the defaults for that principal
    (null: no limit of that kind); kinds left out keep the default. The whole override is replaced each time."""

    def stored(self) -> dict[str, Any]:
        """The named kinds by wire name (nulls kept: they lift a default)."""
        return self.model_dump(mode="json", by_alias=True, include=self.model_fields_set)


class PrincipalLimits(WireModel):
    """One principal's limits: its override (null: none) and what applies to it in its own scope (the default with
    the override applied). A request is also bound by the other scopes' limits that apply to its caller."""

    scope: Scope
    principal_id: str = Field(alias="principalId")
    override: dict[str, int | None] | None = Field(
        description="the kinds the override names, by wire name (null: no limit of that kind)"
    )
    effective: Limits
    updated_by: str | None = Field(None, alias="updatedBy")
    updated_at: str | None = Field(None, alias="updatedAt")


class LimitOverrideList(WireModel):
    """Every override set, by scope and principal."""

    overrides: list[PrincipalLimits]


class ScopeQuery(WireModel):
    """`GET /limits?scope=`: only overrides of this scope."""

    scope: Scope | None = None
