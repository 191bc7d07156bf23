"""`lisa tokens ...`: API tokens, for any user over the HTTP API, and for an account owner directly.

With `--url` / `LISA_API_URL` (and `--api-key` / `LISA_API_KEY`) it talks to the LISA API as the key's user, so a
non-admin needs no AWS credentials:
    create            your own token (POST /me/tokens: your groups, a bounded lifetime);
    create -u USER    a token for USER (admin: POST /tokens);
    list              every token for an admin (GET /tokens), your own for anyone else (GET /me/tokens);
    list --mine       your own; `list -u USER` one user's (admin);
    revoke ID         your own token, or (admin) anyone's;
    update ID         (admin) PUT /tokens/{tokenId}.
Without --url it talks to the tokens table directly, wherever the settings point (moto server, LocalStack or real
AWS through `LISA_AWS_ENDPOINT_URL` / the usual AWS credentials), as the account owner: `create` then needs
`--username`. A running authorizer notices a revocation or an expiry change within its cache TTL
(`LISA_AUTH_CACHE_TTL_SECONDS`).
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cli.api_client import ApiClient, ApiKey, ApiRefusal, ApiUrl, refusal_exit
from cli.common import err, fail, run, validated

app = typer.Typer(help="Create, list, update and revoke API tokens.", no_args_is_help=True)
T = TypeVar("T")


@app.callback()
def connect(ctx: typer.Context, url: str | None = ApiUrl, api_key: str | None = ApiKey) -> None:
    """Create, list, update and revoke API tokens (over the HTTP API with --url, else in the tokens table)."""
    if url and not api_key:
        raise fail("--url needs --api-key (or LISA_API_KEY): the API token you call with", code=2)
    ctx.obj = ApiClient(url, api_key) if url and api_key else None


def _api(ctx: typer.Context) -> ApiClient | None:
    """The HTTP client when the command talks to the API, None when it talks to the table."""
    return ctx.obj if isinstance(ctx.obj, ApiClient) else None


def _http(action: Callable[[], T]) -> T:
    """Run an API call; a refusal becomes its message and exit code."""
    try:
        return action()
    except ApiRefusal as refusal:
        raise refusal_exit(refusal) from None


def _record(wire: dict[str, Any]) -> Any:
    """A token's record from its API view (the same camelCase fields as the table's item)."""
    from chalicelib.auth.tokens import TokenRecord

    return TokenRecord.from_item(wire)


def _run(action: Callable[[], T]) -> T:
    """Run a store call; an unknown token or AWS failure becomes a message and exit code 1."""
    from chalicelib.auth.tokens import TokenNotFoundError
    from chalicelib.settings import get_settings

    return run(action, f"tokens table {get_settings().tokens_table!r}", {TokenNotFoundError: 1})


def _when(timestamp: int | None) -> str:
    if timestamp is None:
        return "never"
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _operator() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _store() -> Any:
    from chalicelib.auth.tokens import TokenStore

    return TokenStore()


def _expiry_fields(expires_in: int | None, expires_at: int | None) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if expires_in is not None:
        fields["expiresIn"] = expires_in
    if expires_at is not None:
        fields["tokenExpiration"] = expires_at
    return fields


ExpiresIn = typer.Option(None, "--expires-in", help="Seconds from now until the token expires.")
ExpiresAt = typer.Option(None, "--expires-at", help="UNIX time (seconds) at which the token expires.")
AsJson = typer.Option(False, "--json", help="Print JSON instead of text.")


@app.command()
def create(
    ctx: typer.Context,
    username: str | None = typer.Option(
        None, "--username", "-u", help="The user the token acts as (admin); over --url, omit it for your own token."
    ),
    group: list[str] = typer.Option([], "--group", "-g", help="A group of the user (repeatable; with --username)."),
    admin: bool = typer.Option(False, "--admin", help="The token may use the admin API (with --username)."),
    expires_in: int | None = ExpiresIn,
    expires_at: int | None = ExpiresAt,
    description: str = typer.Option("", "--description", "-d", help="What the token is for."),
    as_json: bool = AsJson,
) -> None:
    """Create a token and print it (the only time it can be seen).

    With --username (admin) and no --expires-* it never expires; your own token (over --url, no --username) gets your
    groups and the configured default lifetime."""
    from chalicelib.auth.models import CreateTokenRequest, OwnTokenRequest

    api = _api(ctx)
    expiry = _expiry_fields(expires_in, expires_at)
    if username is None:
        if api is None:
            raise fail("--username is required without --url (your own token is made over the API)", code=2)
        if group or admin:
            raise fail("--group and --admin need --username: your own token gets your groups", code=2)
        request = validated(OwnTokenRequest, {"description": description, **expiry})
        created = _http(lambda: api.call("POST", "/me/tokens", request.model_dump(by_alias=True, exclude_unset=True)))
        token, record = created["token"], _record(created)
    else:
        fields = {"username": username, "groups": group, "isAdmin": admin, "description": description, **expiry}
        admin_request = validated(CreateTokenRequest, fields)
        if api is not None:
            body = admin_request.model_dump(by_alias=True, exclude_unset=True)
            created = _http(lambda: api.call("POST", "/tokens", body))
            token, record = created["token"], _record(created)
        else:
            token, record = _create_in_table(admin_request)
    if as_json:
        typer.echo(json.dumps({"token": token, **record.to_dict()}))
    else:
        typer.echo(token)
    err.print(
        f"Created token {record.token_id} for {escape(repr(record.username))}"
        f"{' (admin)' if record.is_admin else ''}, expires {_when(record.token_expiration)}.\n"
        "Copy it now: it is stored only as a hash and cannot be shown again.",
        highlight=False,
    )


def _create_in_table(request: Any) -> tuple[str, Any]:
    store = _store()
    created: tuple[str, Any] = _run(
        lambda: store.create(
            username=request.username,
            groups=request.groups,
            is_admin=request.is_admin,
            expiration=request.expiration(time.time()),
            description=request.description,
            created_by=_operator(),
        )
    )
    return created


@app.command("list")
def list_tokens(
    ctx: typer.Context,
    username: str | None = typer.Option(None, "--username", "-u", help="Only this user's tokens (admin)."),
    mine: bool = typer.Option(False, "--mine", help="Only your own tokens (over --url)."),
    as_json: bool = AsJson,
) -> None:
    """List tokens (ids and metadata; never the secrets): over --url, an admin sees all, anyone else their own."""
    api = _api(ctx)
    if api is None:
        if mine:
            raise fail("--mine needs --url: only the API knows who you are", code=2)
        store = _store()
        records = _run(lambda: store.list(username=username))
    else:
        records = [_record(wire) for wire in _http(lambda: _list_over_api(api, username, mine))["tokens"]]
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in records]))
        return
    now = time.time()
    table = Table(title=f"{len(records)} API token(s)")
    for column in ("tokenId", "username", "groups", "admin", "expires", "description", "created", "by", "last used"):
        table.add_column(column, overflow="fold")
    for r in records:
        expires = _when(r.token_expiration) + (" [red](expired)[/red]" if r.is_expired(now) else "")
        table.add_row(
            escape(r.token_id),
            escape(r.username),
            escape(", ".join(r.groups)),
            "yes" if r.is_admin else "",
            expires,
            escape(r.description),
            _when(r.created_at),
            escape(r.created_by),
            "not yet" if r.last_used_at is None else _when(r.last_used_at),
        )
    Console(width=200).print(table)


def _list_over_api(api: ApiClient, username: str | None, mine: bool) -> Any:
    """GET /me/tokens for --mine; else GET /tokens (admin), falling back to the caller's own for a non-admin."""
    if mine:
        return api.call("GET", "/me/tokens")
    try:
        return api.call("GET", "/tokens", params={"username": username} if username else None)
    except ApiRefusal as refusal:
        if refusal.status != 403 or username:
            raise
        return api.call("GET", "/me/tokens")


@app.command()
def update(
    ctx: typer.Context,
    token_id: str = typer.Argument(..., help="The tokenId (from `lisa tokens list`)."),
    expires_in: int | None = ExpiresIn,
    expires_at: int | None = ExpiresAt,
    no_expiry: bool = typer.Option(False, "--no-expiry", help="The token never expires."),
    description: str | None = typer.Option(None, "--description", "-d", help="A new description."),
    as_json: bool = AsJson,
) -> None:
    """Change a token's expiration and/or description (admin)."""
    from chalicelib.auth.models import UpdateTokenRequest

    if no_expiry and (expires_in is not None or expires_at is not None):
        raise fail("give --no-expiry or --expires-in/--expires-at, not both", code=2)
    fields = _expiry_fields(expires_in, expires_at)
    if no_expiry:
        fields["tokenExpiration"] = None
    if description is not None:
        fields["description"] = description
    request = validated(UpdateTokenRequest, fields)
    api = _api(ctx)
    if api is not None:
        path = f"/tokens/{quote(token_id, safe='')}"
        record = _record(_http(lambda: api.call("PUT", path, request.model_dump(by_alias=True, exclude_unset=True))))
    else:
        store = _store()
        record = _run(
            lambda: store.update(
                token_id, expiration=request.expiration(time.time()), description=request.new_description()
            )
        )
    if as_json:
        typer.echo(json.dumps(record.to_dict()))
    else:
        typer.echo(f"Updated token {record.token_id}: expires {_when(record.token_expiration)}.")


@app.command()
def revoke(
    ctx: typer.Context, token_id: str = typer.Argument(..., help="The tokenId (from `lisa tokens list`).")
) -> None:
    """Revoke (delete) a token: over --url your own, or (admin) anyone's. Running authorizers refuse it within their
    cache TTL."""
    api = _api(ctx)
    if api is not None:
        record = _record(_http(lambda: _revoke_over_api(api, token_id)))
    else:
        store = _store()
        record = _run(lambda: store.revoke(token_id))
    typer.echo(f"Revoked token {record.token_id} of {record.username!r}.")


def _revoke_over_api(api: ApiClient, token_id: str) -> Any:
    """DELETE /me/tokens/{id}; a token not the caller's is tried as an admin's (DELETE /tokens/{id}), and for a
    non-admin the answer stays the first 404."""
    path = quote(token_id, safe="")
    try:
        return api.call("DELETE", f"/me/tokens/{path}")
    except ApiRefusal as own:
        if own.status != 404:
            raise
        try:
            return api.call("DELETE", f"/tokens/{path}")
        except ApiRefusal as refusal:
            raise (own if refusal.status == 403 else refusal) from None
