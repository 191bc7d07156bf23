"""EventBridge Scheduler for model schedules (chalicelib/schedules): the deployment's schedule group, the role the
scheduler assumes to start the model update workflow, and what the function that syncs schedules may do.

The stack that makes the update state machine calls `model_schedules(...)` and gives its `environment()` to the
Lambdas (`LISA_SCHEDULE_GROUP`, `LISA_SCHEDULE_ROLE_ARN`, `LISA_SCHEDULE_TARGET_ARN`); the function that calls
`sync_model_schedule` / `delete_model_schedule` gets `manage_statements(...)` (plain IAM JSON, so
gpu_stack/policies.py can render it for `.chalice/policy-*.json` too).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_scheduler as scheduler
from constructs import Construct

from gpu_stack.names import ResourceNames
from gpu_stack.overrides import role_or
from gpu_stack.suppressions import nag_suppression, suppress

# Read and write the group's schedules, by name; ListSchedules supports no resource-level permission.
SCHEDULE_WRITE = ["scheduler:CreateSchedule", "scheduler:UpdateSchedule", "scheduler:DeleteSchedule"]
SCHEDULE_READ = ["scheduler:GetSchedule"]
LIST_SCHEDULES_REASON = "scheduler:ListSchedules supports no resource-level permissions (IAM's reference)"
GROUP_SCHEDULES_REASON = "the schedules of the deployment's own model schedule group: one per model transition"
TargetKind = Literal["state_machine", "lambda"]
_START_TARGET: dict[TargetKind, str] = {"state_machine": "states:StartExecution", "lambda": "lambda:InvokeFunction"}


def schedule_group_name(names: ResourceNames) -> str:
    """`<deployment>-<stage>-model-schedules`: two deployments in one account never share schedules."""
    return f"{names.prefix}-model-schedules"


def manage_statements(
    group: str, role_arn: str, partition: str = "aws", region: str = "*", account: str = "*"
) -> list[dict[str, Any]]:
    """The statements the syncing function needs: the group's schedules, listing, passing the scheduler role."""
    schedules = f"arn:{partition}:scheduler:{region}:{account}:schedule/{group}/*"
    return [
        {"Effect": "Allow", "Action": [*SCHEDULE_WRITE, *SCHEDULE_READ], "Resource": schedules},
        {"Effect": "Allow", "Action": "scheduler:ListSchedules", "Resource": "*"},
        {
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": role_arn,
            "Condition": {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}},
        },
    ]


@dataclass(frozen=True)
class ModelSchedules:
    """A deployment's model-schedule resources."""

    group_name: str
    group: scheduler.CfnScheduleGroup
    role: iam.IRole
    target_arn: str

    def environment(self) -> dict[str, str]:
        """The Lambdas' settings for chalicelib/schedules."""
        return {
            "LISA_SCHEDULE_GROUP": self.group_name,
            "LISA_SCHEDULE_ROLE_ARN": self.role.role_arn,
            "LISA_SCHEDULE_TARGET_ARN": self.target_arn,
        }

    def grant_manage(self, scope: Construct, construct_id: str, role: iam.IRole) -> iam.ManagedPolicy:
        """A managed policy on `role` (the syncing function's) with `manage_statements`, its nag reasons beside it."""
        stack = cdk.Stack.of(scope)
        statements = manage_statements(
            self.group_name, self.role.role_arn, stack.partition, stack.region, stack.account
        )
        policy = iam.ManagedPolicy(
            scope,
            construct_id,
            roles=[role],
            statements=[iam.PolicyStatement.from_json(statement) for statement in statements],
        )
        # the ARN's partition, region and account are tokens or literals (a stack with an explicit environment)
        group = re.escape(self.group_name)  # a group name is [0-9A-Za-z._-]: escapes JavaScript reads alike
        group_schedules = {"regex": f"/^Resource::arn:.+:scheduler:.+:schedule\\/{group}\\/\\*$/"}
        suppress(
            policy,
            nag_suppression("AwsSolutions-IAM5", LIST_SCHEDULES_REASON, ["Resource::*"]),
            {"id": "AwsSolutions-IAM5", "reason": GROUP_SCHEDULES_REASON, "appliesTo": [group_schedules]},
        )
        return policy


def model_schedules(
    scope: Construct,
    names: ResourceNames,
    target_arn: str,
    *,
    target_kind: TargetKind = "state_machine",
    role_arn: str | None = None,
    role_name: str | None = None,
) -> ModelSchedules:
    """The schedule group and the scheduler's role, which may start `target_arn` (the update state machine) only.

    `role_arn`: the account's own role instead (config.yaml `roles`), which must allow the same; `role_name`: the
    created role's name (the syncing Lambdas' iam:PassRole names it)."""
    group_name = schedule_group_name(names)
    group = scheduler.CfnScheduleGroup(scope, "ModelScheduleGroup", name=group_name)
    stack = cdk.Stack.of(scope)
    schedules = f"arn:{stack.partition}:scheduler:{stack.region}:{stack.account}:schedule/{group_name}/*"
    role = role_or(
        scope,
        "ModelSchedulerRole",
        role_arn,
        assumed_by=iam.ServicePrincipal(
            "scheduler.amazonaws.com",
            conditions={
                "StringEquals": {"aws:SourceAccount": stack.account},
                "ArnLike": {"aws:SourceArn": schedules},
            },
        ),
        description="EventBridge Scheduler: start the model update workflow for the model schedules",
        role_name=role_name,
    )
    if role_arn is None:
        iam.ManagedPolicy(
            scope,
            "ModelSchedulerPolicy",
            roles=[role],
            statements=[iam.PolicyStatement(actions=[_START_TARGET[target_kind]], resources=[target_arn])],
        )
    return ModelSchedules(group_name=group_name, group=group, role=role, target_arn=target_arn)
