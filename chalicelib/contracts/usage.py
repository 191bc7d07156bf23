"""The usage API's wire format: `GET /usage` (per-day figures per principal and model) and its query.

    GET /usage?from=YYYY-MM-DD&to=YYYY-MM-DD&model=NAME&principal=ID
    200 {"principal": "<owner id or *>", "from": "2026-11-04", "to": "2026-12-03",
         "days": [{"date", "principal", "model", "requests", "errors", "promptTokens", "completionTokens"}, ...],
         "totals": {"requests", "errors", "promptTokens", "completionTokens"}}

`days` is sorted by date, then model (then principal); `errors` counts requests whose status was >= 400 (a client
that went away before the answer was complete included). The router writes these figures (router/metering.py).
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

ALL_PRINCIPALS = "*"
DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MAX_RANGE_DAYS = 366
DEFAULT_RANGE_DAYS = 30  # `from` defaults to 29 days before `to`: 30 days, today included


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, alias_generator=to_camel)


class UsageQuery(_Wire):
    """GET /usage's query: a date range (UTC days, both ends included; default the last 30 days to today, at most
    366 days), one model, and (admins only) another principal's owner id or `*` for everyone."""

    from_: str | None = Field(None, alias="from", description="first day, YYYY-MM-DD (UTC)")
    to: str | None = Field(None, description="last day, YYYY-MM-DD (UTC); default today")
    model: str | None = Field(None, min_length=1, max_length=256)
    principal: str | None = Field(
        None, min_length=1, max_length=512, description="an owner id (`token:alice`, `jwt:<iss>|<sub>`) or `*`"
    )

    @field_validator("from_", "to")
    @classmethod
    def _iso_day(cls, value: str | None) -> str | None:
        if value is not None:
            from datetime import date

            try:
                if not DATE_PATTERN.match(value):
                    raise ValueError
                date.fromisoformat(value)
            except ValueError:
                raise ValueError(f"must be a date as YYYY-MM-DD, got {value[:40]!r}") from None
        return value


class UsageCounts(_Wire):
    """Request and token counts."""

    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class UsageDay(UsageCounts):
    """One principal's use of one model on one UTC day."""

    date: str
    principal: str
    model: str


class UsageReport(_Wire):
    """GET /usage: the figures of `principal` (an owner id, or `*`: everyone) from `from` to `to`."""

    principal: str
    from_: str = Field(alias="from")
    to: str
    days: list[UsageDay]
    totals: UsageCounts
