"""cdk-nag suppressions the stacks attach next to their constructs, and the shared reasons they give.

Every suppression names one rule and a reason a reviewer can check; IAM5 ones list what they cover (`appliesTo`).
docs/deploy.md lists them all.
"""

from __future__ import annotations

import re
from typing import Any

import cdk_nag
from constructs import IConstruct

# Actions that support no resource-level permissions (IAM's service authorization reference): `Resource: *` only.
LOG_DELIVERY = [
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
]
XRAY_WRITE = ["xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets"]
NO_RESOURCE_LEVEL_REASON = (
    "CloudWatch Logs' log-delivery actions (logs:*LogDelivery*, logs:PutResourcePolicy, logs:DescribeResourcePolicies,"
    " logs:DescribeLogGroups) and X-Ray's xray:PutTraceSegments/PutTelemetryRecords/GetSampling* support no"
    " resource-level permissions"
)

LAMBDA_VPC_ACCESS = "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
LAMBDA_VPC_ACCESS_REASON = (
    "AWS's policy for Lambdas in a VPC: ec2:Create/Describe/DeleteNetworkInterface and Assign/UnassignPrivateIp"
    "Addresses only (none of which supports resource-level permissions) plus its own log group"
)
CHALICE_INLINE_REASON = (
    "one policy per function, generated from gpu_stack/policies.py (the same document chalice deploy uses in"
    " .chalice/policy-*.json) and attached to that function's role only; config.yaml"
    " `convertInlinePoliciesToManaged: true` makes it a managed policy"
)

ACCESS_LOG_BUCKET_REASON = "the access-log bucket itself: logging it into itself would log its own log writes"
REPLICATION_REASON = (
    "a single-region deployment: model weights are re-staged from their source, documents re-uploaded; cross-region"
    " replication is a disaster-recovery choice of the account (docs/deploy.md)"
)
BACKUP_PLAN_REASON = (
    "point-in-time recovery (35 days) is on for every table; an AWS Backup plan is the account's policy, not the"
    " stack's (docs/deploy.md)"
)

NAT_ROUTE_REASON = (
    "the public subnet's route to the internet gateway, which its NAT gateway (the private subnets' egress) needs"
)

CDK_HANDLER_REASON = "a handler CDK provides (custom resource or lifecycle hook), invoked by CloudFormation or ASG"
LAMBDA_BASIC_EXECUTION = "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
ECS_ENVIRONMENT_REASON = (
    "plain settings only (resource names, ports, engine arguments, the OIDC issuer); secrets come from Secrets"
    " Manager or SSM at run time through the task role"
)

NLB_LOGS_REASON = (
    "NLB access logs exist for TLS listeners only; this TCP listener's flows are in the VPC flow logs and each"
    " request in API Gateway's and the router's logs"
)
DEV_DELETION_REASON = "a non-prod stage: its stacks are torn down and recreated freely (prod has deletion protection)"
PRIVATE_LINK_TLS_REASON = (
    "reached only through API Gateway's VPC link (PrivateLink) inside the VPC; TLS terminates at API Gateway"
)
ECR_AUTH_REASON = (
    "CDK's task execution role: ecr:GetAuthorizationToken supports no resource-level permissions; the image pull"
    " and log writes are scoped to this task's repository and log group"
)

TASK_ROLE_INLINE_REASON = (
    "CDK's DefaultPolicy of this one role, attached to nothing else; config.yaml `convertInlinePoliciesToManaged:"
    " true` makes it a managed policy"
)

INTERNAL_ALB_REASON = (
    "an internal ALB in the private subnets that only the model-client security group (router, Lambdas) reaches;"
    " TLS terminates at API Gateway, and a WAF belongs in front of API Gateway, not here"
)
ECS_INSTANCE_REASON = (
    "CDK's ECS container-instance policy: ecs:DiscoverPollEndpoint, ecr:GetAuthorizationToken and the logs actions"
    " support no resource-level permissions; ecs:Submit* is scoped to this cluster"
)


def nag_suppression(rule: str, reason: str, applies_to: list[str] | None = None) -> dict[str, Any]:
    """One cdk-nag suppression entry; IAM5-like rules name what they cover in `applies_to`."""
    return {"id": rule, "reason": reason, **({"appliesTo": applies_to} if applies_to else {})}


def suppress(construct: IConstruct, *entries: dict[str, Any], children: bool = False) -> None:
    """Attach `entries` to `construct` (and its children, e.g. a role's DefaultPolicy, with `children`)."""
    cdk_nag.NagSuppressions.add_resource_suppressions(construct, list(entries), apply_to_children=children)


# What a wildcard in a Lambda policy's resource covers (gpu_stack/policies.py names every resource it can).
_WILDCARD_REASONS = (
    ("/index/*", "the named table's global secondary indexes (a Query on an index needs the index ARN)"),
    (":log-group:", "the deployment's own Lambda log groups (`/aws/lambda/<prefix>-<function>`), made by Lambda"),
    (":s3:::", "objects of the deployment's own bucket: the keys are uploads and model weights, not known at deploy"),
    (":secret:", "vector-store passwords an admin stores at run time under the deployment's `<prefix>-` name"),
    (":parameter/", "vector-store parameters an admin stores at run time under `/<deployment>/<stage>/`"),
    (":execution:", "executions of the deployment's own state machine, whose names are chosen per run"),
    # run-time models (chalicelib/lifecycle/tasks.py): names chosen when an admin creates a model
    (":service/", "run-time model services of this deployment (`<prefix>-model-<name>`) in the models cluster"),
    (":task-definition/", "the task definition family of each run-time model (`<prefix>-model-<name>`): tag-on-create"),
    (":task/", "tasks of the models cluster (ECS names them): read to report why a model's task stopped"),
    (":container-instance/", "ListTasks' resource: the models cluster's instances (the workflow lists its tasks)"),
    (":schedule/", "the schedules of the deployment's own model schedule group: one per model transition"),
    (":targetgroup/lisa-m-", "run-time models' target groups, named `lisa-m-<hash>` when the model is created"),
    (":listener/app/", "listeners of the shared run-time model balancer `<prefix>-models` (one per model, port then)"),
    (":loadbalancer/app/", "the shared run-time model balancer `<prefix>-models` (its listeners are made per model)"),
    (":role/", "the deployment's own roles (`<prefix>-*`), passable only to ECS tasks (iam:PassedToService)"),
)
UNSCOPED_REASON = (
    "actions with no resource type in IAM's reference (gpu_stack/policies.py UNSCOPED_DESCRIBE): ELB's"
    " DescribeTargetGroups/TargetHealth/Listeners/LoadBalancers, ECS's Register/Deregister/DescribeTaskDefinition,"
    " scheduler:ListSchedules"
)
# Where a policy names the models cluster (an export of the models stack, which cdk-nag renders by its export name).
CLUSTER_PLACEHOLDER = "@models-cluster@"
NAG_ARN_PARTS = {"partition": "<AWS::Partition>", "region": "<AWS::Region>", "account": "<AWS::AccountId>"}


def wildcard_resource_suppressions(document: dict[str, Any]) -> list[dict[str, Any]]:
    """IAM5 suppressions for each wildcard resource of `document` (rendered with NAG_ARN_PARTS), one reason each."""
    return wildcard_suppressions([r for s in document["Statement"] for r in s["Resource"] if "*" in r])


def wildcard_suppressions(resources: list[str]) -> list[dict[str, Any]]:
    """IAM5 suppressions for wildcard resources as cdk-nag renders them, grouped by the reason each has."""
    left = sorted(set(resources))
    entries = []
    if "*" in left:
        entries.append(nag_suppression("AwsSolutions-IAM5", UNSCOPED_REASON, ["Resource::*"]))
        left.remove("*")
    for marker, reason in _WILDCARD_REASONS:
        chosen = [r for r in left if marker in r]
        if chosen:
            entries.append(nag_suppression("AwsSolutions-IAM5", reason, [f"Resource::{r}" for r in chosen]))
            left = [r for r in left if r not in chosen]
    if left:
        raise ValueError(f"no reason for the wildcard resources {left}: name them in gpu_stack/policies.py")
    return [_placeholders_as_patterns(entry) for entry in entries]


def _placeholders_as_patterns(entry: dict[str, Any]) -> dict[str, Any]:
    """appliesTo strings with CLUSTER_PLACEHOLDER as patterns (cdk-nag's `{"regex": "/^...$/"}`), the rest as is."""

    def pattern(finding: str) -> str | dict[str, str]:
        if CLUSTER_PLACEHOLDER not in finding:
            return finding
        pieces = [re.escape(piece).replace("/", "\\/") for piece in finding.split(CLUSTER_PLACEHOLDER)]
        return {"regex": f"/^{'[^/]+'.join(pieces)}$/"}

    if "appliesTo" not in entry:
        return entry
    return {**entry, "appliesTo": [pattern(finding) for finding in entry["appliesTo"]]}


def suppress_cdk_handler(construct: IConstruct, *extra: dict[str, Any]) -> None:
    """A Lambda handler CDK itself provides (custom resource or hook) and its role: AWS's own code, run only by
    CloudFormation or an ASG lifecycle event; its runtime, role and invocation are CDK's, not LISA's."""
    suppress(
        construct,
        nag_suppression("AwsSolutions-L1", CDK_HANDLER_REASON + "; CDK upgrades pick its runtime"),
        nag_suppression("NIST.800.53.R5-LambdaConcurrency", CDK_HANDLER_REASON + ", at most once per deployment"),
        nag_suppression("NIST.800.53.R5-LambdaDLQ", CDK_HANDLER_REASON + ": CloudFormation sees its failures"),
        nag_suppression("NIST.800.53.R5-LambdaInsideVPC", CDK_HANDLER_REASON + ": it calls AWS APIs only"),
        nag_suppression("AwsSolutions-IAM4", CDK_HANDLER_REASON, [LAMBDA_BASIC_EXECUTION]),
        nag_suppression("NIST.800.53.R5-IAMNoInlinePolicy", CDK_HANDLER_REASON + ": CDK writes its policy"),
        *extra,
        children=True,
    )


def suppress_task_definition(task: IConstruct) -> None:
    """An ECS task definition: plain settings in its environment, and CDK's execution role."""
    suppress(task, nag_suppression("AwsSolutions-ECS2", ECS_ENVIRONMENT_REASON))
    execution_role = task.node.try_find_child("ExecutionRole")
    if execution_role is not None:
        suppress(
            execution_role,
            nag_suppression("AwsSolutions-IAM5", ECR_AUTH_REASON, ["Resource::*"]),
            nag_suppression("NIST.800.53.R5-IAMNoInlinePolicy", ECR_AUTH_REASON),
            children=True,
        )


def suppress_gpu_group(group: IConstruct, instance_role: IConstruct) -> None:
    """A GPU Auto Scaling group and its instance role (ECS managed draining empties an instance before scale-in:
    no CDK drain hook, topic or Lambda)."""
    suppress(group, nag_suppression("AwsSolutions-AS3", "scaling is the ECS capacity provider's, seen in ECS events"))
    suppress(
        instance_role,
        nag_suppression("AwsSolutions-IAM5", ECS_INSTANCE_REASON, ["Action::ecs:Submit*", "Resource::*"]),
        nag_suppression("NIST.800.53.R5-IAMNoInlinePolicy", ECS_INSTANCE_REASON),
        children=True,
    )
