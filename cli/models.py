"""`lisa models ...`: the model registry and weight staging.

Talks to the models table directly, wherever the settings point (moto server, LocalStack or real AWS through
`LISA_AWS_ENDPOINT_URL` / the usual AWS credentials). Running routers see changes within their registry cache TTL
(`LISA_REGISTRY_CACHE_TTL_SECONDS`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from cli.common import err, fail, run

if TYPE_CHECKING:
    from pydantic import BaseModel

    from chalicelib.registry.models import ModelRecord

app = typer.Typer(help="Sync, list, stage and run models (create, update, scale, schedule, start, stop, delete).",
                  no_args_is_help=True)  # fmt: skip
T = TypeVar("T")
M = TypeVar("M", bound="BaseModel")
WAIT_POLL_SECONDS = 0.5

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


Wait = typer.Option(False, "--wait", help="Wait until the workflow ends; exit 1 if the model ends Failed.")


def _validated(model: type[M], data: object, what: str) -> M:
    """`data` validated into `model` (the API's own check), or exit 2 naming each bad field."""
    from pydantic import ValidationError

    from chalicelib.config import format_validation_error

    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise fail(f"{what}: {format_validation_error(error).replace(chr(10), '; ')}", code=2) from None


def _put(name: str, fields: Callable[[ModelRecord], dict[str, object]], wait: bool) -> None:
    """PUT /models/{name}'s change: `fields(current record)` (wire names), based on its current version."""
    from chalicelib.lifecycle.service import update
    from chalicelib.registry.models import UpdateModelRequest
    from chalicelib.registry.store import ModelStore

    def change() -> object:
        current = ModelStore().get(name)
        body = _validated(UpdateModelRequest, {"version": current.version, **fields(current)}, name)
        return update(name, body)

    typer.echo(_said(_lifecycle_run(change)))
    if wait:
        _wait_settled(name)


def _wait_settled(name: str, gone_ok: bool = False) -> None:
    """Poll the record until no workflow owns it; say its state (a failure's step and reason: exit 1)."""
    from chalicelib.registry.errors import ModelNotFound
    from chalicelib.registry.models import BUSY_STATUSES
    from chalicelib.registry.store import ModelStore

    def current() -> ModelRecord | None:
        try:
            return ModelStore().get(name)
        except ModelNotFound:
            if gone_ok:
                return None
            raise

    with err.status(f"waiting for {name}") as spinner:
        while (record := _run(current)) is not None and record.status in BUSY_STATUSES:
            spinner.update(f"{name}: {record.status.value} ({record.status_step or 'queued'})")
            time.sleep(WAIT_POLL_SECONDS)
    if record is None:
        typer.echo(f"{name}: deleted")
    elif record.status.value == "Failed":
        raise fail(f"{name}: Failed at {record.status_step or '?'}: {record.status_reason or 'no reason recorded'}")
    else:
        typer.echo(f"{name}: {record.status.value}")


@app.command()
def start(name: str = typer.Argument(..., help="The model's name."), wait: bool = Wait) -> None:
    """Start a stopped model (a hosted one through the update workflow)."""
    _put(name, lambda _: {"enabled": True}, wait)


@app.command()
def stop(name: str = typer.Argument(..., help="The model's name."), wait: bool = Wait) -> None:
    """Stop a model: requests get 503 "model stopped" (a hosted one's engines are stopped)."""
    _put(name, lambda _: {"enabled": False}, wait)


def _pairs(values: list[str], option: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise fail(f"{option} must be KEY=VALUE, got {value!r}", code=2)
        pairs[key] = rest
    return pairs


@app.command("update")
def update_model(
    name: str = typer.Argument(..., help="The model's name."),
    spec: Path | None = typer.Option(
        None, "--from", help="PUT /models/{id}'s fields as JSON or YAML (no version: the current one is used)."
    ),
    image: str | None = typer.Option(None, "--image", help="The container image (a rolling update if hosted)."),
    env: list[str] = typer.Option([], "--env", help="KEY=VALUE set in the container environment (repeatable)."),
    unset_env: list[str] = typer.Option([], "--unset-env", help="KEY removed from the container environment."),
    shared_memory: int | None = typer.Option(None, "--shared-memory", help="The container's shared memory, MiB."),
    instance_type: str | None = typer.Option(None, "--instance-type", help="The GPU instance type (hosted)."),
    endpoint_url: str | None = typer.Option(None, "--endpoint-url", help="The URL (a model registered by URL)."),
    streaming: bool | None = typer.Option(None, "--streaming/--no-streaming", help="Whether it streams answers."),
    wait: bool = Wait,
) -> None:
    """Change a model's metadata or container settings; for a hosted model container and instance changes
    go through the update workflow (a rolling update), the rest is written at once."""
    import yaml

    given: dict[str, object] = {}
    if spec is not None:
        try:
            loaded = yaml.safe_load(spec.read_text())
        except (OSError, ValueError) as error:
            raise fail(f"{spec}: {error}", code=2) from None
        if not isinstance(loaded, dict):
            raise fail(f"{spec}: must be a mapping of PUT /models/{{id}} fields", code=2)
        given.update(loaded)
    settings = {"instanceType": instance_type, "endpointUrl": endpoint_url, "streaming": streaming}
    given.update({key: value for key, value in settings.items() if value is not None})
    container_change = image is not None or env or unset_env or shared_memory is not None
    if not given and not container_change:
        raise fail("nothing to change: give --from, --image, --env, --unset-env, --shared-memory, --instance-type, "
                   "--endpoint-url or --streaming", code=2)  # fmt: skip

    def fields(current: ModelRecord) -> dict[str, object]:
        if not container_change:
            return given
        stored = current.container_config.model_dump(mode="json", by_alias=True) if current.container_config else {}
        from_spec = given.get("containerConfig")
        config: dict[str, object] = dict(from_spec) if isinstance(from_spec, dict) else stored
        if not config and image is None:
            raise fail(f"{name} has no containerConfig yet: give --image", code=2)
        known = config.get("environment")
        environment = {**(known if isinstance(known, dict) else {}), **_pairs(env, "--env")}
        for key in unset_env:
            environment.pop(key, None)
        config["environment"] = environment
        if image is not None:
            config["image"] = image
        if shared_memory is not None:
            config["sharedMemorySize"] = shared_memory
        return {**given, "containerConfig": config}

    _put(name, fields, wait)


@app.command()
def scale(
    name: str = typer.Argument(..., help="The hosted model's name."),
    min_capacity: int | None = typer.Option(None, "--min", help="Fewest tasks (0: it may stop)."),
    max_capacity: int | None = typer.Option(None, "--max", help="Most tasks."),
    desired: int | None = typer.Option(None, "--desired", help="Tasks to run now (within --min..--max)."),
    wait: bool = Wait,
) -> None:
    """Rescale a hosted model (the update workflow); options left out keep their values."""
    if min_capacity is None and max_capacity is None and desired is None:
        raise fail("nothing to change: give --min, --max or --desired", code=2)

    def fields(current: ModelRecord) -> dict[str, object]:
        if current.hosting is None:
            raise fail(f"model {name!r} is registered by URL: LISA does not scale it", code=2)
        scaling = current.hosting.scaling.model_dump(by_alias=True)
        wanted = {"minCapacity": min_capacity, "maxCapacity": max_capacity, "desiredCapacity": desired}
        scaling.update({key: value for key, value in wanted.items() if value is not None})
        return {"scaling": scaling}

    _put(name, fields, wait)


def _days(text: str) -> list[str]:
    """`MON-FRI`, `SAT,SUN`, `MON,WED-FRI` (a range may wrap: `FRI-MON`) → the weekdays, in week order."""
    from chalicelib.contracts.schedules import WEEKDAYS

    names: list[str] = list(WEEKDAYS)
    days: set[int] = set()
    for part in text.upper().split(","):
        first, sep, last = part.strip().partition("-")
        if first not in names or (sep and last not in names):
            raise fail(f"--weekly: {part.strip()!r} is not a day or a range of days (MON..SUN, e.g. MON-FRI)", code=2)
        start, end = names.index(first), names.index(last if sep else first)
        days.update((start + offset) % 7 for offset in range((end - start) % 7 + 1))
    return [names[day] for day in sorted(days)]


def _window(text: str, option: str) -> dict[str, str]:
    """`08:00-20:00` → {start, stop} (the times are checked by the schedule's own model)."""
    start, sep, stop = text.partition("-")
    if not sep:
        raise fail(f"{option} must be START-STOP (HH:MM-HH:MM), got {text!r}", code=2)
    return {"start": start.strip(), "stop": stop.strip()}


def _schedule_wire(timezone: str | None, daily: str | None, weekly: list[str]) -> dict[str, object]:
    if not timezone:
        raise fail("--timezone is required with --daily or --weekly (an IANA name, e.g. Europe/Berlin)", code=2)
    if daily is not None and weekly:
        raise fail("give --daily or --weekly, not both", code=2)
    if daily is not None:
        return {"timezone": timezone, "daily": _window(daily, "--daily")}
    windows = []
    for text in weekly:
        days, sep, times = text.partition("@")
        if not sep:
            raise fail(f"--weekly must be DAYS@START-STOP (e.g. MON-FRI@08:00-20:00), got {text!r}", code=2)
        windows.append({"days": _days(days), **_window(times, "--weekly")})
    return {"timezone": timezone, "weekly": windows}


def _show_schedule(name: str, wire: object) -> None:
    """The schedule's windows and its next start and stop (as the record shows them, from the same rules)."""
    from datetime import UTC, datetime

    from chalicelib.contracts.schedules import ModelSchedule
    from chalicelib.schedules.timing import schedule_status

    if not wire:
        typer.echo(f"{name}: no schedule")
        return
    schedule = ModelSchedule.model_validate(wire)
    spans = [f"{','.join(w.days)} {w.start}-{w.stop}" for w in schedule.windows()]
    what = f"daily {schedule.daily.start}-{schedule.daily.stop}" if schedule.daily else "; ".join(spans)
    status = schedule_status(schedule, datetime.now(UTC))
    when = {key: value.isoformat(timespec="minutes") if value else "none"
            for key, value in (("start", status.next_start), ("stop", status.next_stop))}  # fmt: skip
    state = "running" if status.running else "stopped"
    typer.echo(f"{name}: {what} ({schedule.timezone}); now meant {state}; next start {when['start']}, "
               f"next stop {when['stop']}")  # fmt: skip


@app.command()
def schedule(
    name: str = typer.Argument(..., help="The hosted model's name."),
    timezone: str | None = typer.Option(None, "--timezone", "-z", help="IANA time zone of the times."),
    daily: str | None = typer.Option(None, "--daily", help="Run every day START-STOP, e.g. 08:00-20:00."),
    weekly: list[str] = typer.Option(
        [], "--weekly", help="Run DAYS@START-STOP, e.g. MON-FRI@07:30-19:00 (repeatable; a window may cross midnight)."
    ),
    clear: bool = typer.Option(False, "--clear", help="Remove the schedule (the model stays as it is)."),
) -> None:
    """Show, set or clear when a hosted model runs (EventBridge Scheduler starts and stops it); shows the next
    start and stop. Without options: show the schedule."""
    from chalicelib.contracts.schedules import ModelSchedule
    from chalicelib.registry.store import ModelStore

    if clear and (daily is not None or weekly):
        raise fail("give --clear or a schedule, not both", code=2)
    if not clear and daily is None and not weekly:
        record = _run(lambda: ModelStore().get(name))
        _show_schedule(name, record.wire().get("schedule"))
        return
    wire = None if clear else _schedule_wire(timezone, daily, weekly)
    if wire is not None:
        _validated(ModelSchedule, wire, "schedule")
    _put(name, lambda _: {"schedule": wire}, wait=False)
    _show_schedule(name, wire)


@app.command()
def delete(name: str = typer.Argument(..., help="The model's name."), wait: bool = Wait) -> None:
    """Delete a model (a hosted one is drained and its infrastructure removed by the delete workflow)."""
    from chalicelib.lifecycle.service import delete as delete_model

    result = _lifecycle_run(lambda: delete_model(name, None))
    typer.echo(_said(result) if not _is_record(result) else f"{name}: deleted")
    if wait and not _is_record(result):
        _wait_settled(name, gone_ok=True)


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
