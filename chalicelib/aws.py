"""The only place boto3 clients and resources are made.

Every client honours `Settings.aws_endpoint_url`, so pointing LISA at moto server, LocalStack or real AWS
is one environment variable and no code change.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

from chalicelib.settings import get_settings

_CONFIG = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=60)


def _kwargs() -> dict[str, Any]:
    settings = get_settings()
    kwargs: dict[str, Any] = {"region_name": settings.region, "config": _CONFIG}
    if settings.aws_endpoint_url:
        kwargs["endpoint_url"] = settings.aws_endpoint_url
    return kwargs


@cache
def client(service: str) -> Any:
    """A cached low-level client for `service` (e.g. "dynamodb", "s3", "stepfunctions")."""
    return boto3.session.Session().client(service, **_kwargs())  # type: ignore[call-overload]


@cache
def resource(service: str) -> Any:
    """A cached resource for `service` (e.g. "dynamodb")."""
    return boto3.session.Session().resource(service, **_kwargs())  # type: ignore[call-overload]


def presigned_put(
    bucket: str, key: str, content_type: str, expires_in: int, metadata: dict[str, str] | None = None
) -> tuple[str, dict[str, str]]:
    """A presigned S3 PUT of `s3://bucket/key` (a browser uploads straight to S3: Lambda payloads stop at 6 MB) and
    the headers the PUT must send: its Content-Type and `x-amz-meta-*` metadata are part of the signature."""
    metadata = metadata or {}
    url: str = client("s3").generate_presigned_url(
        "put_object",
        Params={"Bucket": bucket, "Key": key, "ContentType": content_type, "Metadata": metadata},
        ExpiresIn=expires_in,
        HttpMethod="PUT",
    )
    return url, {"Content-Type": content_type, **{f"x-amz-meta-{k}": v for k, v in metadata.items()}}


def presigned_put_origin(bucket: str, region: str | None = None) -> str:
    """Where presigned S3 PUTs into `bucket` go, `scheme://host[:port]`: the origin a browser uploading documents
    must be allowed to reach (the UI's Content-Security-Policy). Made as the API's own S3 client makes the URLs
    (this process's settings), or for `region`'s public endpoint (a deployment's, at synth time). Offline: the URL
    is only built, unsigned."""
    from urllib.parse import urlsplit

    from botocore import UNSIGNED

    unsigned = Config(signature_version=UNSIGNED)
    kwargs: dict[str, Any] = _kwargs()
    if region is not None:  # AWS's own endpoint, whatever endpoint this process is configured with
        kwargs = {"region_name": region}
        unsigned = unsigned.merge(Config(ignore_configured_endpoint_urls=True))  # type: ignore[call-arg]
    kwargs["config"] = _CONFIG.merge(unsigned)
    s3 = boto3.session.Session().client("s3", **kwargs)  # type: ignore[call-overload]
    url = urlsplit(s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "k"}, HttpMethod="PUT"))
    return f"{url.scheme}://{url.netloc}"


def table(name: str) -> Any:
    """A DynamoDB Table resource."""
    return resource("dynamodb").Table(name)


def reset() -> None:
    """Forget cached settings and clients (after the environment changed, e.g. in tests)."""
    client.cache_clear()
    resource.cache_clear()
    get_settings.cache_clear()
