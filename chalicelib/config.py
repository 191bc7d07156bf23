"""`config.yaml`: the deployment's configuration, validated by pydantic.

A wrong value fails with its key path and the reason (e.g. `ecsModels.0.modelId: must be 'org/name'`),
before anything is deployed or started.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from chalicelib.contracts.limits import LimitsConfig
from chalicelib.vllm_engine import EngineSettingsError, VllmEngineArgs, engine_args

MODEL_ID_PATTERN = re.compile(r"^[A-Za-z0-9][\w.\-]*/[A-Za-z0-9][\w.\-]*$")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,62}$")


class ConfigError(ValueError):
    """config.yaml is missing, unreadable or invalid; the message names every bad key."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class ModelType(StrEnum):
    """What a model does: generate text, or embed it."""

    TEXTGEN = "textgen"
    EMBEDDING = "embedding"


class InferenceContainer(StrEnum):
    """The serving container a model runs in (decides its backend protocol)."""

    VLLM = "vllm"
    TGI = "tgi"  # archived upstream (maintenance mode 2025-12-11, archived March 2026): for existing deployments
    TEI = "tei"
    INSTRUCTOR = "instructor"


PROVIDERS: dict[InferenceContainer, str] = {
    InferenceContainer.VLLM: "ecs.textgen.vllm",
    InferenceContainer.TGI: "ecs.textgen.tgi",
    InferenceContainer.TEI: "ecs.embedding.tei",
    InferenceContainer.INSTRUCTOR: "ecs.embedding.instructor",
}


def model_type_of(container: InferenceContainer) -> ModelType:
    """The only model type an inference container serves (the middle part of its provider name)."""
    return ModelType(PROVIDERS[container].split(".")[1])


class ContainerConfig(_Model):
    """The inference container: its image, the environment it starts with and (vLLM) its engine arguments."""

    image: str = Field(min_length=1, description="ECR repo:tag, public registry path, local dir or tarball")
    environment: dict[str, str] = Field(default_factory=dict)
    shared_memory_size: int = Field(2048, alias="sharedMemorySize", gt=0)
    engine_args: VllmEngineArgs | None = Field(
        None, alias="engineArgs", description="vLLM only; the VLLM_* environment names work too"
    )

    @field_validator("environment", mode="before")
    @classmethod
    def _stringify(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): str(v) for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _check_token_limits(self) -> ContainerConfig:
        env = self.environment
        for key in ("MAX_CONCURRENT_REQUESTS", "MAX_INPUT_LENGTH", "MAX_TOTAL_TOKENS"):
            if key in env and not (env[key].isascii() and env[key].isdigit() and int(env[key]) > 0):
                raise ValueError(f"environment.{key} must be a positive integer, got {env[key]!r}")
        limits = ("MAX_INPUT_LENGTH", "MAX_TOTAL_TOKENS")
        if all(k in env for k in limits) and int(env[limits[0]]) >= int(env[limits[1]]):
            raise ValueError("environment.MAX_INPUT_LENGTH must be less than MAX_TOTAL_TOKENS")
        return self

    def vllm_args(self) -> VllmEngineArgs:
        """The vLLM engine arguments: `engineArgs` merged with the `VLLM_*` environment (EngineSettingsError)."""
        return engine_args(self.environment, self.engine_args)


def check_container_config(container: InferenceContainer, config: ContainerConfig | None) -> None:
    """What only the container can tell: a vLLM model's engine settings are valid; no other takes engineArgs.
    ValueError with the key path under `containerConfig`."""
    if config is None:
        return
    if container is InferenceContainer.VLLM:
        try:
            config.vllm_args()
        except EngineSettingsError as error:
            raise ValueError(str(error)) from None
    elif config.engine_args is not None:
        raise ValueError(f"engineArgs: only inferenceContainer 'vllm' takes engine arguments, not {container.value!r}")


class AutoScalingConfig(_Model):
    """An ECS service's scaling bounds and pacing (config.yaml `autoScalingConfig`)."""

    min_capacity: int = Field(1, alias="minCapacity", ge=0)
    max_capacity: int = Field(1, alias="maxCapacity", ge=1)
    cooldown: int = Field(420, ge=0)
    default_instance_warmup: int = Field(180, alias="defaultInstanceWarmup", ge=0)
    target_requests_per_instance: int = Field(30, alias="targetRequestsPerInstance", ge=1)

    @model_validator(mode="after")
    def _min_le_max(self) -> AutoScalingConfig:
        if self.min_capacity > self.max_capacity:
            raise ValueError("minCapacity must not exceed maxCapacity")
        return self


class HealthCheckConfig(_Model):
    """The load balancer's health check of a model's containers."""

    path: str = "/health"
    interval: int = Field(10, ge=5, le=300)
    timeout: int = Field(5, ge=2, le=120)
    retries: int = Field(3, ge=1, le=10)
    start_period: int = Field(300, alias="startPeriod", ge=0, le=300)


class EcsModel(_Model):
    """One self-hosted model (an ECS service in AWS, a CPU worker locally)."""

    model_name: str = Field(alias="modelName")
    model_id: str = Field(alias="modelId", description="HF id `org/name`; also the weights' S3 prefix")
    deploy: bool = True
    instance_type: str = Field("g5.xlarge", alias="instanceType")
    model_type: ModelType = Field(alias="modelType")
    inference_container: InferenceContainer = Field(alias="inferenceContainer")
    container_config: ContainerConfig = Field(alias="containerConfig")
    auto_scaling_config: AutoScalingConfig = Field(default_factory=AutoScalingConfig, alias="autoScalingConfig")
    health_check_config: HealthCheckConfig = Field(default_factory=HealthCheckConfig, alias="healthCheckConfig")
    streaming: bool | None = None
    endpoint_url: str | None = Field(None, alias="endpointUrl", description="fixed endpoint (local workers)")
    default_model_kwargs: dict[str, Any] = Field(default_factory=dict, alias="defaultModelKwargs")

    @field_validator("model_name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise ValueError("must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit")
        return value

    @field_validator("model_id")
    @classmethod
    def _model_id(cls, value: str) -> str:
        if not MODEL_ID_PATTERN.match(value):
            raise ValueError(f"must be 'org/name' (a Hugging Face model id), got {value!r}")
        return value

    @field_validator("container_config")
    @classmethod
    def _engine(cls, value: ContainerConfig, info: ValidationInfo) -> ContainerConfig:
        container = info.data.get("inference_container")
        if container is not None:
            check_container_config(container, value)
        return value

    @model_validator(mode="after")
    def _container_fits_type(self) -> EcsModel:
        if model_type_of(self.inference_container) is not self.model_type:
            raise ValueError(
                f"inferenceContainer {self.inference_container.value!r}"
                f" cannot serve modelType {self.model_type.value!r}"
            )
        return self

    @property
    def provider(self) -> str:
        """The backend protocol the router speaks to this model's container."""
        return PROVIDERS[self.inference_container]

    @property
    def is_streaming(self) -> bool:
        """Whether the model streams tokens (textgen models do unless configured otherwise)."""
        return self.streaming if self.streaming is not None else self.model_type is ModelType.TEXTGEN


class ApiTokensConfig(_Model):
    """Users' own API tokens (`POST /me/tokens`): the lifetime one gets unless it asks for less, the most it may ask
    for, and how many unexpired tokens one user may hold. Tokens an admin makes (`POST /tokens`) are not bounded."""

    default_lifetime_days: int = Field(90, alias="defaultLifetimeDays", ge=1, le=3650)
    max_lifetime_days: int = Field(365, alias="maxLifetimeDays", ge=1, le=3650)
    max_per_user: int = Field(10, alias="maxPerUser", ge=1, le=1000)

    @model_validator(mode="after")
    def _default_le_max(self) -> ApiTokensConfig:
        if self.default_lifetime_days > self.max_lifetime_days:
            raise ValueError("defaultLifetimeDays must not exceed maxLifetimeDays")
        return self

    def environment(self) -> dict[str, str]:
        """The Lambdas' environment for these settings (chalicelib.settings.Settings reads `LISA_TOKEN_*`)."""
        return {
            "LISA_TOKEN_DEFAULT_LIFETIME_DAYS": str(self.default_lifetime_days),
            "LISA_TOKEN_MAX_LIFETIME_DAYS": str(self.max_lifetime_days),
            "LISA_TOKEN_MAX_PER_USER": str(self.max_per_user),
        }


class AuthConfig(_Model):
    """Who may call the API: the OIDC identity provider and the group that makes an admin."""

    authority: str | None = None
    client_id: str | None = Field(None, alias="clientId")
    admin_group: str = Field("", alias="adminGroup")
    jwt_groups_property: str = Field("cognito:groups", alias="jwtGroupsProperty")
    # Origins the UI's sign-in calls besides the authority (the UI's Content-Security-Policy admits them): the
    # token endpoint when the issuer's discovery document puts it elsewhere (Cognito's hosted-UI domain).
    connect_origins: list[str] = Field(default_factory=list, alias="connectOrigins")
    api_tokens: ApiTokensConfig = Field(default_factory=ApiTokensConfig, alias="apiTokens")

    @field_validator("authority")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is not None:
            _require_https(value)
        return value.rstrip("/") if value else value

    @field_validator("connect_origins")
    @classmethod
    def _origins(cls, values: list[str]) -> list[str]:
        for value in values:
            _require_https(value)
            if urlsplit(value).path not in ("", "/"):
                raise ValueError(f"{value!r}: an origin (scheme://host[:port]) has no path")
        return [value.rstrip("/") for value in values]

    def environment(self) -> dict[str, str]:
        """The environment the authorizer reads (chalicelib.settings.Settings), set alike for the API Lambdas, the
        router task and the local stack: OIDC issuer and audience, admin group, groups claim, token rules."""
        env = {
            "LISA_AUTHORITY": self.authority,
            "LISA_CLIENT_ID": self.client_id,
            "LISA_ADMIN_GROUP": self.admin_group,
            "LISA_JWT_GROUPS_PROPERTY": self.jwt_groups_property,
        }
        return {key: value for key, value in env.items() if value} | self.api_tokens.environment()


def _require_https(value: str) -> None:
    if not value.startswith(("https://", "http://127.0.0.1", "http://localhost")):
        raise ValueError("must be an https:// URL (http only for loopback)")


class RestApiConfig(_Model):
    """The API's version, TLS certificate, exposure and domain name."""

    api_version: str = Field("v2", alias="apiVersion")
    ssl_cert_iam_arn: str | None = Field(None, alias="sslCertIamArn")
    internet_facing: bool = Field(True, alias="internetFacing")
    domain_name: str | None = Field(None, alias="domainName")
    router_image: str | None = Field(None, alias="routerImage")
    router_cpu: int = Field(1024, alias="routerCpu")
    router_memory: int = Field(2048, alias="routerMemory")


class VpcConfig(_Model):
    """An existing VPC to deploy into (accounts that bring their own network); no lookup, so synth stays offline."""

    vpc_id: str = Field(alias="vpcId", pattern=r"^vpc-[0-9a-f]{8,17}$")
    availability_zones: list[str] = Field(alias="availabilityZones", min_length=1)
    private_subnet_ids: list[str] = Field(alias="privateSubnetIds", min_length=1)
    public_subnet_ids: list[str] = Field(default_factory=list, alias="publicSubnetIds")
    # Needed only with `vpcEndpoints`: the endpoints admit HTTPS from the VPC's CIDR, and the S3/DynamoDB gateway
    # endpoints are routes in the private subnets' route tables.
    vpc_cidr: str | None = Field(None, alias="vpcCidr", pattern=r"^\d{1,3}(\.\d{1,3}){3}/\d{1,2}$")
    private_route_table_ids: list[str] = Field(default_factory=list, alias="privateRouteTableIds")

    @model_validator(mode="after")
    def _one_subnet_per_zone(self) -> VpcConfig:
        zones = len(self.availability_zones)
        for key, subnets in (
            ("privateSubnetIds", self.private_subnet_ids),
            ("publicSubnetIds", self.public_subnet_ids),
        ):
            if subnets and len(subnets) != zones:
                raise ValueError(f"{key} must list one subnet per availability zone ({zones}), got {len(subnets)}")
        if self.private_route_table_ids and len(self.private_route_table_ids) != len(self.private_subnet_ids):
            raise ValueError("privateRouteTableIds must list one route table per private subnet")
        return self


class RagDatabaseConfig(_Model):
    """An RDS PostgreSQL instance (with pgvector) the deployment creates for the pgvector repositories that name no
    connection host; its generated secret is `<deploymentName>-<stage>-rag-db`."""

    instance_type: str = Field("t4g.medium", alias="instanceType", pattern=r"^[a-z0-9]+\.[a-z0-9]+$")
    allocated_storage: int = Field(20, alias="allocatedStorage", ge=20, le=65536, description="GiB")
    multi_az: bool = Field(False, alias="multiAz")


class ChunkingConfig(_Model):
    """How documents are split for embedding (characters per chunk and the overlap between chunks)."""

    size: int = Field(512, ge=50, le=8000, description="characters per chunk")
    overlap: int = Field(51, ge=0)

    @model_validator(mode="after")
    def _overlap_lt_size(self) -> ChunkingConfig:
        if self.overlap >= self.size:
            raise ValueError("overlap must be smaller than size")
        return self


class RagRepository(_Model):
    """A RAG repository declared in config.yaml (synced to the registry at deploy)."""

    repository_id: str = Field(alias="repositoryId")
    type: Literal["pgvector", "opensearch"]
    connection: dict[str, Any] = Field(default_factory=dict)
    embedding_model_id: str = Field(alias="embeddingModelId", description="modelName of an embedding model")
    chunking: ChunkingConfig = Field(default_factory=ChunkingConfig)
    allowed_groups: list[str] = Field(default_factory=list, alias="allowedGroups")

    @field_validator("repository_id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise ValueError("must be 1-63 letters, digits, '.', '_' or '-'")
        return value


_ROLE_ARN = r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$"
_SECURITY_GROUP_ID = r"^sg-[0-9a-f]{8,17}$"


class RoleOverrides(_Model):
    """Existing IAM roles (by ARN) the stacks use instead of creating their own; each must already carry the
    permissions docs/deploy.md lists for it. CDK adds nothing to an imported role."""

    lambda_functions: str | None = Field(None, alias="lambdaFunctions", pattern=_ROLE_ARN)
    state_machines: str | None = Field(None, alias="stateMachines", pattern=_ROLE_ARN)
    router_task: str | None = Field(None, alias="routerTask", pattern=_ROLE_ARN)
    model_tasks: str | None = Field(None, alias="modelTasks", pattern=_ROLE_ARN)
    task_execution: str | None = Field(None, alias="taskExecution", pattern=_ROLE_ARN)
    gpu_instances: str | None = Field(None, alias="gpuInstances", pattern=_ROLE_ARN)
    flow_logs: str | None = Field(None, alias="flowLogs", pattern=_ROLE_ARN)
    bucket_deployment: str | None = Field(None, alias="bucketDeployment", pattern=_ROLE_ARN)
    bucket_notifications: str | None = Field(None, alias="bucketNotifications", pattern=_ROLE_ARN)


class SecurityGroupOverrides(_Model):
    """Existing security groups (by id) used instead of created ones; their rules are the account's (CDK adds none)."""

    lambda_functions: str | None = Field(None, alias="lambdaFunctions", pattern=_SECURITY_GROUP_ID)
    router: str | None = Field(None, pattern=_SECURITY_GROUP_ID)
    router_load_balancer: str | None = Field(None, alias="routerLoadBalancer", pattern=_SECURITY_GROUP_ID)
    model_load_balancers: str | None = Field(None, alias="modelLoadBalancers", pattern=_SECURITY_GROUP_ID)
    gpu_instances: str | None = Field(None, alias="gpuInstances", pattern=_SECURITY_GROUP_ID)
    rag_database: str | None = Field(None, alias="ragDatabase", pattern=_SECURITY_GROUP_ID)
    rag_database_clients: str | None = Field(None, alias="ragDatabaseClients", pattern=_SECURITY_GROUP_ID)

    @model_validator(mode="after")
    def _database_clients_known(self) -> SecurityGroupOverrides:
        if self.rag_database and not self.rag_database_clients:
            raise ValueError(
                "securityGroups.ragDatabase needs securityGroups.ragDatabaseClients: the account's database group"
                " must admit a clients group it knows by id"
            )
        return self


_KMS_KEY_ARN = r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$"


class KmsKeys(_Model):
    """Customer-managed KMS keys (by ARN) used instead of the per-stack keys the stacks create (docs/deploy.md)."""

    logs: str | None = Field(
        None,
        pattern=_KMS_KEY_ARN,
        description="every CloudWatch log group; its key policy must admit logs.<region>.amazonaws.com",
    )
    buckets: str | None = Field(None, pattern=_KMS_KEY_ARN, description="the models and RAG documents buckets")
    tables: str | None = Field(None, pattern=_KMS_KEY_ARN, description="every DynamoDB table")
    queues: str | None = Field(
        None,
        pattern=_KMS_KEY_ARN,
        description="the ingestion queue and its DLQ; its key policy must admit s3.amazonaws.com",
    )
    database: str | None = Field(None, pattern=_KMS_KEY_ARN, description="the RAG database's storage and secret")


class ModelCapacityConfig(_Model):
    """The GPU capacity the models created at run time (POST /models) share: one Auto Scaling group of one instance
    type that ECS scales from zero as their services place tasks (gpu_stack's models stack)."""

    instance_type: str = Field("g5.xlarge", alias="instanceType", pattern=r"^[a-z0-9]+\.[a-z0-9]+$")
    max_capacity: int = Field(2, alias="maxCapacity", ge=0, le=100, description="instances at most; 0: none")


class LisaConfig(_Model):
    """The whole of config.yaml."""

    deployment_name: str = Field(alias="deploymentName")
    region: str = "us-east-1"
    stage: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,15}$")] = "dev"
    aws_account_id: str | None = Field(None, alias="awsAccountId", pattern=r"^\d{12}$")
    auth_config: AuthConfig = Field(default_factory=AuthConfig, alias="authConfig")
    ecs_models: list[EcsModel] = Field(default_factory=list, alias="ecsModels")
    s3_bucket_models: str = Field(alias="s3BucketModels", pattern=r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
    rest_api_config: RestApiConfig = Field(default_factory=RestApiConfig, alias="restApiConfig")
    rag_repositories: list[RagRepository] = Field(default_factory=list, alias="ragRepositories")
    vpc_config: VpcConfig | None = Field(None, alias="vpcConfig", description="import this VPC instead of creating one")
    lambda_layers: dict[str, str] = Field(
        default_factory=dict, alias="lambdaLayers", description="layer name -> pre-built layer zip (layers/<name>/)"
    )
    web_assets: str | None = Field(
        None,
        alias="webAssets",
        min_length=1,
        description="the built chat UI folder, served at the API's root (default: webui/dist)",
    )
    rag_database: RagDatabaseConfig | None = Field(None, alias="ragDatabase")
    vpc_endpoints: bool = Field(
        False,
        alias="vpcEndpoints",
        description="VPC endpoints for every AWS API LISA calls (subnets without an internet route)",
    )
    permissions_boundary: str | None = Field(
        None,
        alias="permissionsBoundary",
        pattern=r"^arn:aws[a-z-]*:iam::([0-9]{12}|aws):policy/[A-Za-z0-9+=,.@_/-]+$",
        max_length=2048,
        description="ARN of the managed policy set as permissions boundary on every IAM role the stacks create",
    )
    convert_inline_policies_to_managed: bool = Field(
        False,
        alias="convertInlinePoliciesToManaged",
        description="every IAM policy the stacks create is a customer-managed policy, none inline",
    )
    ca_bundle: str | None = Field(
        None,
        alias="caBundle",
        pattern=r"\.(pem|crt)$",
        description="a PEM file (relative to config.yaml) of the CAs private endpoints' certificates chain to",
    )
    model_capacity: ModelCapacityConfig = Field(default_factory=ModelCapacityConfig, alias="modelCapacity")
    roles: RoleOverrides = Field(default_factory=RoleOverrides)
    security_groups: SecurityGroupOverrides = Field(default_factory=SecurityGroupOverrides, alias="securityGroups")
    kms_keys: KmsKeys = Field(default_factory=KmsKeys, alias="kmsKeys")
    web_acl_arn: str | None = Field(
        None,
        alias="webAclArn",
        pattern=r"^arn:aws[a-z-]*:wafv2:[a-z0-9-]+:[0-9]{12}:regional/webacl/[A-Za-z0-9_-]+/[a-f0-9-]+$",
        description="a regional WAF web ACL associated with the API stage and the model load balancers",
    )
    limits: LimitsConfig = Field(
        default_factory=LimitsConfig,
        description="default rate limits and token budgets per token, user and group (admins override them)",
    )
    staging_image: str | None = Field(
        None,
        alias="stagingImage",
        min_length=1,
        description="image of the conversion/Hub Lambdas: ECR repo:tag, local dir or tarball (default: built)",
    )

    @field_validator("deployment_name")
    @classmethod
    def _deployment(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise ValueError("must be 1-63 letters, digits, '.', '_' or '-'")
        return value

    @model_validator(mode="after")
    def _cross_refs(self) -> LisaConfig:
        names = [m.model_name for m in self.ecs_models]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"ecsModels: duplicate modelName {', '.join(duplicates)}")
        vpc = self.vpc_config
        if self.vpc_endpoints and vpc is not None:
            for key, value in (("vpcCidr", vpc.vpc_cidr), ("privateRouteTableIds", vpc.private_route_table_ids)):
                if not value:
                    raise ValueError(f"vpcConfig.{key}: required with vpcEndpoints on an imported VPC")
        embedders = {m.model_name for m in self.ecs_models if m.model_type is ModelType.EMBEDDING}
        for i, repo in enumerate(self.rag_repositories):
            if repo.embedding_model_id not in embedders:
                raise ValueError(
                    f"ragRepositories.{i}.embeddingModelId: {repo.embedding_model_id!r} is not an embedding model"
                    f" in ecsModels (have: {', '.join(sorted(embedders)) or 'none'})"
                )
        return self


def format_validation_error(error: ValidationError) -> str:
    """One line per problem: `key.path: reason`."""
    lines = []
    for problem in error.errors():
        path = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        lines.append(f"{path}: {problem['msg']}")
    return "\n".join(lines)


def parse_config(data: Any, source: str = "config") -> LisaConfig:
    """Validate already-loaded config data."""
    try:
        return LisaConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(f"{source} is invalid:\n{format_validation_error(error)}") from None


def load_config(path: str | Path) -> LisaConfig:
    """Read and validate a config.yaml file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping of keys to values")
    return parse_config(data, str(path))
