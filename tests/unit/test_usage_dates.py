"""GET /usage's date range and the months an "everyone" query reads, at the ends of the calendar."""

from __future__ import annotations

from datetime import date

import pytest

from chalicelib.contracts.usage import UsageQuery
from chalicelib.errors import BadRequest
from chalicelib.usage.service import date_range
from chalicelib.usage.store import _months

TODAY = date(2026, 12, 3)


def query(**fields: str) -> UsageQuery:
    return UsageQuery.model_validate(fields)


def test_the_default_is_the_last_30_days_and_stops_at_year_one() -> None:
    assert date_range(query(), TODAY) == (date(2026, 11, 4), TODAY)
    assert date_range(query(to="0001-01-05"), TODAY) == (date(1, 1, 1), date(1, 1, 5))
    assert date_range(query(**{"from": "2026-12-01"}), TODAY) == (date(2026, 12, 1), TODAY)


@pytest.mark.parametrize(
    "fields",
    [{"from": "2026-12-04"}, {"from": "0001-01-01", "to": "9999-12-31"}, {"from": "2025-12-02", "to": "2026-12-03"}],
)
def test_empty_and_long_ranges_name_from(fields: dict[str, str]) -> None:
    with pytest.raises(BadRequest) as refused:
        date_range(query(**fields), TODAY)
    assert refused.value.field == "from"


def test_months_cover_the_range_up_to_year_9999() -> None:
    assert list(_months(date(2025, 11, 30), date(2026, 2, 1))) == ["2025-11", "2025-12", "2026-01", "2026-02"]
    assert list(_months(date(9999, 11, 15), date(9999, 12, 31))) == ["9999-11", "9999-12"]
