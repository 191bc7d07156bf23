"""The one base of every wire model, and what all of LISA's wire formats have in common."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class WireModel(BaseModel):
    """A JSON object on the wire: unknown fields are ignored, as every server LISA speaks to or imitates does
    (forward compatibility); fields are read by name or alias."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class StrictWireModel(WireModel):
    """A wire object whose JSON types are taken exactly as sent: `"1"` is not an integer, `1` is not a string.

    The engines LISA imitates parse with serde, which refuses such coercions, so a worker must refuse them too.
    """

    model_config = ConfigDict(strict=True)


def _is_none(value: object) -> bool:
    return value is None


def omitted_when_none() -> Any:
    """A field that defaults to None and is left out of the dump when None, as the wire leaves it out (serde's
    `skip_serializing_if`); other None fields are written as `null`. The JSON schema still lists it."""
    return Field(None, exclude_if=_is_none)
