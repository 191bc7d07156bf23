"""Where a pgvector repository's database is: its libpq connection string, with the password read from Secrets
Manager or SSM (chalicelib/aws.py), or the deployment's default database (`LISA_RAG_PG_DSN`, locally the runner's
embedded PostgreSQL, or `LISA_RAG_PG_SECRET`, in AWS the RDS instance of config.yaml `ragDatabase`)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from chalicelib.rag.errors import BackendUnavailable
from chalicelib.settings import get_settings

if TYPE_CHECKING:
    from chalicelib.rag.models import PgVectorConnection


def _secret(secret_id: str) -> tuple[str, dict[str, Any]]:
    """A secret's string and, when it is a JSON object (as RDS writes them), its fields."""
    from chalicelib import aws

    value = str(aws.client("secretsmanager").get_secret_value(SecretId=secret_id).get("SecretString") or "")
    try:
        parsed = json.loads(value)
    except ValueError:
        return value, {}
    return value, parsed if isinstance(parsed, dict) else {}


def _password(connection: PgVectorConnection) -> str | None:
    from chalicelib import aws

    if connection.password_secret_id:
        value, fields = _secret(connection.password_secret_id)
        return str(fields["password"]) if "password" in fields else value
    if connection.password_parameter:
        parameter = aws.client("ssm").get_parameter(Name=connection.password_parameter, WithDecryption=True)
        return str(parameter["Parameter"]["Value"])
    return None


def conninfo_for(connection: PgVectorConnection) -> str:
    """The libpq connection string for a repository's connection settings."""
    from psycopg.conninfo import make_conninfo

    if connection.host is None:
        settings = get_settings()
        if settings.rag_pg_dsn:
            return settings.rag_pg_dsn
        if settings.rag_pg_secret:
            return _default_database(settings.rag_pg_secret)
        raise BackendUnavailable(
            "no PostgreSQL database is configured for pgvector repositories"
            " (set LISA_RAG_PG_DSN or LISA_RAG_PG_SECRET, or give the repository a connection host)"
        )
    try:
        password = _password(connection)
    except Exception as error:
        raise BackendUnavailable(f"cannot read the database password: {error}") from None
    return make_conninfo(
        host=connection.host,
        port=connection.port,
        dbname=connection.dbname,
        user=connection.user,
        password=password,
        sslmode=connection.sslmode,
    )


def _default_database(secret_id: str) -> str:
    """The deployment's database from its Secrets Manager secret (RDS's JSON: host, port, username, password,
    dbname), over TLS."""
    from psycopg.conninfo import make_conninfo

    try:
        _, fields = _secret(secret_id)
    except Exception as error:
        raise BackendUnavailable(f"cannot read the database secret {secret_id!r}: {error}") from None
    missing = [key for key in ("host", "username", "password") if not fields.get(key)]
    if missing:
        raise BackendUnavailable(f"the database secret {secret_id!r} has no {', '.join(missing)}")
    return make_conninfo(
        host=str(fields["host"]),
        port=int(fields.get("port") or 5432),
        dbname=str(fields.get("dbname") or "postgres"),
        user=str(fields["username"]),
        password=str(fields["password"]),
        sslmode=str(fields.get("sslmode") or "require"),
    )
