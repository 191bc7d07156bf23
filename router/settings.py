"""The router's own knobs, from `LISA_ROUTER_*` environment variables (AWS/auth/registry settings are the shared
`chalicelib.settings`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class RouterSettings(BaseSettings):
    """Timeouts, pool sizes and limits of the data-plane router."""

    model_config = SettingsConfigDict(env_prefix="LISA_ROUTER_", extra="ignore")

    host: str = "0.0.0.0"  # noqa: S104 (a service in a container listens on every interface)
    port: int = Field(8080, ge=1, le=65535)
    # Backend timeouts (seconds): connecting; a whole non-streaming call; the longest silence within a stream
    # (also the wait for a stream's response headers).
    connect_timeout: float = Field(5.0, gt=0)
    request_timeout: float = Field(600.0, gt=0)
    stream_idle_timeout: float = Field(120.0, gt=0)
    # Backend connection pool: total connections and how long an idle one is kept (below the backends' own).
    max_connections: int = Field(1024, ge=1)
    keepalive_seconds: float = Field(30.0, ge=0)
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    # One INFO line per request (model, status, tokens, duration); off leaves warnings and errors only.
    access_log: bool = True
    # RAG in chat: a chat request's `lisa_rag` field retrieves context from a repository (router/rag.py).
    rag_in_chat: bool = True
    # Usage metering (router/metering.py): per-day usage in DynamoDB and EMF metrics, flushed this often (a crash
    # loses at most this many seconds of usage).
    metering: bool = True
    metering_flush_seconds: float = Field(5.0, gt=0, le=60)
