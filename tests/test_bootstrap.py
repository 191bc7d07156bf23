"""The local bootstrap creates every table and bucket on the configured endpoint, idempotently."""

from __future__ import annotations

from chalicelib import aws
from chalicelib.settings import get_settings
from chalicelib.tables import TABLES
from runner.bootstrap import bootstrap, create_tables


def test_bootstrap_creates_tables_and_buckets_idempotently(aws_env: str) -> None:
    settings = get_settings()
    assert settings.aws_endpoint_url == aws_env
    names = set(aws.client("dynamodb").list_tables()["TableNames"])
    assert {spec.name(settings) for spec in TABLES} <= names
    buckets = {b["Name"] for b in aws.client("s3").list_buckets()["Buckets"]}
    assert {settings.models_bucket, settings.docs_bucket} <= buckets
    assert create_tables() == []
    bootstrap()
