"""`lisa usage`: requests and tokens per UTC day and model (GET /usage's figures).

With `--url` / `LISA_API_URL` (and `--api-key` / `LISA_API_KEY`) it asks the LISA API as the key's user: your own
figures, or (admin) `--principal OWNER_ID` / `--principal '*'` for everyone. Without --url it reads the usage table
directly, wherever the settings point (moto server, LocalStack or real AWS), as the account owner: everyone's
figures unless --principal names one. `--from` / `--to` (YYYY-MM-DD) default to the last 30 days to today (UTC).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from cli.api_client import ApiClient, ApiKey, ApiRefusal, ApiUrl, refusal_exit
from cli.common import fail, run, validated


def _from_api(url: str, api_key: str, params: dict[str, str]) -> Any:
    from chalicelib.contracts.usage import UsageReport

    try:
        return UsageReport.model_validate(ApiClient(url, api_key).call("GET", "/usage", params=params))
    except ApiRefusal as refusal:
        raise refusal_exit(refusal) from None


def _from_table(params: dict[str, str]) -> Any:
    from chalicelib.contracts.usage import UsageQuery
    from chalicelib.errors import LisaError
    from chalicelib.settings import get_settings
    from chalicelib.usage.service import report
    from chalicelib.usage.store import UsageStore

    query = validated(UsageQuery, params)
    today = datetime.now(UTC).date()
    table = f"usage table {get_settings().usage_table!r}"
    return run(lambda: report(query.principal or "*", query, UsageStore(), today), table, {LisaError: 2})


def _print(answer: Any) -> None:
    table = Table(title=f"usage of {answer.principal}, {answer.from_} to {answer.to} (UTC)")
    for column in ("date", "principal", "model"):
        table.add_column(column)
    for column in ("requests", "errors", "prompt tokens", "completion tokens"):
        table.add_column(column, justify="right")
    for day in answer.days:
        table.add_row(
            day.date,
            day.principal,
            day.model,
            *(str(n) for n in (day.requests, day.errors, day.prompt_tokens, day.completion_tokens)),
        )
    totals = answer.totals
    table.add_section()
    table.add_row(
        "total",
        "",
        "",
        *(str(n) for n in (totals.requests, totals.errors, totals.prompt_tokens, totals.completion_tokens)),
    )
    Console(width=200).print(table)


def usage(
    url: str | None = ApiUrl,
    api_key: str | None = ApiKey,
    start: str | None = typer.Option(None, "--from", help="First day, YYYY-MM-DD (UTC; default 29 days before --to)."),
    end: str | None = typer.Option(None, "--to", help="Last day, YYYY-MM-DD (UTC; default today)."),
    model: str | None = typer.Option(None, "--model", "-m", help="Only this model."),
    principal: str | None = typer.Option(
        None, "--principal", "-p", help="(admin) An owner id (token:alice, jwt:<iss>|<sub>) or '*' for everyone."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print GET /usage's JSON instead of a table."),
) -> None:
    """Requests and tokens per UTC day and model: yours over --url, anyone's (admin, or the table directly)."""
    params = {k: v for k, v in {"from": start, "to": end, "model": model, "principal": principal}.items() if v}
    if url and not api_key:
        raise fail("--url needs --api-key (or LISA_API_KEY): the API token you call with", code=2)
    answer = _from_api(url, api_key, params) if url and api_key else _from_table(params)
    if as_json:
        typer.echo(json.dumps(answer.model_dump(mode="json", by_alias=True), indent=2))
    else:
        _print(answer)
