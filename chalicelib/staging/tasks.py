"""The Lambda task handlers of the staging workflow (`stepfunctions/staging.json`), one function per Task state
(FetchFromHub's is in `hub`; the S3 helpers in `objects`).

Each validates the state's JSON input and builds its JSON result with the contracts of
`chalicelib.contracts.staging`. A failure raises: a `StagingError` subclass (its
class name is the ASL error name; not retried), `TransientStagingError` (retried with backoff), anything else
(a bug: caught as `States.ALL` and recorded). Every failure ends in `record_failure`.
"""

from __future__ import annotations

import importlib.util
import json
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from chalicelib.contracts.staging import (
    ConvertedShard,
    ConvertShardInput,
    FailureInput,
    FailureRecord,
    ManifestEntry,
    MarkedInService,
    MarkInServiceInput,
    PlanFile,
    PlanShard,
    PlanSource,
    Published,
    PublishInput,
    ResolveInput,
    StagedManifest,
    StagingPlan,
)
from chalicelib.settings import get_settings
from chalicelib.staging.errors import (
    CorruptShard,
    MissingDependency,
    ShardTooLarge,
    SourceNotFound,
    StagingError,
)
from chalicelib.staging.layout import (
    MANIFEST,
    SAFETENSORS_INDEX,
    Layout,
    SourceFile,
    fingerprint,
    model_prefix,
    plan_layout,
    upload_prefix,
    validate_model_id,
    work_prefix,
)
from chalicelib.staging.models import S3Source, StagingInput
from chalicelib.staging.objects import (
    delete_keys,
    delete_prefix,
    list_files,
    models_bucket,
    put_json,
    read_json,
    s3,
    transient_aware,
)

logger = Logger(service="lisa-staging")

PUBLISHING = ".publishing.json"


def require(task: str, *modules: str) -> None:
    """`MissingDependency` naming what is missing, instead of an ImportError halfway through `task`."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependency(
            f"{task} needs {', '.join(missing)}, which this function's package lacks: deploy it from the staging"
            " container image (lambda_images/staging/Dockerfile; the gpu_stack api stack does this)"
        )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _set_status(model_ids: list[str], status: str, reason: str | None = None) -> list[str]:
    """Set the registry status of each model that exists; returns those updated."""
    from chalicelib.registry.errors import ModelNotFound
    from chalicelib.registry.models import ModelStatus
    from chalicelib.registry.store import ModelStore

    store, updated = ModelStore(), []
    for model_id in model_ids:
        try:
            store.set_status(model_id, ModelStatus(status), reason)
            updated.append(model_id)
        except ModelNotFound:
            logger.warning("registry has no such model; status not recorded", model_id=model_id, status=status)
    return updated


# -- tasks --------------------------------------------------------------------------------------------------
def _default_prefix(model_id: str) -> str:
    """What the CLI uploaded for the model, else the model's own prefix (staging in place)."""
    uploads = upload_prefix(model_id)
    listed = s3().list_objects_v2(Bucket=models_bucket(), Prefix=uploads, MaxKeys=1)
    return uploads if listed.get("KeyCount", 0) else model_prefix(model_id)


def _already_staged(bucket: str, dest: str, source_fingerprint: str, files: list[SourceFile]) -> dict[str, Any] | None:
    """The manifest of a complete staging of this same source, if there is one (then there is nothing to do)."""
    manifest = read_json(bucket, dest + MANIFEST)
    if not isinstance(manifest, dict):
        return None
    try:
        staged = {str(f["name"]): int(f["size"]) for f in manifest["files"]}
    except (KeyError, TypeError, ValueError):
        return None
    present = {f.name: f.size for f in list_files(bucket, dest) if f.name != MANIFEST}
    if any(present.get(name) != size for name, size in staged.items()):
        return None  # something was deleted or replaced since
    same_source = manifest.get("sourceFingerprint") == source_fingerprint
    source_is_result = {f.name: f.size for f in files if f.name != MANIFEST} == staged
    return manifest if same_source or source_is_result else None


@transient_aware
def resolve(event: dict[str, Any]) -> dict[str, Any]:
    """Check the name, list the source, decide what to convert, verify or copy (or that nothing needs doing),
    and mark the registry records Creating when there is work. Returns the plan the other states follow."""
    task = ResolveInput.model_validate(event)
    request, execution = StagingInput.model_validate(task.request), task.execution_name
    model_id = validate_model_id(request.hf_model_id)
    source = request.source
    if not isinstance(source, S3Source):
        raise StagingError("the source must have been mirrored to S3 before Resolve")
    bucket, dest = models_bucket(), model_prefix(model_id)
    source_bucket = source.bucket or bucket
    prefix = source.prefix if source.prefix is not None else _default_prefix(model_id)
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    where = f"s3://{source_bucket}/{prefix}" + (f" (from {source.origin})" if source.origin else "")
    try:
        files = [f for f in list_files(source_bucket, prefix) if not f.name.startswith(("_uploads/", "_staging/"))]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "NoSuchBucket":
            raise SourceNotFound(f"bucket {source_bucket!r} does not exist") from None
        raise
    files = [f for f in files if f.name != MANIFEST]
    if not files:
        raise SourceNotFound(f"no files at {where}: the folder is missing or empty")

    indexes = {}
    for f in files:
        if f.name in ("pytorch_model.bin.index.json", SAFETENSORS_INDEX):
            indexes[f.name] = s3().get_object(Bucket=source_bucket, Key=f.key)["Body"].read()
    layout: Layout = plan_layout(files, indexes)
    limit = get_settings().staging_max_shard_bytes
    too_big = [s for s in layout.shards if s.kind == "convert" and s.size > limit]
    if too_big:
        raise ShardTooLarge(
            f"{', '.join(f'{s.name} ({s.size / 2**30:.1f} GiB)' for s in too_big)} exceed the conversion Lambda's "
            f"{limit / 2**30:.1f} GiB per-shard limit; re-shard or convert them outside Lambda (docs/staging.md)"
        )
    source_fingerprint = fingerprint(files)
    manifest = None if request.force else _already_staged(bucket, dest, source_fingerprint, files)
    action = "skip" if manifest is not None else "stage"
    if action == "stage":
        _set_status(request.model_ids, "Creating", f"staging weights ({execution})")
    logger.info("resolved", model_id=model_id, source=where, action=action, shards=len(layout.shards))
    return StagingPlan(
        action=action,
        hf_model_id=model_id,
        model_ids=request.model_ids,
        bucket=bucket,
        prefix=dest,
        work_prefix=work_prefix(execution),
        execution_name=execution,
        source=PlanSource(bucket=source_bucket, prefix=prefix, origin=source.origin),
        source_fingerprint=source_fingerprint,
        format=layout.kind,
        shards=[PlanShard(name=s.name, key=s.key, size=s.size, kind=s.kind, target=s.target) for s in layout.shards],
        files=[PlanFile(name=f.name, key=f.key, size=f.size) for f in layout.files],
        ignored=list(layout.ignored),
    ).wire()


@transient_aware
def convert_shard(event: dict[str, Any]) -> dict[str, Any]:
    """One Map iteration: fetch one shard to /tmp, convert it to safetensors (checked bit for bit) or verify it,
    and put the result in the execution's work prefix with a sidecar listing its tensors for the index."""
    require("converting weights", "torch", "safetensors")
    from chalicelib.staging.convert import convert_to_safetensors, sha256_of, verify_safetensors

    task = ConvertShardInput.model_validate(event)
    shard, source_bucket = task.shard, task.source_bucket
    bucket, work, dest = task.bucket, task.work_prefix, task.prefix
    name, target = shard.name, shard.target
    with tempfile.TemporaryDirectory(prefix="lisa-shard-") as tmp:
        local = Path(tmp) / "source"
        s3().download_file(source_bucket, shard.key, str(local))
        if local.stat().st_size != shard.size:
            raise CorruptShard(f"{name}: size changed while staging ({local.stat().st_size} != {shard.size})")
        if shard.kind == "convert":
            output = Path(tmp) / "converted.safetensors"
            result = convert_to_safetensors(local, output, name)
            local.unlink()
        else:
            output, result = local, verify_safetensors(local, name)
        with output.open("rb") as f:
            digest = sha256_of(f)
        in_place = shard.kind == "verify" and source_bucket == bucket and shard.key == dest + target
        if not in_place:
            s3().upload_file(str(output), bucket, work + target)
        size = output.stat().st_size
    put_json(bucket, f"{work}.parts/{target}.json", {"tensors": result.tensors})
    if read_json(bucket, failure_marker(work)) is not None:
        # The execution failed elsewhere (another shard) while this one ran, and its cleanup may have run before
        # these writes: remove them. (record_failure writes the marker before it cleans up: no window is left.)
        delete_keys(bucket, [f"{work}.parts/{target}.json", *([work + target] if not in_place else [])])
        raise StagingError(f"{name}: the execution already failed; discarded this shard")
    logger.info("shard done", shard=name, target=target, kind=shard.kind, size=size, aliases=result.aliases)
    return ConvertedShard(
        name=target, size=size, sha256=digest, tensors=len(result.tensors), staged=not in_place
    ).wire()


def _object_sha256(bucket: str, key: str) -> str:
    from chalicelib.staging.convert import sha256_of

    body = s3().get_object(Bucket=bucket, Key=key)["Body"]
    return sha256_of(body)


def _copy(source_bucket: str, source_key: str, bucket: str, key: str) -> None:
    if (source_bucket, source_key) != (bucket, key):
        s3().copy({"Bucket": source_bucket, "Key": source_key}, bucket, key)


@transient_aware
def publish(event: dict[str, Any]) -> dict[str, Any]:
    """Move the results into `<org>/<name>/`: drop the old manifest (the prefix stops being valid), copy shards
    and non-weight files, write the index, write the manifest last, then delete what no longer belongs."""
    task = PublishInput.model_validate(event)
    plan, converted = task.plan, task.converted
    bucket, dest, work = plan.bucket, plan.prefix, plan.work_prefix
    source_bucket = plan.source.bucket
    source_keys = {(source_bucket, key) for key in [*(s.key for s in plan.shards), *(f.key for f in plan.files)]}
    written = [dest + c.name for c in converted if c.staged and (bucket, dest + c.name) not in source_keys]
    written += [dest + f.name for f in plan.files if (bucket, dest + f.name) not in source_keys]
    put_json(bucket, work + PUBLISHING, {"written": [*written, dest + SAFETENSORS_INDEX]})
    s3().delete_object(Bucket=bucket, Key=dest + MANIFEST)

    entries: list[ManifestEntry] = []
    for item in converted:
        if item.staged:
            _copy(bucket, work + item.name, bucket, dest + item.name)
        entries.append(ManifestEntry(name=item.name, size=item.size, sha256=item.sha256))
    for f in plan.files:
        _copy(source_bucket, f.key, bucket, dest + f.name)
        entries.append(ManifestEntry(name=f.name, size=f.size, sha256=_object_sha256(bucket, dest + f.name)))
    if len(converted) > 1:
        entries.append(_write_index(bucket, dest, work, converted))
    manifest = StagedManifest(
        hf_model_id=plan.hf_model_id,
        format="safetensors",
        staged_at=_now(),
        execution_name=plan.execution_name,
        source=plan.source,
        source_fingerprint=plan.source_fingerprint,
        converted=plan.format == "convert",
        files=sorted(entries, key=lambda e: e.name),
    )
    put_json(bucket, dest + MANIFEST, manifest.wire())
    keep = {e.name for e in entries} | {MANIFEST}
    stale = [f.key for f in list_files(bucket, dest) if f.name not in keep]
    delete_keys(bucket, stale)
    delete_prefix(bucket, work)
    logger.info("published", model_id=plan.hf_model_id, files=len(entries), removed=len(stale))
    return Published(files=len(entries), total_bytes=sum(e.size for e in entries), removed=len(stale)).wire()


def _write_index(bucket: str, dest: str, work: str, converted: list[ConvertedShard]) -> ManifestEntry:
    """Write the safetensors index of a sharded model (which shard holds each tensor, from the shards' sidecars)."""
    tensor_bytes = 0
    weight_map: dict[str, str] = {}
    for item in converted:
        part = read_json(bucket, f"{work}.parts/{item.name}.json") or {}
        for tensor, nbytes in dict(part.get("tensors", {})).items():
            weight_map[tensor] = item.name
            tensor_bytes += int(nbytes)
    index = json.dumps({"metadata": {"total_size": tensor_bytes}, "weight_map": dict(sorted(weight_map.items()))})
    s3().put_object(Bucket=bucket, Key=dest + SAFETENSORS_INDEX, Body=index.encode())
    return ManifestEntry(name=SAFETENSORS_INDEX, size=len(index), sha256=_sha256_bytes(index.encode()))


def _sha256_bytes(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


@transient_aware
def mark_in_service(event: dict[str, Any]) -> dict[str, Any]:
    """The weights are staged: registry records → InService."""
    plan = MarkInServiceInput.model_validate(event).plan
    return MarkedInService(in_service=_set_status(plan.model_ids, "InService")).wire()


def _reason(error: dict[str, Any]) -> tuple[str, str]:
    """(error name, message) of a caught failure; Lambda errors carry the message inside a JSON cause."""
    name = str(error.get("Error") or "States.TaskFailed")
    cause = str(error.get("Cause") or "")
    try:
        parsed = json.loads(cause)
        if isinstance(parsed, dict) and "errorMessage" in parsed:
            cause = str(parsed["errorMessage"])
    except ValueError:
        pass
    return name, cause or name


def failure_marker(work: str) -> str:
    """Where a failed execution records its failure (beside its work prefix, which is deleted)."""
    return work.rstrip("/") + ".failed.json"


def _iter_written(bucket: str, work: str) -> Iterator[str]:
    marker = read_json(bucket, work + PUBLISHING)
    if isinstance(marker, dict):
        yield from (str(key) for key in marker.get("written", []))


@transient_aware
def record_failure(event: dict[str, Any]) -> dict[str, Any]:
    """Every failure ends here: remove what this execution wrote that is not a valid model (its work prefix, and
    files a publish left without a manifest), mark the registry records Failed with the reason, and hand the
    Fail state its error and reason."""
    task = FailureInput.model_validate(event)
    request = task.request
    name, message = _reason(task.error or {})
    bucket, work = models_bucket(), work_prefix(task.execution_name)
    reason = f"{name}: {message}"
    put_json(bucket, failure_marker(work), {"error": name, "reason": reason, "failedAt": _now()})
    plan = request.get("plan") if isinstance(request, dict) else None
    if isinstance(plan, dict) and plan.get("prefix"):
        dest = str(plan["prefix"])
        if read_json(bucket, dest + MANIFEST) is None:
            delete_keys(bucket, list(_iter_written(bucket, work)))
    removed = delete_prefix(bucket, work)
    model_ids = [str(m) for m in (request.get("modelIds") or [])] if isinstance(request, dict) else []
    marked = _set_status(model_ids, "Failed", f"staging failed: {reason}")
    logger.warning("staging failed", error=name, reason=message, removed=removed, marked=marked)
    return FailureRecord(error=name, reason=reason[:32000], marked_failed=marked).wire()
