"""What the model lifecycle workflow (chalicelib/lifecycle) needs in AWS for models created at run time, made by
the models stack: the GPU capacity they share, the internal balancer `<prefix>-models` that gets one listener per
model, the roles their tasks run as and the log group they write to. `RuntimeModels.environment()` is the
`LISA_MODEL_*` settings chalicelib.lifecycle.tasks.placement() reads; the Lambdas' IAM for the same resources is in
gpu_stack/policies.py (`model_service_statements`), scoped to these names.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from chalicelib.config import LisaConfig
from gpu_stack.names import MODEL_EXECUTION_ROLE, MODEL_TASK_ROLE, ResourceNames
from gpu_stack.overrides import imported_role
from gpu_stack.policies import ArnParts, StoreKeys, bucket_key_statement
from gpu_stack.suppressions import nag_suppression, suppress

ECR_PULL = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
RUNTIME_WEIGHTS_REASON = (
    "run-time models' weights: any staged model's objects in the deployment's own models bucket (an admin picks"
    " the model when creating it; the task reads only the prefix its fetch container is given)"
)
RUNTIME_IMAGES_REASON = (
    "run-time models' images: an admin picks the image when creating a model; pulls from this account's ECR"
    " repositories in this region only (ecr:GetAuthorizationToken supports no resource-level permissions)"
)


@dataclass(frozen=True)
class RuntimeRoles:
    """The task role and the execution role of run-time model tasks (the account's own where config.yaml names
    them)."""

    task: iam.IRole
    execution: iam.IRole


@dataclass(frozen=True)
class RuntimeModels:
    """The shared resources of run-time models."""

    cluster: ecs.ICluster
    provider: ecs.AsgCapacityProvider
    balancer: elbv2.IApplicationLoadBalancer
    log_group: logs.ILogGroup
    roles: RuntimeRoles
    vpc_id: str
    weights_image: str | None

    def environment(self) -> dict[str, str]:
        """The lifecycle Lambdas' `LISA_MODEL_*` settings (chalicelib/settings.py)."""
        env = {
            "LISA_MODEL_CLUSTER": self.cluster.cluster_name,
            "LISA_MODEL_VPC_ID": self.vpc_id,
            "LISA_MODEL_LOAD_BALANCER_ARN": self.balancer.load_balancer_arn,
            "LISA_MODEL_CAPACITY_PROVIDER": self.provider.capacity_provider_name,
            "LISA_MODEL_TASK_ROLE_ARN": self.roles.task.role_arn,
            "LISA_MODEL_EXECUTION_ROLE_ARN": self.roles.execution.role_arn,
            "LISA_MODEL_LOG_GROUP": self.log_group.log_group_name,
        }
        if self.weights_image:  # CDK context `weightsImage` (a registry or ECR reference), else infra's default
            env["LISA_MODEL_WEIGHTS_IMAGE"] = self.weights_image
        return env


def runtime_roles(
    scope: Construct,
    config: LisaConfig,
    names: ResourceNames,
    bucket: s3.IBucket,
    keys: StoreKeys,
    log_group: logs.ILogGroup,
) -> RuntimeRoles:
    """The two roles, named `<prefix>-model-task` / `<prefix>-model-execution` so that the Lambdas' iam:PassRole
    names exactly them; each with a managed policy (no inline policy) and its nag reasons. The account's own
    (config.yaml `roles.modelTasks`, `roles.taskExecution`) instead, imported as they are."""
    parts = ArnParts(partition=cdk.Aws.PARTITION, region=cdk.Aws.REGION, account=cdk.Aws.ACCOUNT_ID)
    bucket_id = cdk.Stack.of(bucket).get_logical_id(bucket.node.default_child)  # type: ignore[arg-type]
    weights = [f"Resource::<{bucket_id}.Arn>/*"]
    if keys.buckets is None:
        weights.append("Resource::arn:<AWS::Partition>:kms:<AWS::Region>:<AWS::AccountId>:key/*")
    repositories = f"arn:{cdk.Aws.PARTITION}:ecr:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}:repository/*"
    task = _role(
        scope,
        "RuntimeTasks",
        config.roles.model_tasks,
        names.role_name(MODEL_TASK_ROLE),
        "run-time model tasks: read staged weights",
        [
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[bucket.arn_for_objects("*")]),
            iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket.bucket_arn]),
            iam.PolicyStatement.from_json(bucket_key_statement([bucket.bucket_name], False, parts, keys.buckets)),
        ],
        nag_suppression("AwsSolutions-IAM5", RUNTIME_WEIGHTS_REASON, weights),
    )
    execution = _role(
        scope,
        "RuntimeExecution",
        config.roles.task_execution,
        names.role_name(MODEL_EXECUTION_ROLE),
        "ECS for run-time model tasks: pull their images, write their logs",
        [
            iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"]),
            iam.PolicyStatement(actions=ECR_PULL, resources=[repositories]),
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[log_group.log_group_arn]
            ),
        ],
        nag_suppression(
            "AwsSolutions-IAM5",
            RUNTIME_IMAGES_REASON,
            ["Resource::*", "Resource::arn:<AWS::Partition>:ecr:<AWS::Region>:<AWS::AccountId>:repository/*"],
        ),
    )
    return RuntimeRoles(task=task, execution=execution)


def _role(
    scope: Construct,
    construct_id: str,
    arn: str | None,
    name: str,
    description: str,
    statements: list[iam.PolicyStatement],
    reason: dict[str, object],
) -> iam.IRole:
    """The account's role `arn`, or a role `name` for ECS tasks with `statements` as a managed policy."""
    imported = imported_role(scope, f"{construct_id}Role", arn)
    if imported is not None:
        return imported
    role = iam.Role(
        scope,
        f"{construct_id}Role",
        role_name=name,
        assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
        description=description,
    )
    policy = iam.ManagedPolicy(scope, f"{construct_id}Policy", roles=[role], statements=statements)
    suppress(policy, reason)
    return role
