"""`lisa limits ...`: rate limits and token budgets (admin), over the HTTP API with the caller's key.

    defaults                      config.yaml's defaults of each scope (GET /limits/defaults);
    list [--scope S]              every per-principal override (GET /limits);
    get SCOPE ID                  one principal's override and the limits that apply to it in its scope;
    set SCOPE ID --tokens-per-day 5000 --requests-per-minute none ...
                                  replace its override: the kinds given replace the defaults, `none` lifts one;
    delete SCOPE ID               remove its override (the defaults apply again).
SCOPE is token (ID: the token id), user (the username) or group. `--url` / `LISA_API_URL` and `--api-key` /
`LISA_API_KEY` are required: limits live in the API's tables, and the API checks the caller is an admin. Routers
see a change within their override cache's lifetime.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import typer
from rich.console import Console
from rich.table import Table

from cli.api_client import ApiClient, ApiKey, ApiRefusal, ApiUrl, refusal_exit
from cli.common import fail, validated

app = typer.Typer(help="Rate limits and token budgets: defaults and per-principal overrides (admin).")
KINDS = ("requestsPerMinute", "tokensPerMinute", "tokensPerDay", "tokensPerMonth")
SCOPES = ("token", "user", "group")
AsJson = typer.Option(False, "--json", help="Print the API's JSON instead of a table.")
ScopeArgument = typer.Argument(..., help="token, user or group.")
PrincipalArgument = typer.Argument(..., help="The token id, username or group name.")


@app.callback(no_args_is_help=True)
def connect(ctx: typer.Context, url: str | None = ApiUrl, api_key: str | None = ApiKey) -> None:
    """Rate limits and token budgets: defaults and per-principal overrides (admin, over the HTTP API)."""
    if not url or not api_key:
        raise fail("limits are managed over the API: give --url and --api-key (or LISA_API_URL, LISA_API_KEY)", code=2)
    ctx.obj = ApiClient(url, api_key)


def _call(ctx: typer.Context, method: str, path: str, body: dict[str, Any] | None = None, **params: str) -> Any:
    client: ApiClient = ctx.obj
    try:
        return client.call(method, path, body, params={k: v for k, v in params.items() if v})
    except ApiRefusal as refusal:
        raise refusal_exit(refusal) from None


def _path(scope: str, principal_id: str) -> str:
    if scope not in SCOPES:
        raise fail(f"scope: must be one of {', '.join(SCOPES)}, not {scope!r}", code=2)
    return f"/limits/{scope}/{quote(principal_id, safe='')}"


def _shown(value: Any) -> str:
    return "no limit" if value is None else f"{value:,}"


def _print_principals(views: list[dict[str, Any]], title: str) -> None:
    table = Table(title=title)
    for column in ("scope", "principal", "limit", "override", "applies"):
        table.add_column(column)
    for view in views:
        override = view["override"] or {}
        for kind in KINDS:
            named = _shown(override[kind]) if kind in override else ""
            table.add_row(view["scope"], view["principalId"], kind, named, _shown(view["effective"].get(kind)))
        table.add_section()
    Console(width=160).print(table)


def _answer(answer: Any, as_json: bool, title: str) -> None:
    if as_json:
        typer.echo(json.dumps(answer, indent=2))
    elif "overrides" in answer:
        _print_principals(answer["overrides"], title)
    else:
        _print_principals([answer], title)


@app.command()
def defaults(ctx: typer.Context, as_json: bool = AsJson) -> None:
    """The defaults of each scope (config.yaml `limits`): what applies to a principal without an override."""
    answer = _call(ctx, "GET", "/limits/defaults")
    if as_json:
        typer.echo(json.dumps(answer, indent=2))
        return
    table = Table(title="default limits (config.yaml `limits`)")
    for column in ("scope", *KINDS):
        table.add_column(column)
    for scope in SCOPES:
        table.add_row(scope, *(_shown(answer[scope].get(kind)) for kind in KINDS))
    Console(width=160).print(table)


@app.command(name="list")
def list_overrides(
    ctx: typer.Context,
    scope: str | None = typer.Option(None, "--scope", "-s", help="Only this scope: token, user or group."),
    as_json: bool = AsJson,
) -> None:
    """Every per-principal override, with the limits that apply in its scope."""
    _answer(_call(ctx, "GET", "/limits", scope=scope or ""), as_json, "limit overrides")


@app.command()
def get(
    ctx: typer.Context, scope: str = ScopeArgument, principal_id: str = PrincipalArgument, as_json: bool = AsJson
) -> None:
    """One principal's override (none: the defaults apply) and the limits that apply to it in its scope."""
    _answer(_call(ctx, "GET", _path(scope, principal_id)), as_json, f"limits of {scope} {principal_id}")


def _count(value: str) -> int | str | None:
    """An option's value: a count, None for `none` (no limit of that kind), else the text (the model refuses it)."""
    if value.lower() == "none":
        return None
    return int(value) if value.isdigit() else value


def _kind_option(kind: str) -> Any:
    words = "".join(f"-{c.lower()}" if c.isupper() else c for c in kind)
    return typer.Option(None, f"--{words}", help=f"{kind}: a count, or `none` for no limit of that kind.")


@app.command(name="set")
def set_override(
    ctx: typer.Context,
    scope: str = ScopeArgument,
    principal_id: str = PrincipalArgument,
    requests_per_minute: str | None = _kind_option("requestsPerMinute"),
    tokens_per_minute: str | None = _kind_option("tokensPerMinute"),
    tokens_per_day: str | None = _kind_option("tokensPerDay"),
    tokens_per_month: str | None = _kind_option("tokensPerMonth"),
    as_json: bool = AsJson,
) -> None:
    """Replace a principal's override: the kinds given replace the defaults (`none`: no limit), others keep them."""
    from chalicelib.contracts.limits import LimitOverride

    given = dict(zip(KINDS, (requests_per_minute, tokens_per_minute, tokens_per_day, tokens_per_month), strict=True))
    body = {kind: _count(value) for kind, value in given.items() if value is not None}
    if not body:
        raise fail("nothing to set: give at least one of --requests-per-minute, --tokens-per-minute, ...", code=2)
    path = _path(scope, principal_id)
    override = validated(LimitOverride, body).stored()
    _answer(_call(ctx, "PUT", path, override), as_json, f"limits of {scope} {principal_id}")


@app.command()
def delete(
    ctx: typer.Context, scope: str = ScopeArgument, principal_id: str = PrincipalArgument, as_json: bool = AsJson
) -> None:
    """Remove a principal's override: the defaults apply to it again."""
    _answer(_call(ctx, "DELETE", _path(scope, principal_id)), as_json, f"limits of {scope} {principal_id}")
