"""Mirroring a local folder into the models bucket (the airgapped path of `lisa models stage --from` and the local
runner). Local-only: it walks the caller's disk, so it lives outside chalicelib (which ships in every Lambda)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chalicelib import aws
from chalicelib.settings import get_settings
from chalicelib.staging.convert import sha256_of
from chalicelib.staging.layout import MANIFEST, SAFETENSORS_INDEX, model_prefix, upload_prefix
from chalicelib.staging.models import S3Source
from chalicelib.staging.objects import delete_keys


@dataclass(frozen=True)
class MirrorResult:
    """What one mirror run did to the bucket: keys uploaded, left as they were, deleted."""

    source: S3Source
    uploaded: list[str]
    unchanged: list[str]
    deleted: list[str]


def mirror_folder(
    hf_model_id: str,
    folder: Path,
    *,
    in_place: bool = False,
    on_bytes: Callable[[int], None] | None = None,
    total: Callable[[int], None] | None = None,
) -> MirrorResult:
    """Make `_uploads/<org>/<name>/` mirror `folder`: upload new or changed files (sha256 in the object's
    metadata, so unchanged files are not sent again), delete remote files the folder no longer has. A missing
    folder mirrors as empty (the workflow then records a SourceNotFound). `on_bytes` gets upload progress.

    `in_place`: mirror into the model's own prefix instead (one copy of the weights in the bucket; suits folders
    already in safetensors). Its manifest is kept only if nothing changed."""
    s3, bucket = aws.client("s3"), get_settings().models_bucket
    prefix = model_prefix(hf_model_id) if in_place else upload_prefix(hf_model_id)
    local = (
        {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}
        if folder.is_dir()
        else {}
    )
    local = {name: p for name, p in local.items() if not any(part.startswith(".") for part in name.split("/"))}
    remote: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        remote |= {item["Key"][len(prefix) :]: int(item["Size"]) for item in page.get("Contents", [])}
    if total is not None:
        total(sum(p.stat().st_size for p in local.values()))
    uploaded, unchanged = [], []
    for name, path in local.items():
        with path.open("rb") as stream:
            digest = sha256_of(stream)
        if remote.get(name) == path.stat().st_size:
            head = s3.head_object(Bucket=bucket, Key=prefix + name)
            if head.get("Metadata", {}).get("sha256") == digest:
                unchanged.append(name)
                if on_bytes is not None:
                    on_bytes(path.stat().st_size)
                continue
        s3.upload_file(str(path), bucket, prefix + name, ExtraArgs={"Metadata": {"sha256": digest}}, Callback=on_bytes)
        uploaded.append(name)
    deleted = sorted(set(remote) - set(local))
    if in_place:
        derived = {MANIFEST, SAFETENSORS_INDEX} - set(local)
        changed = bool(uploaded or set(deleted) - derived)
        # unchanged: the manifest (and the index staging wrote) still describe the prefix, so keep them
        deleted = sorted(set(deleted) | ({MANIFEST} & set(remote))) if changed else []
    delete_keys(bucket, [prefix + name for name in deleted])
    origin = f"local folder {folder}" + ("" if folder.is_dir() else " (missing)")
    return MirrorResult(S3Source(bucket=bucket, prefix=prefix, origin=origin), uploaded, unchanged, deleted)
