"""`lisa tokens ...`: API token administration for an account owner.

Talks to the tokens table directly, wherever the settings point (moto server, LocalStack or real AWS through
`LISA_AWS_ENDPOINT_URL` / the usual AWS credentials). A running authorizer notices a revocation or an expiry change
within its cache TTL (`LISA_AUTH_CACHE_TTL_SECONDS`).
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cli.common import err, fail, run

app = typer.Typer(help="Create, list, update and revoke API tokens.", no_args_is_help=True)
T = TypeVar("T")


def _run(action: Callable[[], T]) -> T:
    """Run a store call; an unknown token or AWS failure becomes a message and exit code 1."""
    from chalicelib.auth.tokens import TokenNotFoundError
    from chalicelib.settings import get_settings

    return run(action, f"tokens table {get_settings().tokens_table!r}", {TokenNotFoundError: 1})


def _validate(model: type[Any], data: dict[str, Any]) -> Any:
    from pydantic import ValidationError

    from chalicelib.config import format_validation_error

    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise fail(format_validation_error(error).replace("\n", "; "), code=2) from None


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
    username: str = typer.Option(..., "--username", "-u", help="The user the token acts as."),
    group: list[str] = typer.Option([], "--group", "-g", help="A group of the user (repeatable)."),
    admin: bool = typer.Option(False, "--admin", help="The token may use the admin API."),
    expires_in: int | None = ExpiresIn,
    expires_at: int | None = ExpiresAt,
    description: str = typer.Option("", "--description", "-d", help="What the token is for."),
    as_json: bool = AsJson,
) -> None:
    """Create a token and print it (the only time it can be seen). Without --expires-* it never expires."""
    from chalicelib.auth.models import CreateTokenRequest

    request = _validate(
        CreateTokenRequest,
        {
            "username": username,
            "groups": group,
            "isAdmin": admin,
            "description": description,
            **_expiry_fields(expires_in, expires_at),
        },
    )
    store = _store()
    token, record = _run(
        lambda: store.create(
            username=request.username,
            groups=request.groups,
            is_admin=request.is_admin,
            expiration=request.expiration(time.time()),
            description=request.description,
            created_by=_operator(),
        )
    )
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


@app.command("list")
def list_tokens(
    username: str | None = typer.Option(None, "--username", "-u", help="Only this user's tokens."),
    as_json: bool = AsJson,
) -> None:
    """List tokens (ids and metadata; never the secrets)."""
    store = _store()
    records = _run(lambda: store.list(username=username))
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in records]))
        return
    now = time.time()
    table = Table(title=f"{len(records)} API token(s)")
    for column in ("tokenId", "username", "groups", "admin", "expires", "description", "created", "by"):
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
        )
    Console(width=200).print(table)


@app.command()
def update(
    token_id: str = typer.Argument(..., help="The tokenId (from `lisa tokens list`)."),
    expires_in: int | None = ExpiresIn,
    expires_at: int | None = ExpiresAt,
    no_expiry: bool = typer.Option(False, "--no-expiry", help="The token never expires."),
    description: str | None = typer.Option(None, "--description", "-d", help="A new description."),
    as_json: bool = AsJson,
) -> None:
    """Change a token's expiration and/or description."""
    from chalicelib.auth.models import UpdateTokenRequest

    if no_expiry and (expires_in is not None or expires_at is not None):
        raise fail("give --no-expiry or --expires-in/--expires-at, not both", code=2)
    fields = _expiry_fields(expires_in, expires_at)
    if no_expiry:
        fields["tokenExpiration"] = None
    if description is not None:
        fields["description"] = description
    request = _validate(UpdateTokenRequest, fields)
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
def revoke(token_id: str = typer.Argument(..., help="The tokenId (from `lisa tokens list`).")) -> None:
    """Revoke (delete) a token. Running authorizers refuse it within their cache TTL."""
    store = _store()
    record = _run(lambda: store.revoke(token_id))
    typer.echo(f"Revoked token {record.token_id} of {record.username!r}.")
