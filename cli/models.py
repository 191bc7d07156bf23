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

from cli.common import err, fail, run

app = typer.Typer(help="Sync, list and stage models.", no_args_is_help=True)
T = TypeVar("T")

_STATUS_STYLE = {
    "InService": "green",
    "Creating": "yellow",
    "Starting": "yellow",
    "Stopping": "yellow",
    "Updating": "yellow",
    "Deleting": "yellow",
    "Stopped": "dim",
    "Failed": "red",
}


def _run(action: Callable[[], T]) -> T:
    """Run a registry call; bad config or registry errors exit 2, an AWS failure 1, each with a message."""
    from chalicelib.config import ConfigError
    from chalicelib.registry.errors import RegistryError
    from chalicelib.settings import get_settings

    return run(action, f"models table {get_settings().models_table!r}", {ConfigError: 2, RegistryError: 2})


def _endpoints(pairs: list[str]) -> dict[str, str]:
    endpoints: dict[str, str] = {}
    for pair in pairs:
        name, sep, url = pair.partition("=")
        if not sep or not name or not url:
            raise fail(f"--endpoint must be NAME=URL, got {pair!r}", code=2)
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


def _lifecycle_run(action: Callable[[], T]) -> T:
    """A lifecycle call: refusals (409 busy or stale, 400 bad spec, 503 not configured) exit 2 with their reason."""
    from chalicelib.errors import LisaError
    from chalicelib.settings import get_settings

    return run(action, f"models table {get_settings().models_table!r}", {LisaError: 2})


def _said(result: object) -> str:
    from chalicelib.registry.models import ModelChangeStarted, ModelRecord

    if isinstance(result, ModelChangeStarted):
        record = result.model
        return f"{record.model_name}: {record.status.value} (workflow {result.execution_arn.rsplit(':', 1)[-1]})"
    if isinstance(result, ModelRecord):
        return f"{result.model_name}: {result.status.value}"
    return str(result)


@app.command()
def create(spec: Path = typer.Argument(..., help="The model as JSON or YAML (POST /models's body).")) -> None:
    """Register a model: with an endpointUrl at once, else hosted through the create workflow."""
    import yaml

    from chalicelib.lifecycle.service import create_hosted
    from chalicelib.registry.models import CreateModelRequest
    from chalicelib.registry.store import ModelStore

    try:
        request = CreateModelRequest.model_validate(yaml.safe_load(spec.read_text()))
    except (OSError, ValueError) as error:  # pydantic's ValidationError and yaml's errors are ValueErrors
        raise fail(f"{spec}: {error}", code=2) from None
    action = (lambda: ModelStore().create(request)) if request.endpoint_url else (lambda: create_hosted(request))
    typer.echo(_said(_lifecycle_run(action)))


def _enable(name: str, enabled: bool) -> None:
    from chalicelib.lifecycle.service import update
    from chalicelib.registry.models import UpdateModelRequest
    from chalicelib.registry.store import ModelStore

    def change() -> object:
        version = ModelStore().get(name).version
        return update(name, UpdateModelRequest(version=version, enabled=enabled))

    typer.echo(_said(_lifecycle_run(change)))


@app.command()
def start(name: str = typer.Argument(..., help="The model's name.")) -> None:
    """Start a stopped model (a hosted one through the update workflow)."""
    _enable(name, True)


@app.command()
def stop(name: str = typer.Argument(..., help="The model's name.")) -> None:
    """Stop a model: requests get 503 "model stopped" (a hosted one's engines are stopped)."""
    _enable(name, False)


@app.command()
def delete(name: str = typer.Argument(..., help="The model's name.")) -> None:
    """Delete a model (a hosted one is drained and its infrastructure removed by the delete workflow)."""
    from chalicelib.lifecycle.service import delete as delete_model

    result = _lifecycle_run(lambda: delete_model(name, None))
    typer.echo(_said(result) if not _is_record(result) else f"{name}: deleted")


def _is_record(result: object) -> bool:
    from chalicelib.registry.models import ModelRecord

    return isinstance(result, ModelRecord)


@app.command()
def stage(
    model_id: str = typer.Argument(..., help="The weights' Hugging Face id, org/name (also their S3 prefix)."),
    from_dir: Path | None = typer.Option(
        None, "--from", help="A folder holding <org>/<name>/ (the airgapped path): uploaded, then staged."
    ),
    prefix: str | None = typer.Option(None, "--prefix", help="Stage from this S3 prefix of the models bucket."),
    hub: bool = typer.Option(False, "--hub", help="Download from the Hugging Face hub (connected systems)."),
    revision: str = typer.Option("main", "--revision", help="Hub revision (with --hub)."),
    model: list[str] = typer.Option(
        [], "--model", "-m", help="Registry model to mark (repeatable; default: every model with this hfModelId)."
    ),
    force: bool = typer.Option(False, "--force", help="Stage again even if already staged."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait for the workflow, with a progress bar."),
    as_json: bool = AsJson,
) -> None:
    """Stage weights into the models bucket as safetensors (the Step Functions workflow) and wait for it."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    from chalicelib.staging.errors import InvalidModelName, StagingError
    from chalicelib.staging.models import HubSource, S3Source, StagingStatus
    from chalicelib.staging.service import registry_ids_for, start_staging, wait_for
    from cli.mirror import mirror_folder

    if [from_dir is not None, prefix is not None, hub].count(True) > 1:
        raise fail("give one of --from, --prefix or --hub", code=2)
    source: S3Source | HubSource | None = None
    if hub:
        source = HubSource(kind="hub", revision=revision)
    elif prefix is not None:
        source = S3Source(prefix=prefix)
    elif from_dir is not None:
        folder = from_dir / model_id
        with Progress(TextColumn("upload"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=err) as bar:
            task = bar.add_task("upload", total=None)
            try:
                mirrored = _run(
                    lambda: mirror_folder(
                        model_id,
                        folder,
                        on_bytes=lambda n: bar.advance(task, n),
                        total=lambda n: bar.update(task, total=n),
                    )
                )
                source = mirrored.source
            except InvalidModelName:
                source = S3Source(origin=f"local folder {folder}")  # the workflow records the bad name
    ids = model or _run(lambda: registry_ids_for(model_id) if "/" in model_id else [])
    try:
        started = _run(lambda: start_staging(model_id, model_ids=ids, source=source, force=force))
    except StagingError as error:
        raise fail(str(error), code=2) from None
    if not wait:
        typer.echo(json.dumps(started.wire()) if as_json else f"started {started.execution_name}")
        return
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} shards"), console=err
    ) as bar:
        task = bar.add_task("staging", total=None)

        def show(status: StagingStatus) -> None:
            bar.update(
                task,
                description=status.current_step or "starting",
                total=status.shards_total,
                completed=status.shards_done,
            )

        final = _run(lambda: wait_for(started.execution_arn, on_progress=show))
    if as_json:
        typer.echo(json.dumps(final.wire()))
    elif final.status == "SUCCEEDED":
        files = len((final.manifest or {}).get("files", []))
        what = "already staged, nothing to do" if final.action == "skip" else f"{final.shards_done} shard(s)"
        typer.echo(f"Staged {model_id}: {what}; {files} file(s) in the manifest.")
    if final.status != "SUCCEEDED":
        err.print(f"[red]staging failed[/red] at {final.failed_step}: {final.reason}", highlight=False)
        raise typer.Exit(1)
