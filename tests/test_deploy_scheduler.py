"""gpu_stack/scheduler.py: the model schedule group, the scheduler's role and the syncing function's policy."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import cdk_nag
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Template

from gpu_stack.nag import collect_errors
from gpu_stack.names import ResourceNames
from gpu_stack.scheduler import model_schedules

NAMES = ResourceNames(
    deployment="lisa",
    stage="prod",
    tables={},
    models_bucket="models",
    docs_bucket="docs",
    ingestion_queue="queue",
    ingestion_dlq="dlq",
    state_machines={},
)
TARGET = "arn:aws:states:us-east-1:123456789012:stateMachine:lisa-prod-model_update"


@pytest.fixture(scope="module")
def synthesized() -> tuple[dict[str, Any], list[str]]:
    app = cdk.App()
    stack = cdk.Stack(app, "Schedules", env=cdk.Environment(account="123456789012", region="us-east-1"))
    schedules = model_schedules(stack, NAMES, TARGET)
    api_role = iam.Role(stack, "ApiRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    schedules.grant_manage(stack, "ApiSchedulesPolicy", api_role)
    assert schedules.environment()["LISA_SCHEDULE_GROUP"] == "lisa-prod-model-schedules"
    cdk.Aspects.of(stack).add(cdk_nag.AwsSolutionsChecks())
    cdk.Aspects.of(stack).add(cdk_nag.NIST80053R5Checks())
    assembly = app.synth()
    return Template.from_stack(stack).to_json(), [str(f) for f in collect_errors(assembly)]


def _of(template: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r["Properties"] for r in template["Resources"].values() if r["Type"] == kind]


def test_one_group_per_deployment_and_a_role_that_may_only_start_the_update_workflow(
    synthesized: tuple[dict[str, Any], list[str]],
) -> None:
    template, _ = synthesized
    assert _of(template, "AWS::Scheduler::ScheduleGroup") == [{"Name": "lisa-prod-model-schedules"}]
    roles = [r for r in _of(template, "AWS::IAM::Role") if "scheduler" in str(r["AssumeRolePolicyDocument"])]
    (trust,) = roles[0]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": "123456789012"}
    policies = {
        p["Roles"][0]["Ref"]: p["PolicyDocument"]["Statement"] for p in _of(template, "AWS::IAM::ManagedPolicy")
    }
    scheduler_role = next(k for k in template["Resources"] if k.startswith("ModelSchedulerRole"))
    assert policies[scheduler_role] == [{"Action": "states:StartExecution", "Effect": "Allow", "Resource": TARGET}]


def test_the_syncing_function_manages_the_groups_schedules_only(synthesized: tuple[dict[str, Any], list[str]]) -> None:
    template, _ = synthesized
    api_role = next(k for k in template["Resources"] if k.startswith("ApiRole"))
    policy = next(p for p in _of(template, "AWS::IAM::ManagedPolicy") if p["Roles"] == [{"Ref": api_role}])
    statements = policy["PolicyDocument"]["Statement"]
    actions = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert actions == {
        "scheduler:CreateSchedule",
        "scheduler:UpdateSchedule",
        "scheduler:DeleteSchedule",
        "scheduler:GetSchedule",
        "scheduler:ListSchedules",
        "iam:PassRole",
    }
    pass_role = next(s for s in statements if s["Action"] == "iam:PassRole")
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}}
    assert "schedule/lisa-prod-model-schedules/*" in str(statements[0]["Resource"])


def test_cdk_nag_finds_nothing_unexplained(synthesized: tuple[dict[str, Any], list[str]]) -> None:
    _, findings = synthesized
    assert findings == []
