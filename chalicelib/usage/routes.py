"""Usage API: `GET /usage` (wire format: chalicelib/contracts/usage.py). Thin: authenticate, validate, report."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from chalicelib.apidocs.operations import ApiBlueprint
from chalicelib.auth.routes import current_principal, lisa_authorizer

if TYPE_CHECKING:
    from chalicelib.contracts.usage import UsageReport

usage_bp = ApiBlueprint(__name__)
_MODELS = "chalicelib.contracts.usage"


@usage_bp.operation(
    "/usage",
    "GET",
    authorizer=lisa_authorizer,
    query=f"{_MODELS}:UsageQuery",
    responses={200: f"{_MODELS}:UsageReport"},
    errors=(403,),
    tag="usage",
)
def get_usage() -> UsageReport:
    """Requests and tokens per UTC day and model: the caller's own; admins may name a `principal` (or `*`: all).

    `from` / `to` (YYYY-MM-DD, both included) default to the last 30 days to today; a range spans at most 366
    days. Figures are written by the router within seconds of each request (router/metering.py)."""
    from chalicelib.contracts.usage import UsageQuery
    from chalicelib.usage.service import usage_report
    from chalicelib.usage.store import UsageStore

    query = usage_bp.query(UsageQuery)
    caller = current_principal(usage_bp.current_request)
    return usage_report(caller, query, UsageStore(), datetime.now(UTC).date())
