"""Least-privilege IAM policies for the Chalice functions and the ECS tasks: each gets only the tables, buckets,
queue, state machines and secrets it uses, by name, and the data stores' KMS keys for exactly those stores, through
the store's service only. One renderer for both `.chalice/policy-<stage>-<function>.json` (plain `chalice
package/deploy`, written by `python -m gpu_stack.policies`) and the CDK app.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpu_stack.functions import API_HANDLER, AppFunctions, app_functions
from gpu_stack.names import MODEL_EXECUTION_ROLE, MODEL_SCHEDULER_ROLE, MODEL_TASK_ROLE, ResourceNames
from gpu_stack.scheduler import manage_statements, schedule_group_name

TABLE_READ = ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:Scan"]
TABLE_COUNT = ["dynamodb:UpdateItem", "dynamodb:GetItem"]
TABLE_WRITE = ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"]
OBJECT_READ = ["s3:GetObject"]
OBJECT_WRITE = ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
UNSCOPED_DESCRIBE = (
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetHealth",
    "elasticloadbalancing:DescribeListeners",
    "elasticloadbalancing:DescribeLoadBalancers",
    "ecs:RegisterTaskDefinition",
    "ecs:DeregisterTaskDefinition",
    "ecs:DescribeTaskDefinition",
    "scheduler:ListSchedules",
)
"""Actions IAM cannot scope to a resource (IAM's service authorization reference: no resource type): the only `"*"`
resources LISA's policies hold. ELB's Describe*, ECS's task-definition calls (the family `<prefix>-model-*` is what
the lifecycle code names), Scheduler's listing."""
QUEUE_CONSUME = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"]
# A store's KMS key, used by the store's service on the caller's behalf. S3 decrypts for reads and for multipart
# writes; DynamoDB reads the key's description when it refreshes a table key.
KEY_DECRYPT = ["kms:Decrypt"]
KEY_ENCRYPT = ["kms:Decrypt", "kms:GenerateDataKey"]
TABLE_KEY_READ = ["kms:Decrypt", "kms:DescribeKey"]
TABLE_KEY_WRITE = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"]


@dataclass(frozen=True)
class Access:
    """What one function touches. Tables are Settings fields (`tokens_table`); buckets are `models`/`docs`."""

    tables_read: tuple[str, ...] = ()
    tables_write: tuple[str, ...] = ()
    # Window counters: conditional UpdateItem and the GetItem that reads one back, nothing else (router/limits.py).
    tables_count: tuple[str, ...] = ()
    buckets_read: tuple[str, ...] = ()
    buckets_write: tuple[str, ...] = ()
    consume_ingestion_queue: bool = False
    start_state_machines: bool = False
    read_secrets: bool = False  # vector-store passwords: Secrets Manager `<prefix>-*`, SSM `/<deployment>/<stage>/*`
    manage_model_services: bool = False  # run-time models: their ECS services, target groups, listeners
    manage_schedules: bool = False  # model schedules: the deployment's EventBridge Scheduler group


@dataclass(frozen=True)
class StoreKeys:
    """The KMS key ARN of each kind of data store (CDK: the data stack's keys or config.yaml `kmsKeys`). None: any
    key of the account, for the static .chalice files where the stack's keys are unknown; the conditions still pin
    the store's service and the store itself."""

    buckets: str | None = None
    tables: str | None = None
    queues: str | None = None
    database: str | None = None


_ALL_TABLES = (
    "tokens_table",
    "models_table",
    "sessions_table",
    "prompt_templates_table",
    "attachments_table",
    "rag_documents_table",
    "rag_repositories_table",
    "usage_table",
    "limits_table",
)
_RAG_TABLES = ("rag_documents_table", "rag_repositories_table")

# Function (exact name, or a prefix ending in "_") -> access. A new function without an entry fails the build.
ACCESS: dict[str, Access] = {
    API_HANDLER: Access(
        tables_read=_ALL_TABLES,
        tables_write=_ALL_TABLES,
        buckets_read=("docs", "models"),
        buckets_write=("docs",),
        start_state_machines=True,
        read_secrets=True,
        manage_schedules=True,
    ),
    "lisa_authorizer": Access(tables_read=("tokens_table",)),
    "ingest_documents": Access(
        tables_read=(*_RAG_TABLES, "models_table"),
        tables_write=_RAG_TABLES,
        buckets_read=("docs",),
        consume_ingestion_queue=True,
        read_secrets=True,
    ),
    "staging_": Access(
        tables_read=("models_table",),
        tables_write=("models_table",),
        buckets_read=("models",),
        buckets_write=("models",),
    ),
    "model_lifecycle_": Access(
        tables_read=("models_table",),
        tables_write=("models_table",),
        buckets_read=("models",),
        start_state_machines=True,  # the nested staging execution
        manage_model_services=True,
        manage_schedules=True,  # a deleted model's schedules go with it
    ),
}
# The router task: authentication (tokens), the registry and, for RAG in chat, repositories and their passwords.
ROUTER_TASK = Access(
    tables_read=("tokens_table", "models_table", "rag_repositories_table", "limits_table"),  # limits: overrides
    tables_write=("usage_table",),  # metering: per-day usage batches (router/metering.py)
    tables_count=("limit_counters_table", "tokens_table"),  # limits' window counters; tokens' last use (metering)
    read_secrets=True,
)


@dataclass(frozen=True)
class ArnParts:
    """Partition, region and account for ARNs: `*` for static files, CloudFormation pseudo parameters in CDK."""

    partition: str = "aws"
    region: str = "*"
    account: str = "*"

    def arn(self, service: str, resource: str, *, regional: bool = True) -> str:
        """An ARN in this stack's partition and account (`regional=False` for global services such as IAM)."""
        region, account = (self.region, self.account) if regional else ("", "")
        return f"arn:{self.partition}:{service}:{region}:{account}:{resource}"


def access_for(function: str) -> Access:
    """The access entry of `function` (exact name first, then the longest matching prefix)."""
    if function in ACCESS:
        return ACCESS[function]
    prefixes = [p for p in ACCESS if p.endswith("_") and function.startswith(p)]
    if not prefixes:
        raise KeyError(f"no IAM access declared for Lambda function {function!r}: add it to gpu_stack/policies.py")
    return ACCESS[max(prefixes, key=len)]


def policy_document(
    function: str, names: ResourceNames, parts: ArnParts | None = None, keys: StoreKeys | None = None
) -> dict[str, Any]:
    """The IAM policy document of one function: named resources only, no wildcard actions."""
    parts = parts or ArnParts()
    logs = {
        "Sid": "Logs",
        "Effect": "Allow",
        "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": [parts.arn("logs", f"log-group:/aws/lambda/{names.prefix}-*")],
    }
    statements = [logs, *access_statements(access_for(function), names, parts, keys or StoreKeys())]
    return {"Version": "2012-10-17", "Statement": statements}


def table_statements(access: Access, names: ResourceNames, parts: ArnParts, keys: StoreKeys) -> list[dict[str, Any]]:
    """Read, write and count statements on `access`'s tables (writes and counts on tables only, not indexes), with
    the tables' key."""

    def table_arns(settings: tuple[str, ...], indexes: bool = False) -> list[str]:
        arns = []
        for setting in settings:
            table = parts.arn("dynamodb", f"table/{names.tables[setting]}")
            arns += [table, f"{table}/index/*"] if indexes else [table]
        return arns

    granted = (
        ("TablesRead", TABLE_READ, table_arns(access.tables_read, indexes=True)),
        ("TablesWrite", TABLE_WRITE, table_arns(access.tables_write)),
        ("TablesCount", TABLE_COUNT, table_arns(access.tables_count)),
    )
    statements: list[dict[str, Any]] = [
        {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": arns} for sid, actions, arns in granted if arns
    ]
    if statements:
        actions = TABLE_KEY_WRITE if access.tables_write or access.tables_count else TABLE_KEY_READ
        statements.append(key_statement("TablesKey", actions, "dynamodb", parts, keys.tables))
    return statements


def access_statements(access: Access, names: ResourceNames, parts: ArnParts, keys: StoreKeys) -> list[dict[str, Any]]:
    """The statements granting `access` (a function's or a task role's), the stores' keys included."""
    buckets = {"models": names.models_bucket, "docs": names.docs_bucket}
    statements = table_statements(access, names, parts, keys)
    listed = sorted(set(access.buckets_read) | set(access.buckets_write))
    if listed:
        statements.append(
            {
                "Sid": "BucketsList",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [parts.arn("s3", buckets[b], regional=False) for b in listed],
            }
        )
    for sid, actions, chosen in (
        ("ObjectsRead", OBJECT_READ, access.buckets_read),
        ("ObjectsWrite", OBJECT_WRITE, access.buckets_write),
    ):
        if chosen:
            resources = [parts.arn("s3", f"{buckets[b]}/*", regional=False) for b in sorted(chosen)]
            statements.append({"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources})
    if listed:
        statements.append(
            bucket_key_statement([buckets[b] for b in listed], bool(access.buckets_write), parts, keys.buckets)
        )
    if access.consume_ingestion_queue:
        queue = parts.arn("sqs", names.ingestion_queue)
        statements.append({"Sid": "IngestionQueue", "Effect": "Allow", "Action": QUEUE_CONSUME, "Resource": [queue]})
        context = {"kms:EncryptionContext:aws:sqs:arn": [queue]}
        statements.append(key_statement("IngestionQueueKey", KEY_DECRYPT, "sqs", parts, keys.queues, context))
    if access.start_state_machines and names.state_machines:
        machines = sorted(names.state_machines.values())
        statements.append(
            {
                "Sid": "StateMachines",
                "Effect": "Allow",
                "Action": ["states:StartExecution", "states:ListExecutions"],
                "Resource": [parts.arn("states", f"stateMachine:{m}") for m in machines],
            }
        )
        statements.append(
            {
                "Sid": "Executions",
                "Effect": "Allow",
                "Action": ["states:DescribeExecution", "states:GetExecutionHistory"],
                "Resource": [parts.arn("states", f"execution:{m}:*") for m in machines],
            }
        )
    if access.read_secrets:
        statements += secret_statements(names, parts)
        if names.rag_database_secret:  # the created database's secret is under the database key
            secret = parts.arn("secretsmanager", f"secret:{names.rag_database_secret}-*")
            context = {"kms:EncryptionContext:SecretARN": [secret]}
            statements.append(
                key_statement("RagDatabaseSecretKey", KEY_DECRYPT, "secretsmanager", parts, keys.database, context)
            )
    if access.manage_model_services:
        statements += model_service_statements(names, parts)
    if access.manage_schedules:
        statements += schedule_statements(names, parts)
    return statements


def role_arn(names: ResourceNames, key: str, parts: ArnParts) -> str:
    """A run-time model role: the account's own (config.yaml `roles`) or the one LISA names `<prefix>-model-*`."""
    # IAM ARNs have no region but do have the account (`parts.arn(regional=False)` drops both, as S3 ARNs need)
    return names.role_arns.get(key) or f"arn:{parts.partition}:iam::{parts.account}:role/{names.role_name(key)}"


def schedule_statements(names: ResourceNames, parts: ArnParts) -> list[dict[str, Any]]:
    """gpu_stack.scheduler's statements for syncing model schedules, in this module's shape (Sid, lists)."""
    statements = manage_statements(
        schedule_group_name(names),
        role_arn(names, MODEL_SCHEDULER_ROLE, parts),
        parts.partition,
        parts.region,
        parts.account,
    )

    def listed(value: str | list[str]) -> list[str]:
        return [value] if isinstance(value, str) else list(value)

    sids = ("ModelSchedules", "ModelSchedulesList", "ModelSchedulerRole")
    return [
        {"Sid": sid, **s, "Action": listed(s["Action"]), "Resource": listed(s["Resource"])}
        for sid, s in zip(sids, statements, strict=True)
    ]


def key_statement(
    sid: str,
    actions: list[str],
    service: str,
    parts: ArnParts,
    key_arn: str | None,
    context: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """`actions` on a store's key (`key_arn`, else any key of the account) when `service` calls KMS for the caller
    (`kms:ViaService`), and only for the stores named in the encryption `context`."""
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Action": actions,
        "Resource": [key_arn or parts.arn("kms", "key/*")],
        "Condition": {"StringLike": {"kms:ViaService": f"{service}.{parts.region}.amazonaws.com", **(context or {})}},
    }


def bucket_key_statement(buckets: list[str], write: bool, parts: ArnParts, key_arn: str | None) -> dict[str, Any]:
    """The buckets' key for reading (and with `write`, writing) objects of `buckets` (S3 bucket keys: the
    encryption context is the bucket's ARN; an object's ARN where a bucket key is not used)."""
    arns = [parts.arn("s3", b, regional=False) for b in sorted(buckets)]
    context = {"kms:EncryptionContext:aws:s3:arn": [*arns, *(f"{a}/*" for a in arns)]}
    return key_statement("BucketsKey", KEY_ENCRYPT if write else KEY_DECRYPT, "s3", parts, key_arn, context)


def model_service_statements(names: ResourceNames, parts: ArnParts) -> list[dict[str, Any]]:
    """The lifecycle workflow's ECS/ELB calls (chalicelib.lifecycle.tasks): its own services in the models cluster
    and target groups by name (`<prefix>-model-*`, `lisa-m-*`), listeners of the shared balancer `<prefix>-models`;
    UNSCOPED_DESCRIBE on `*`; the two run-time model roles passed to ECS tasks only."""
    service = parts.arn("ecs", f"service/{names.model_cluster}/{names.prefix}-model-*")
    family = parts.arn("ecs", f"task-definition/{names.prefix}-model-*:*")
    balancer = names.model_balancer
    return [
        {
            "Sid": "ModelServices",
            "Effect": "Allow",
            "Action": [
                "ecs:CreateService",
                "ecs:UpdateService",
                "ecs:DeleteService",
                "ecs:DescribeServices",
            ],
            "Resource": [service],
        },
        {
            "Sid": "ModelTags",  # tags on create (the model's name): ECS checks TagResource on what it creates
            "Effect": "Allow",
            "Action": ["ecs:TagResource"],
            "Resource": [service, family],
        },
        {
            "Sid": "ModelTasks",
            "Effect": "Allow",
            "Action": ["ecs:ListTasks", "ecs:DescribeTasks"],
            "Resource": [
                parts.arn("ecs", f"container-instance/{names.model_cluster}/*"),
                parts.arn("ecs", f"task/{names.model_cluster}/*"),
            ],
        },
        {
            "Sid": "Unscoped",  # no resource types for these (IAM's reference): "*" by AWS's design
            "Effect": "Allow",
            "Action": [a for a in UNSCOPED_DESCRIBE if not a.startswith("scheduler:")],
            "Resource": ["*"],
        },
        {
            "Sid": "ModelTargetGroups",
            "Effect": "Allow",
            "Action": [
                "elasticloadbalancing:CreateTargetGroup",
                "elasticloadbalancing:DeleteTargetGroup",
                "elasticloadbalancing:AddTags",
            ],
            "Resource": [parts.arn("elasticloadbalancing", "targetgroup/lisa-m-*/*")],
        },
        {
            "Sid": "ModelListeners",
            "Effect": "Allow",
            "Action": ["elasticloadbalancing:CreateListener", "elasticloadbalancing:DeleteListener"],
            "Resource": [
                parts.arn("elasticloadbalancing", f"loadbalancer/app/{balancer}/*"),
                parts.arn("elasticloadbalancing", f"listener/app/{balancer}/*"),
            ],
        },
        {
            "Sid": "ModelRoles",
            "Effect": "Allow",
            "Action": ["iam:PassRole"],
            "Resource": [role_arn(names, key, parts) for key in (MODEL_TASK_ROLE, MODEL_EXECUTION_ROLE)],
            "Condition": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
        },
    ]


def secret_statements(names: ResourceNames, parts: ArnParts) -> list[dict[str, Any]]:
    """Reading vector-store passwords: Secrets Manager `<prefix>-*` and SSM parameters `/<deployment>/<stage>/*`."""
    return [
        {
            "Sid": "VectorStoreSecrets",
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue"],
            "Resource": [parts.arn("secretsmanager", f"secret:{names.prefix}-*")],
        },
        {
            "Sid": "VectorStoreParameters",
            "Effect": "Allow",
            "Action": ["ssm:GetParameter"],
            "Resource": [parts.arn("ssm", f"parameter/{names.deployment}/{names.stage}/*")],
        },
    ]


def policy_file(stage: str, function: str) -> str:
    """The file name under .chalice/ (`iam_policy_file` is relative to .chalice/)."""
    return f"policy-{stage}-{function}.json"


def render_chalice_config(project_dir: Path, stages: dict[str, ResourceNames], functions: AppFunctions) -> None:
    """Write the stages' environment and per-function policy files into `<project_dir>/.chalice/`."""
    chalice_dir = project_dir / ".chalice"
    config_path = chalice_dir / "config.json"
    config = json.loads(config_path.read_text())
    for stage, names in stages.items():
        stage_config = config.setdefault("stages", {}).setdefault(stage, {})
        arns = {stem: ArnParts().arn("states", f"stateMachine:{m}") for stem, m in names.state_machines.items()}
        stage_config["environment_variables"] = {
            **stage_config.get("environment_variables", {}),
            **names.environment(arns),
        }
        per_function = stage_config.setdefault("lambda_functions", {})
        for function in functions.all:
            per_function.setdefault(function, {})["iam_policy_file"] = policy_file(stage, function)
            document = policy_document(function, names)
            (chalice_dir / policy_file(stage, function)).write_text(json.dumps(document, indent=2) + "\n")
    config_path.write_text(json.dumps(config, indent=2) + "\n")


def main(argv: list[str] | None = None) -> None:
    """`python -m gpu_stack.policies [--config config.yaml]`: refresh .chalice/ for the dev and prod stages."""
    from chalicelib.config import load_config
    from gpu_stack.functions import state_machine_stems
    from gpu_stack.names import resource_names

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--project-dir", default=".")
    args = parser.parse_args(argv)
    project = Path(args.project_dir)
    config = load_config(args.config)
    stems = state_machine_stems(project / "stepfunctions")
    stages = {stage: resource_names(config.model_copy(update={"stage": stage}), stems) for stage in ("dev", "prod")}
    render_chalice_config(project, stages, app_functions(project))


if __name__ == "__main__":
    main()
