"""`lisa models ...`: the model registry and weight staging.

Talks to the models table directly, wherever the settings point (moto server, LocalStack or real AWS through
`LISA_AWS_ENDPOINT_URL` / the usual AWS credentials). Running routers see changes within their registry cache TTL
(`LISA_REGISTRY_CACHE_TTL_SECONDS`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Sync, list and stage models.", no_args_is_help=True)
err = Console(stderr=True)
T = TypeVar("T")

_STATUS_STYLE = {"InService": "green", "Creating": "yellow", "Stopped": "dim", "Failed": "red"}


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


def _run(action: Callable[[], T]) -> T:
    """Run a registry call; turn known failures (bad config, AWS unreachable) into a message and an exit code."""
    from botocore.exceptions import BotoCoreError, ClientError

    from chalicelib.config import ConfigError
    from chalicelib.registry.errors import RegistryError
    from chalicelib.settings import get_settings

    try:
        return action()
    except (ConfigError, RegistryError) as error:
        raise _fail(str(error), code=2) from None
    except (BotoCoreError, ClientError) as error:
        settings = get_settings()
        where = settings.aws_endpoint_url or f"AWS {settings.region}"
        raise _fail(f"models table {settings.models_table!r} at {where}: {error}") from None


def _endpoints(pairs: list[str]) -> dict[str, str]:
    endpoints: dict[str, str] = {}
    for pair in pairs:
        name, sep, url = pair.partition("=")
        if not sep or not name or not url:
            raise _fail(f"--endpoint must be NAME=URL, got {pair!r}", code=2)
        endpoints[name] = url
    return endpoints


AsJson = typer.Option(False, "--json", help="Print JSON instead of text.")


@app.command()
def sync(
    config: Path = typer.Option(Path("config.yaml"), "--config", "-c", help="The config.yaml to sync from."),
    endpoint: list[str] = typer.Option(
        [], "--endpoint", "-e", help="NAME=URL: where a model is served (repeatable; overrides config)."
    ),
    prune: bool = typer.Option(False, "--prune", help="Delete synced models that config no longer deploys."),
    as_json: bool = AsJson,
) -> None:
    """Create or update the registry from config.yaml's ecsModels (deploy: true); idempotent."""
    from chalicelib.config import load_config
    from chalicelib.registry.sync import sync_models

    endpoints = _endpoints(endpoint)
    result = _run(lambda: sync_models(load_config(config), endpoints, prune=prune))
    if as_json:
        typer.echo(json.dumps(result.to_dict()))
        return
    for label, names in result.to_dict().items():
        if names:
            typer.echo(f"{label}: {', '.join(names)}")
    if result.orphaned:
        err.print(
            "orphaned models were synced from config before but config no longer deploys them; `--prune` deletes them.",
            highlight=False,
        )
    counts = ", ".join(f"{len(names)} {label}" for label, names in result.to_dict().items())
    typer.echo(f"Synced {config}: {counts}.")


@app.command("list")
def list_models(as_json: bool = AsJson) -> None:
    """List registered models with their provider, status and endpoint."""
    from chalicelib.registry.store import ModelStore

    records = _run(ModelStore().list)
    if as_json:
        typer.echo(json.dumps([r.wire() for r in records]))
        return
    table = Table(title=f"{len(records)} model(s)")
    for column in ("modelName", "provider", "hfModelId", "status", "endpointUrl", "streaming", "source", "version"):
        table.add_column(column, overflow="fold")
    for r in records:
        style = _STATUS_STYLE.get(r.status.value, "")
        status = f"[{style}]{r.status.value}[/{style}]" + (f" ({r.status_reason})" if r.status_reason else "")
        table.add_row(
            r.model_name,
            r.provider,
            r.hf_model_id,
            status,
            r.endpoint_url or "",
            "yes" if r.streaming else "",
            r.source,
            str(r.version),
        )
    Console(width=200).print(table)
