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


def table(name: str) -> Any:
    """A DynamoDB Table resource."""
    return resource("dynamodb").Table(name)


def reset() -> None:
    """Forget cached settings and clients (after the environment changed, e.g. in tests)."""
    client.cache_clear()
    resource.cache_clear()
    get_settings.cache_clear()
