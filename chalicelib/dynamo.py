"""What DynamoDB can store: checks for values that arrive from callers, before boto3 sees them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

MAX_DYNAMO_DEPTH = 32  # DynamoDB's limit on nested attribute levels


def dynamo_storable(value: Any, depth: int = 0) -> Any:
    """`value` if DynamoDB can store it as given: finite numbers of ≤ 38 digits in 1E-130..1E+125, ≤ 32 levels.

    Raises ValueError naming the offending number, so a pydantic validator turns it into a 400 (not a 500 from
    boto3's Decimal context)."""
    if depth > MAX_DYNAMO_DEPTH:
        raise ValueError(f"nested more than {MAX_DYNAMO_DEPTH} levels deep")
    if isinstance(value, dict):
        for item in value.values():
            dynamo_storable(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            dynamo_storable(item, depth + 1)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        # As the stores write them: floats by repr (trailing zeros irrelevant), ints with every digit.
        number = Decimal(repr(value)).normalize() if isinstance(value, float) else Decimal(value)
        if not number.is_finite():
            raise ValueError("numbers must be finite (no NaN or Infinity)")
        if number and (len(number.as_tuple().digits) > 38 or not -130 <= number.adjusted() <= 125):
            raise ValueError(f"number {_short_number(value)} is out of range (at most 38 digits, 1E-130 to 1E+125)")
    return value


def _short_number(value: int | float) -> str:
    text = repr(value)
    return text if len(text) <= 24 else text[:20] + "..."
