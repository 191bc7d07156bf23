"""Names of a deployment's AWS resources, derived once from config.yaml.

The Lambdas find their resources through `Settings` (`LISA_<FIELD>` environment variables); the stacks create the
resources under these names, and the IAM policies are scoped to them. One function, so the three never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chalicelib.config import LisaConfig
from chalicelib.settings import Settings
from chalicelib.tables import TABLES

_DEFAULTS = Settings.model_fields
# The stacks of a deployment (`<deploymentName>-<stage>-<suffix>`), in the order they deploy.
STACKS = (
    ("network", "VPC (created, or imported from vpcConfig)"),
    ("data", "DynamoDB tables, models + RAG documents buckets, ingestion queue + DLQ, RAG database (ragDatabase)"),
    (
        "models",
        "ECS cluster with GPU capacity, one service + internal ALB per deployed ecsModels entry; the shared"
        " capacity, balancer and roles of run-time models",
    ),
    ("router", "data-plane router on Fargate, internal NLB, API Gateway VPC link"),
    ("api", "Chalice app (REST API, authorizer, Lambdas), Step Functions, data-plane routes"),
)


MAX_BALANCER_NAME = 32
# The roles of run-time models: the tasks' own, ECS's execution role, EventBridge Scheduler's (config.yaml `roles`
# key -> the suffix of the role LISA creates when the account gives none).
MODEL_TASK_ROLE, MODEL_EXECUTION_ROLE, MODEL_SCHEDULER_ROLE = "model_tasks", "task_execution", "model_scheduler"
ROLE_SUFFIXES = {
    MODEL_TASK_ROLE: "model-task",
    MODEL_EXECUTION_ROLE: "model-execution",
    MODEL_SCHEDULER_ROLE: "model-scheduler",
}


def _suffix(setting: str) -> str:
    """`lisa-api-tokens` (the Settings default) → `api-tokens`."""
    default = str(_DEFAULTS[setting].default)
    return default.removeprefix("lisa-")


@dataclass(frozen=True)
class ResourceNames:
    """Every name a stage of a deployment uses: `<deploymentName>-<stage>-<what>`."""

    deployment: str
    stage: str
    tables: dict[str, str]  # Settings field (e.g. "tokens_table") -> table name
    models_bucket: str
    docs_bucket: str
    ingestion_queue: str
    ingestion_dlq: str
    state_machines: dict[str, str]  # stepfunctions/<stem>.json -> state machine name
    rag_database_secret: str | None = None  # the created RDS database's secret (config.yaml ragDatabase)
    # Run-time models: the account's own roles (config.yaml `roles`, ARNs) where it gives them, by ROLE_* key.
    role_arns: dict[str, str] = field(default_factory=dict)
    # The cluster the run-time model services run in: "*" where it is not known (the static .chalice policies).
    model_cluster: str = "*"

    @property
    def prefix(self) -> str:
        """`<deployment>-<stage>`: the start of every resource name, so two deployments never collide."""
        return f"{self.deployment}-{self.stage}"

    @property
    def model_balancer(self) -> str:
        """The shared internal ALB of run-time models (ALB names: 32 characters at most)."""
        name = f"{self.prefix}-models"
        if len(name) > MAX_BALANCER_NAME:
            raise ValueError(
                f"deploymentName + stage too long: the run-time model balancer {name!r} has more than"
                f" {MAX_BALANCER_NAME} characters"
            )
        return name

    def role_name(self, key: str) -> str:
        """The name of a role LISA creates for run-time models (`<prefix>-model-task`, ...); IAM scopes to it."""
        return f"{self.prefix}-{ROLE_SUFFIXES[key]}"

    def state_machine_setting(self, stem: str) -> str:
        """The Settings field holding a state machine's ARN (`staging` → `staging_state_machine_arn`)."""
        return f"{stem}_state_machine_arn"

    def environment(self, state_machine_arns: dict[str, str]) -> dict[str, str]:
        """The Lambdas' environment (`LISA_*`), given each state machine's ARN."""
        env = {"LISA_DEPLOYMENT_NAME": self.deployment, "LISA_STAGE": self.stage}
        env.update({f"LISA_{setting.upper()}": name for setting, name in self.tables.items()})
        env["LISA_MODELS_BUCKET"] = self.models_bucket
        env["LISA_DOCS_BUCKET"] = self.docs_bucket
        env["LISA_INGESTION_QUEUE"] = self.ingestion_queue
        env["LISA_INGESTION_DLQ"] = self.ingestion_dlq
        if self.rag_database_secret:
            env["LISA_RAG_PG_SECRET"] = self.rag_database_secret
        for stem, arn in sorted(state_machine_arns.items()):
            env[f"LISA_{self.state_machine_setting(stem).upper()}"] = arn
        return env


def resource_names(config: LisaConfig, state_machines: tuple[str, ...] = ()) -> ResourceNames:
    """The names for `config`'s deployment and stage; `state_machines` are the ASL file stems."""
    prefix = f"{config.deployment_name}-{config.stage}"
    return ResourceNames(
        deployment=config.deployment_name,
        stage=config.stage,
        tables={spec.setting: f"{prefix}-{_suffix(spec.setting)}" for spec in TABLES},
        models_bucket=config.s3_bucket_models,
        docs_bucket=f"{prefix}-{_suffix('docs_bucket')}",
        ingestion_queue=f"{prefix}-{_suffix('ingestion_queue')}",
        ingestion_dlq=f"{prefix}-{_suffix('ingestion_dlq')}",
        state_machines={stem: f"{prefix}-{stem}" for stem in state_machines},
        rag_database_secret=f"{prefix}-rag-db" if config.rag_database else None,
        role_arns={
            key: arn
            for key, arn in (
                (MODEL_TASK_ROLE, config.roles.model_tasks),
                (MODEL_EXECUTION_ROLE, config.roles.task_execution),
            )
            if arn
        },
    )
