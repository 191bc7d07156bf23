"""cdk-nag suppressions the stacks attach next to their constructs, and the shared reasons they give.

Every suppression names one rule and a reason a reviewer can check; IAM5 ones list what they cover (`appliesTo`).
docs/deploy.md lists them all.
"""

from __future__ import annotations

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
    " .chalice/policy-*.json) and attached to that function's role only; a managed copy is the enterprise option"
    " still to do (issue 14 item 4)"
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
)
NAG_ARN_PARTS = {"partition": "<AWS::Partition>", "region": "<AWS::Region>", "account": "<AWS::AccountId>"}


def wildcard_resource_suppressions(document: dict[str, Any]) -> list[dict[str, Any]]:
    """IAM5 suppressions for each wildcard resource of `document` (rendered with NAG_ARN_PARTS), one reason each."""
    resources = sorted({r for s in document["Statement"] for r in s["Resource"] if "*" in r})
    entries = []
    for marker, reason in _WILDCARD_REASONS:
        chosen = [r for r in resources if marker in r]
        if chosen:
            entries.append(nag_suppression("AwsSolutions-IAM5", reason, [f"Resource::{r}" for r in chosen]))
            resources = [r for r in resources if r not in chosen]
    if resources:
        raise ValueError(f"no reason for the wildcard resources {resources}: name them in gpu_stack/policies.py")
    return entries
