"""The Lambda task handlers of the staging workflow (`stepfunctions/staging.json`), one function per Task state.

Each takes the state's JSON input and returns its JSON result. A failure raises: a `StagingError` subclass (its
class name is the ASL error name; not retried), `TransientStagingError` (retried with backoff), anything else
(a bug: caught as `States.ALL` and recorded). Every failure ends in `record_failure`.
"""

from __future__ import annotations

import importlib.util
import json
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from chalicelib import aws
from chalicelib.settings import get_settings
from chalicelib.staging.errors import (
    CorruptShard,
    MissingDependency,
    ShardTooLarge,
    SourceNotFound,
    StagingError,
    TransientStagingError,
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
from chalicelib.staging.models import HubSource, S3Source, StagingInput

logger = Logger(service="lisa-staging")
P = ParamSpec("P")
R = TypeVar("R")

PUBLISHING = ".publishing.json"
_TRANSIENT_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
    "ProvisionedThroughputExceededException",
}


def transient_aware(func: Callable[P, R]) -> Callable[P, R]:
    """Report throttling, 5xx and dropped connections as `TransientStagingError` (the ASL retries those)."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            if code in _TRANSIENT_CODES or status >= 500:
                raise TransientStagingError(f"AWS {code or status}: {error}") from None
            raise
        except (BotoConnectionError, HTTPClientError) as error:
            raise TransientStagingError(f"connection to AWS failed: {error}") from None

    return wrapper


# -- S3 helpers ---------------------------------------------------------------------------------------------
def require(task: str, *modules: str) -> None:
    """`MissingDependency` naming what is missing, instead of an ImportError halfway through `task`."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependency(
            f"{task} needs {', '.join(missing)}, which this function's package lacks: deploy it from the staging"
            " container image (lambda_images/staging/Dockerfile; the gpu_stack api stack does this)"
        )


def _s3() -> Any:
    return aws.client("s3")


def _bucket() -> str:
    return get_settings().models_bucket


def list_files(bucket: str, prefix: str) -> list[SourceFile]:
    """Every object under `prefix`, named relative to it (folders markers skipped)."""
    files: list[SourceFile] = []
    for page in _s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            name = item["Key"][len(prefix) :]
            if name and not name.endswith("/"):
                files.append(SourceFile(name, item["Key"], int(item["Size"]), str(item.get("ETag", "")).strip('"')))
    return files


def _read_json(bucket: str, key: str) -> Any | None:
    try:
        body = _s3().get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise
    try:
        return json.loads(body)
    except ValueError:
        return None


def _put_json(bucket: str, key: str, value: Any) -> None:
    body = json.dumps(value, indent=2, sort_keys=True).encode()
    _s3().put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")


def delete_keys(bucket: str, keys: list[str]) -> None:
    """Delete objects, 1000 per request."""
    for start in range(0, len(keys), 1000):
        batch = [{"Key": key} for key in keys[start : start + 1000]]
        if batch:
            _s3().delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})


def delete_prefix(bucket: str, prefix: str) -> int:
    """Delete everything under `prefix`; returns how many objects."""
    keys = [f.key for f in list_files(bucket, prefix)]
    delete_keys(bucket, keys)
    return len(keys)


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


def _hub_transport_errors() -> tuple[type[BaseException], ...]:
    """The connection/timeout errors of the HTTP client huggingface_hub uses (httpx, or its httpx2 fork), and
    OSError (disk, sockets)."""
    found: list[type[BaseException]] = []
    for module in ("httpx2", "httpx"):
        try:
            found.append(importlib.import_module(module).TransportError)
        except (ImportError, AttributeError):
            continue
    return (*found, OSError)


# -- tasks --------------------------------------------------------------------------------------------------
@transient_aware
def fetch_from_hub(event: dict[str, Any]) -> dict[str, Any]:
    """Mirror a hub repository's files to `_uploads/<org>/<name>/`, one file at a time through /tmp; returns the
    S3 source that replaces the hub source. Needs a reachable hub (connected deployments)."""
    request = StagingInput.model_validate(event["request"])
    model_id = validate_model_id(request.hf_model_id)
    source = request.source
    revision = source.revision if isinstance(source, HubSource) else "main"
    require("fetching from the Hugging Face Hub", "huggingface_hub")
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    bucket, prefix = _bucket(), upload_prefix(model_id)
    try:
        names = HfApi().list_repo_files(model_id, revision=revision)
        layout = plan_layout([SourceFile(name, name, 0) for name in names])
        wanted = [s.name for s in layout.shards] + [f.name for f in layout.files]
        for name in ("pytorch_model.bin.index.json", SAFETENSORS_INDEX):
            if name in names:
                wanted.append(name)
        with tempfile.TemporaryDirectory(prefix="lisa-hub-") as tmp:
            for name in wanted:
                local = Path(hf_hub_download(model_id, name, revision=revision, cache_dir=tmp))
                _s3().upload_file(str(local), bucket, prefix + name)
                local.unlink()
    except (OfflineModeIsEnabled, LocalEntryNotFoundError) as error:
        raise SourceNotFound(
            f"the Hugging Face hub is not reachable from here ({error}); on an airgapped system upload a local "
            "folder instead: `lisa models stage org/name --from models/`"
        ) from None
    except (RepositoryNotFoundError, GatedRepoError, RevisionNotFoundError, EntryNotFoundError) as error:
        raise SourceNotFound(f"hub repository {model_id}@{revision}: {error}") from None
    except HfHubHTTPError as error:
        status = getattr(getattr(error, "response", None), "status_code", None)
        if status is None or status >= 500 or status == 429:
            raise TransientStagingError(f"hub download failed: {error}") from None
        raise SourceNotFound(f"hub repository {model_id}@{revision}: {error}") from None
    except _hub_transport_errors() as error:  # connection refused/reset, timeouts, disk
        raise TransientStagingError(f"hub download failed: {error}") from None
    stale = [f.key for f in list_files(bucket, prefix) if f.name not in set(wanted)]
    delete_keys(bucket, stale)
    logger.info("mirrored hub repository", model_id=model_id, revision=revision, files=len(wanted))
    return S3Source(bucket=bucket, prefix=prefix, origin=f"hf://{model_id}@{revision}").model_dump(by_alias=True)


def _default_prefix(model_id: str) -> str:
    """What the CLI uploaded for the model, else the model's own prefix (staging in place)."""
    uploads = upload_prefix(model_id)
    listed = _s3().list_objects_v2(Bucket=_bucket(), Prefix=uploads, MaxKeys=1)
    return uploads if listed.get("KeyCount", 0) else model_prefix(model_id)


def _already_staged(bucket: str, dest: str, source_fingerprint: str, files: list[SourceFile]) -> dict[str, Any] | None:
    """The manifest of a complete staging of this same source, if there is one (then there is nothing to do)."""
    manifest = _read_json(bucket, dest + MANIFEST)
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
    request = StagingInput.model_validate(event["request"])
    execution = str(event["executionName"])
    model_id = validate_model_id(request.hf_model_id)
    source = request.source
    if not isinstance(source, S3Source):
        raise StagingError("the source must have been mirrored to S3 before Resolve")
    bucket, dest = _bucket(), model_prefix(model_id)
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
            indexes[f.name] = _s3().get_object(Bucket=source_bucket, Key=f.key)["Body"].read()
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
    return {
        "action": action,
        "hfModelId": model_id,
        "modelIds": request.model_ids,
        "bucket": bucket,
        "prefix": dest,
        "workPrefix": work_prefix(execution),
        "executionName": execution,
        "source": {"bucket": source_bucket, "prefix": prefix, "origin": source.origin},
        "sourceFingerprint": source_fingerprint,
        "format": layout.kind,
        "shards": [shard.to_dict() for shard in layout.shards],
        "files": [{"name": f.name, "key": f.key, "size": f.size} for f in layout.files],
        "ignored": list(layout.ignored),
    }


@transient_aware
def convert_shard(event: dict[str, Any]) -> dict[str, Any]:
    """One Map iteration: fetch one shard to /tmp, convert it to safetensors (checked bit for bit) or verify it,
    and put the result in the execution's work prefix with a sidecar listing its tensors for the index."""
    require("converting weights", "torch", "safetensors")
    from chalicelib.staging.convert import convert_to_safetensors, sha256_of, verify_safetensors

    shard, source_bucket = event["shard"], str(event["sourceBucket"])
    bucket, work, dest = str(event["bucket"]), str(event["workPrefix"]), str(event["prefix"])
    name, target = str(shard["name"]), str(shard["target"])
    with tempfile.TemporaryDirectory(prefix="lisa-shard-") as tmp:
        local = Path(tmp) / "source"
        _s3().download_file(source_bucket, str(shard["key"]), str(local))
        if local.stat().st_size != int(shard["size"]):
            raise CorruptShard(f"{name}: size changed while staging ({local.stat().st_size} != {shard['size']})")
        if shard["kind"] == "convert":
            output = Path(tmp) / "converted.safetensors"
            result = convert_to_safetensors(local, output, name)
            local.unlink()
        else:
            output, result = local, verify_safetensors(local, name)
        with output.open("rb") as f:
            digest = sha256_of(f)
        in_place = shard["kind"] == "verify" and source_bucket == bucket and shard["key"] == dest + target
        if not in_place:
            _s3().upload_file(str(output), bucket, work + target)
        size = output.stat().st_size
    _put_json(bucket, f"{work}.parts/{target}.json", {"tensors": result.tensors})
    if _read_json(bucket, failure_marker(work)) is not None:
        # The execution failed elsewhere (another shard) while this one ran, and its cleanup may have run before
        # these writes: remove them. (record_failure writes the marker before it cleans up: no window is left.)
        delete_keys(bucket, [f"{work}.parts/{target}.json", *([work + target] if not in_place else [])])
        raise StagingError(f"{name}: the execution already failed; discarded this shard")
    logger.info("shard done", shard=name, target=target, kind=shard["kind"], size=size, aliases=result.aliases)
    return {"name": target, "size": size, "sha256": digest, "tensors": len(result.tensors), "staged": not in_place}


def _object_sha256(bucket: str, key: str) -> str:
    from chalicelib.staging.convert import sha256_of

    body = _s3().get_object(Bucket=bucket, Key=key)["Body"]
    return sha256_of(body)


def _copy(source_bucket: str, source_key: str, bucket: str, key: str) -> None:
    if (source_bucket, source_key) != (bucket, key):
        _s3().copy({"Bucket": source_bucket, "Key": source_key}, bucket, key)


@transient_aware
def publish(event: dict[str, Any]) -> dict[str, Any]:
    """Move the results into `<org>/<name>/`: drop the old manifest (the prefix stops being valid), copy shards
    and non-weight files, write the index, write the manifest last, then delete what no longer belongs."""
    plan, converted = event["plan"], list(event["converted"])
    bucket, dest, work = str(plan["bucket"]), str(plan["prefix"]), str(plan["workPrefix"])
    source_bucket = str(plan["source"]["bucket"])
    source_keys = {(source_bucket, str(item["key"])) for item in [*plan["shards"], *plan["files"]]}
    written = [dest + c["name"] for c in converted if c["staged"] and (bucket, dest + c["name"]) not in source_keys]
    written += [dest + f["name"] for f in plan["files"] if (bucket, dest + f["name"]) not in source_keys]
    _put_json(bucket, work + PUBLISHING, {"written": [*written, dest + SAFETENSORS_INDEX]})
    _s3().delete_object(Bucket=bucket, Key=dest + MANIFEST)

    entries: list[dict[str, Any]] = []
    for item in converted:
        if item["staged"]:
            _copy(bucket, work + item["name"], bucket, dest + item["name"])
        entries.append({"name": item["name"], "size": item["size"], "sha256": item["sha256"]})
    for f in plan["files"]:
        _copy(source_bucket, str(f["key"]), bucket, dest + f["name"])
        entries.append({"name": f["name"], "size": f["size"], "sha256": _object_sha256(bucket, dest + f["name"])})

    tensor_bytes = 0
    if len(converted) > 1:
        weight_map: dict[str, str] = {}
        for item in converted:
            part = _read_json(bucket, f"{work}.parts/{item['name']}.json") or {}
            for tensor, nbytes in dict(part.get("tensors", {})).items():
                weight_map[tensor] = item["name"]
                tensor_bytes += int(nbytes)
        index = json.dumps({"metadata": {"total_size": tensor_bytes}, "weight_map": dict(sorted(weight_map.items()))})
        _s3().put_object(Bucket=bucket, Key=dest + SAFETENSORS_INDEX, Body=index.encode())
        entries.append({"name": SAFETENSORS_INDEX, "size": len(index), "sha256": _sha256_bytes(index.encode())})
    manifest = {
        "hfModelId": plan["hfModelId"],
        "format": "safetensors",
        "stagedAt": _now(),
        "executionName": plan["executionName"],
        "source": plan["source"],
        "sourceFingerprint": plan["sourceFingerprint"],
        "converted": plan["format"] == "convert",
        "files": sorted(entries, key=lambda e: e["name"]),
    }
    _put_json(bucket, dest + MANIFEST, manifest)
    keep = {e["name"] for e in entries} | {MANIFEST}
    stale = [f.key for f in list_files(bucket, dest) if f.name not in keep]
    delete_keys(bucket, stale)
    delete_prefix(bucket, work)
    logger.info("published", model_id=plan["hfModelId"], files=len(entries), removed=len(stale))
    return {"files": len(entries), "bytes": sum(int(e["size"]) for e in entries), "removed": len(stale)}


def _sha256_bytes(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


@transient_aware
def mark_in_service(event: dict[str, Any]) -> dict[str, Any]:
    """The weights are staged: registry records → InService."""
    plan = event["plan"]
    return {"inService": _set_status(list(plan.get("modelIds", [])), "InService")}


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
    marker = _read_json(bucket, work + PUBLISHING)
    if isinstance(marker, dict):
        yield from (str(key) for key in marker.get("written", []))


@transient_aware
def record_failure(event: dict[str, Any]) -> dict[str, Any]:
    """Every failure ends here: remove what this execution wrote that is not a valid model (its work prefix, and
    files a publish left without a manifest), mark the registry records Failed with the reason, and hand the
    Fail state its error and reason."""
    request, error = event["request"], dict(event.get("error") or {})
    name, message = _reason(error)
    bucket, work = _bucket(), work_prefix(str(event["executionName"]))
    reason = f"{name}: {message}"
    _put_json(bucket, failure_marker(work), {"error": name, "reason": reason, "failedAt": _now()})
    plan = request.get("plan") if isinstance(request, dict) else None
    if isinstance(plan, dict) and plan.get("prefix"):
        dest = str(plan["prefix"])
        if _read_json(bucket, dest + MANIFEST) is None:
            delete_keys(bucket, list(_iter_written(bucket, work)))
    removed = delete_prefix(bucket, work)
    model_ids = [str(m) for m in (request.get("modelIds") or [])] if isinstance(request, dict) else []
    marked = _set_status(model_ids, "Failed", f"staging failed: {reason}")
    logger.warning("staging failed", error=name, reason=message, removed=removed, marked=marked)
    return {"error": name, "reason": reason[:32000], "markedFailed": marked}
