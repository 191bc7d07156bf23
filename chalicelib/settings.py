"""Runtime settings from the environment (the Lambda's env vars, or the local runner's)."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from chalicelib.contracts.limits import LimitsConfig


class Settings(BaseSettings):
    """Every knob a LISA process reads from its environment; names are `LISA_<FIELD>` unless aliased."""

    model_config = SettingsConfigDict(env_prefix="LISA_", extra="ignore", populate_by_name=True)

    deployment_name: str = "lisa"
    stage: str = "dev"
    region: str = Field("us-east-1", validation_alias=AliasChoices("LISA_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"))
    # One setting points every AWS client at another endpoint (moto server, LocalStack, or unset for real AWS).
    aws_endpoint_url: str | None = Field(
        None, validation_alias=AliasChoices("LISA_AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL")
    )

    tokens_table: str = "lisa-api-tokens"
    models_table: str = "lisa-models"
    sessions_table: str = "lisa-sessions"
    prompt_templates_table: str = "lisa-prompt-templates"
    attachments_table: str = "lisa-attachments"
    rag_documents_table: str = "lisa-rag-documents"
    usage_table: str = "lisa-usage"  # per-day usage per principal and model (chalicelib/usage/store.py)
    models_bucket: str = "lisa-models"
    docs_bucket: str = "lisa-rag-docs"
    ingestion_queue_url: str | None = None
    # RAG: repositories table, the S3 → SQS ingestion queue (and its DLQ), the local pgvector DSN, limits.
    rag_repositories_table: str = "lisa-rag-repositories"
    ingestion_queue: str = "lisa-rag-ingestion"
    ingestion_dlq: str = "lisa-rag-ingestion-dlq"
    rag_pg_dsn: str | None = None
    rag_pg_secret: str | None = None  # Secrets Manager id of the default database's RDS secret (host, user, password)
    rag_max_document_bytes: int = Field(50 * 1024 * 1024, gt=0)
    rag_embedding_batch_size: int = Field(32, ge=1, le=1024)
    staging_state_machine_arn: str | None = None
    # Weight staging: the largest PyTorch shard one conversion Lambda takes (10 GB memory and /tmp at most).
    staging_max_shard_bytes: int = Field(4 * 1024**3, gt=0)
    # Model schedules (chalicelib/schedules): the deployment's EventBridge Scheduler group, the role the scheduler
    # assumes to start the target, and the target (the model update workflow's state machine) that gets each firing.
    schedule_group: str = "lisa-model-schedules"
    schedule_role_arn: str | None = None
    schedule_target_arn: str | None = None
    # Model lifecycle (docs/lifecycle.md): the workflow, and where run-time models go (gpu_stack's models stack
    # sets these in AWS, runner/ecs_agent.py locally). `target` endpoints: a healthy target's own address (local).
    model_lifecycle_state_machine_arn: str | None = None
    model_cluster: str | None = None
    model_vpc_id: str | None = None
    model_load_balancer_arn: str | None = None
    model_capacity_provider: str | None = None
    model_task_role_arn: str | None = None
    model_execution_role_arn: str | None = None
    model_log_group: str | None = None
    model_weights_image: str | None = None
    model_endpoint_source: Literal["balancer", "target"] = "balancer"
    model_health_timeout_seconds: int = Field(1800, ge=1, le=86400)
    model_poll_seconds: int = Field(15, ge=0, le=300)

    # OIDC: issuer and audience of accepted JWTs; groups read from a configurable claim.
    authority: str | None = Field(None, validation_alias=AliasChoices("LISA_AUTHORITY", "AUTHORITY"))
    client_id: str | None = Field(None, validation_alias=AliasChoices("LISA_CLIENT_ID", "CLIENT_ID"))
    admin_group: str = Field("", validation_alias=AliasChoices("LISA_ADMIN_GROUP", "ADMIN_GROUP"))
    jwt_groups_property: str = Field(
        "cognito:groups", validation_alias=AliasChoices("LISA_JWT_GROUPS_PROPERTY", "JWT_GROUPS_PROPERTY")
    )
    # How long an authorizer decision / registry lookup may be served from memory (revocation delay bound).
    auth_cache_ttl_seconds: float = Field(30.0, ge=0, le=60)
    registry_cache_ttl_seconds: float = Field(10.0, ge=0, le=300)
    jwks_cache_ttl_seconds: float = Field(3600.0, ge=0)
    # Self-service API tokens (config.yaml `authConfig.apiTokens`): the lifetime a user's own token gets unless it
    # asks for less, the most it may ask for, and how many unexpired tokens one user may hold.
    token_default_lifetime_days: int = Field(90, ge=1, le=3650)
    token_max_lifetime_days: int = Field(365, ge=1, le=3650)
    token_max_per_user: int = Field(10, ge=1, le=1000)
    # Rate limits and token budgets (config.yaml `limits`, as JSON in LISA_LIMITS): admins' overrides, the counters
    # router tasks lease from.
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    limits_table: str = "lisa-limits"
    limit_counters_table: str = "lisa-limit-counters"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
