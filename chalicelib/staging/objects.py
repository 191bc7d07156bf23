"""The staging workflow's S3 objects (list, read/write JSON, delete in batches), and the AWS failures that are
worth a retry (`transient_aware`: the ASL retries `TransientStagingError` with backoff)."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from chalicelib import aws
from chalicelib.settings import get_settings
from chalicelib.staging.errors import TransientStagingError
from chalicelib.staging.layout import SourceFile

P = ParamSpec("P")
R = TypeVar("R")

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


def s3() -> Any:
    """The S3 client (one per process, chalicelib/aws.py)."""
    return aws.client("s3")


def models_bucket() -> str:
    """The deployment's models bucket, where staged weights are published."""
    return get_settings().models_bucket


def list_files(bucket: str, prefix: str) -> list[SourceFile]:
    """Every object under `prefix`, named relative to it (folders markers skipped)."""
    files: list[SourceFile] = []
    for page in s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            name = item["Key"][len(prefix) :]
            if name and not name.endswith("/"):
                files.append(SourceFile(name, item["Key"], int(item["Size"]), str(item.get("ETag", "")).strip('"')))
    return files


def read_json(bucket: str, key: str) -> Any | None:
    """A JSON object's value, or None if it is missing or not JSON (a marker or manifest not written yet)."""
    try:
        body = s3().get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise
    try:
        return json.loads(body)
    except ValueError:
        return None


def put_json(bucket: str, key: str, value: Any) -> None:
    """Write `value` as indented, key-sorted JSON (people read these manifests)."""
    body = json.dumps(value, indent=2, sort_keys=True).encode()
    s3().put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")


def delete_keys(bucket: str, keys: list[str]) -> None:
    """Delete objects, 1000 per request."""
    for start in range(0, len(keys), 1000):
        batch = [{"Key": key} for key in keys[start : start + 1000]]
        if batch:
            s3().delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})


def delete_prefix(bucket: str, prefix: str) -> int:
    """Delete everything under `prefix`; returns how many objects."""
    keys = [f.key for f in list_files(bucket, prefix)]
    delete_keys(bucket, keys)
    return len(keys)
