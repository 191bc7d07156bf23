"""What the stacks give models created at run time (POST /models → stepfunctions/model_lifecycle.json): the shared
internal balancer and GPU capacity, the security group path router → balancer → tasks, the lifecycle Lambdas'
`LISA_MODEL_*` settings and their IAM scoped to those resources, and EventBridge Scheduler's group and role; the
`config.yaml` models keep their own services. Asserted on the prod synth tests/test_deploy_stacks.py makes (one synth
per process, shared)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from chalicelib.config import ConfigError, load_config, parse_config
from chalicelib.lifecycle import FUNCTIONS
from chalicelib.lifecycle.infra import LISTENER_PORTS
from chalicelib.settings import Settings
from gpu_stack.app import PROJECT_DIR, LisaApp
from gpu_stack.names import resource_names
from gpu_stack.policies import UNSCOPED_DESCRIBE
from gpu_stack.stacks.models import deployed_models
from tests.test_deploy_stacks import _resources, prod_deployment

PREFIX = "acme-prod"
LIFECYCLE = sorted(FUNCTIONS.values())


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> tuple[LisaApp, dict[str, dict[str, Any]], Path]:
    return prod_deployment(tmp_path_factory)


@pytest.fixture(scope="module")
def models(deployment: tuple[LisaApp, dict[str, dict[str, Any]], Path]) -> dict[str, Any]:
    return deployment[1][f"{PREFIX}-models"]


@pytest.fixture(scope="module")
def api(deployment: tuple[LisaApp, dict[str, dict[str, Any]], Path]) -> dict[str, Any]:
    return deployment[1][f"{PREFIX}-api"]


def _key(template: dict[str, Any], construct: str, kind: str | None = None) -> str:
    """The logical id of the stack's top-level construct `construct` (its id plus CDK's 8-digit hash)."""
    (key,) = [
        k
        for k, v in template["Resources"].items()
        if re.fullmatch(f"{construct}[0-9A-F]{{8}}", k) and kind in (None, v["Type"])
    ]
    return str(key)


def _export(template: dict[str, Any], key: str) -> str:
    """The name of the export the models stack makes for `key` (what the API stack imports)."""
    return str(next(o["Export"]["Name"] for o in template["Outputs"].values() if key in json.dumps(o["Value"])))


def _statements(template: dict[str, Any], role: str) -> list[dict[str, Any]]:
    policies = template["Resources"][role]["Properties"]["Policies"]
    return [s for p in policies for s in p["PolicyDocument"]["Statement"]]


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_the_shared_balancer_is_internal_named_logged_and_protected_in_prod(models: dict[str, Any]) -> None:
    balancer = models["Resources"][_key(models, "RuntimeAlb")]["Properties"]
    assert (balancer["Name"], balancer["Scheme"]) == (f"{PREFIX}-models", "internal")
    attributes = {a["Key"]: a["Value"] for a in balancer["LoadBalancerAttributes"]}
    assert attributes["access_logs.s3.enabled"] == "true"
    assert attributes["deletion_protection.enabled"] == "true"
    # The workflow adds one listener per model (infra.listener); the stack adds none.
    listeners = _resources(models, "AWS::ElasticLoadBalancingV2::Listener").values()
    runtime = _key(models, "RuntimeAlb")
    assert not [listener for listener in listeners if listener["Properties"]["LoadBalancerArn"] == {"Ref": runtime}]


def test_router_and_lambdas_reach_the_balancer_which_reaches_the_gpu_tasks(models: dict[str, Any]) -> None:
    alb_group, gpu_group = _key(models, "RuntimeAlbSecurityGroup"), _key(models, "GpuRuntimeSecurityGroup")
    clients = _key(models, "ModelClients")
    ingress = [r["Properties"] for r in _resources(models, "AWS::EC2::SecurityGroupIngress").values()]
    into_alb = [r for r in ingress if r["GroupId"] == {"Fn::GetAtt": [alb_group, "GroupId"]}]
    assert [(r["SourceSecurityGroupId"], r["FromPort"], r["ToPort"]) for r in into_alb] == [
        ({"Fn::GetAtt": [clients, "GroupId"]}, LISTENER_PORTS.start, LISTENER_PORTS.stop - 1)
    ]
    into_gpu = [r for r in ingress if r["GroupId"] == {"Fn::GetAtt": [gpu_group, "GroupId"]}]
    assert [(r["SourceSecurityGroupId"], r["FromPort"], r["ToPort"]) for r in into_gpu] == [
        ({"Fn::GetAtt": [alb_group, "GroupId"]}, 32768, 65535)  # the tasks' dynamic host ports (bridge mode)
    ]


def test_run_time_capacity_starts_at_zero_and_joins_the_cluster(models: dict[str, Any]) -> None:
    group = models["Resources"][_key(models, "GpuRuntimeASG")]["Properties"]
    assert (group["MinSize"], group["MaxSize"]) == ("0", "2")  # modelCapacity's default maxCapacity
    template = models["Resources"][_key(models, "GpuRuntimeTemplate")]["Properties"]["LaunchTemplateData"]
    assert template["InstanceType"] == "g5.xlarge"
    provider = _key(models, "CapacityRuntime")
    scaling = models["Resources"][provider]["Properties"]["AutoScalingGroupProvider"]["ManagedScaling"]
    assert scaling["Status"] == "ENABLED"  # ECS starts instances as a model's service places tasks
    (association,) = _resources(models, "AWS::ECS::ClusterCapacityProviderAssociations").values()
    assert {"Ref": provider} in association["Properties"]["CapacityProviders"]


def test_lifecycle_lambdas_get_every_setting_placement_reads(models: dict[str, Any], api: dict[str, Any]) -> None:
    wanted = {
        "LISA_MODEL_CLUSTER": "Cluster",
        "LISA_MODEL_LOAD_BALANCER_ARN": "RuntimeAlb",
        "LISA_MODEL_CAPACITY_PROVIDER": "CapacityRuntime",
        "LISA_MODEL_TASK_ROLE_ARN": "RuntimeTasksRole",
        "LISA_MODEL_EXECUTION_ROLE_ARN": "RuntimeExecutionRole",
        "LISA_MODEL_LOG_GROUP": "RuntimeLogs",
    }
    assert {name.removeprefix("LISA_").lower() for name in wanted} <= set(Settings.model_fields)
    for function in LIFECYCLE:
        env = api["Resources"][_logical(function)]["Properties"]["Environment"]["Variables"]
        for name, construct in wanted.items():
            kind = "AWS::ECS::Cluster" if construct == "Cluster" else None
            assert env[name] == {"Fn::ImportValue": _export(models, _key(models, construct, kind))}, (function, name)
        assert "Fn::ImportValue" in env["LISA_MODEL_VPC_ID"]
    authorizer = api["Resources"]["LisaAuthorizer"]["Properties"]["Environment"]["Variables"]
    assert not [name for name in authorizer if name.startswith(("LISA_MODEL_C", "LISA_MODEL_TASK", "LISA_SCHEDULE"))]


def _logical(function: str) -> str:
    return "".join(part.capitalize() for part in function.split("_"))


def test_lifecycle_iam_names_the_cluster_balancer_and_roles(models: dict[str, Any], api: dict[str, Any]) -> None:
    statements = _statements(api, f"{_logical('model_lifecycle_ensure_infrastructure')}Role")
    by_sid = {s["Sid"]: s for s in statements if "Sid" in s}
    cluster = {"Fn::ImportValue": _export(models, _key(models, "Cluster", "AWS::ECS::Cluster"))}
    assert cluster in json.loads(json.dumps(by_sid["ModelServices"]["Resource"]))[0]["Fn::Join"][1]
    assert ":service/" in json.dumps(by_sid["ModelServices"])
    assert f"/{PREFIX}-model-*" in json.dumps(by_sid["ModelServices"])
    assert f"loadbalancer/app/{PREFIX}-models/*" in json.dumps(by_sid["ModelListeners"])
    # iam:PassRole: exactly the two roles the models stack makes, to ECS tasks only
    passed = by_sid["ModelRoles"]
    assert passed["Condition"] == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}
    rendered = json.dumps(passed["Resource"])
    names = {r["Properties"].get("RoleName") for r in _resources(models, "AWS::IAM::Role").values()}
    for role in (f"{PREFIX}-model-task", f"{PREFIX}-model-execution"):
        assert f":role/{role}" in rendered
        assert role in names
    assert len(passed["Resource"]) == 2
    for statement in statements:  # "*" only for the actions without resource types
        if "*" in _listed(statement["Resource"]):
            assert set(_listed(statement["Action"])) <= set(UNSCOPED_DESCRIBE), statement


def test_run_time_task_roles_read_weights_and_write_their_logs(models: dict[str, Any]) -> None:
    policies = {
        p["Properties"]["Roles"][0]["Ref"]: p["Properties"]["PolicyDocument"]["Statement"]
        for p in _resources(models, "AWS::IAM::ManagedPolicy").values()
    }
    task = policies[_key(models, "RuntimeTasksRole")]
    assert {a for s in task for a in _listed(s["Action"])} == {"s3:GetObject", "s3:ListBucket", "kms:Decrypt"}
    execution = policies[_key(models, "RuntimeExecutionRole")]
    logs = next(s for s in execution if "logs:PutLogEvents" in _listed(s["Action"]))
    assert logs["Resource"] == {"Fn::GetAtt": [_key(models, "RuntimeLogs"), "Arn"]}
    assert next(s for s in execution if s["Resource"] == "*")["Action"] == "ecr:GetAuthorizationToken"


def test_schedules_start_only_the_lifecycle_workflow(api: dict[str, Any]) -> None:
    (group,) = _resources(api, "AWS::Scheduler::ScheduleGroup").values()
    assert group["Properties"]["Name"] == f"{PREFIX}-model-schedules"
    role = _key(api, "ModelSchedulerRole")
    assert api["Resources"][role]["Properties"]["RoleName"] == f"{PREFIX}-model-scheduler"
    (policy,) = [
        p["Properties"]
        for p in _resources(api, "AWS::IAM::ManagedPolicy").values()
        if p["Properties"]["Roles"] == [{"Ref": role}]
    ]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Action"] == "states:StartExecution"
    assert ":stateMachine:acme-prod-model_lifecycle" in json.dumps(statement["Resource"])
    for function in ("api_handler", *LIFECYCLE):
        env = api["Resources"][_logical(function) if function != "api_handler" else "APIHandler"]["Properties"]
        variables = env["Environment"]["Variables"]
        assert variables["LISA_SCHEDULE_ROLE_ARN"] == {"Fn::GetAtt": [role, "Arn"]}
        assert variables["LISA_SCHEDULE_TARGET_ARN"] == statement["Resource"]
        assert variables["LISA_SCHEDULE_GROUP"] == f"{PREFIX}-model-schedules"


def test_config_yaml_models_keep_their_own_service_and_balancer(
    deployment: tuple[LisaApp, dict[str, dict[str, Any]], Path], models: dict[str, Any]
) -> None:
    deployed = deployed_models(load_config(deployment[2].parent / "config.yaml"))
    assert len(_resources(models, "AWS::ECS::Service")) == len(deployed) > 1
    assert len(_resources(models, "AWS::ElasticLoadBalancingV2::LoadBalancer")) == len(deployed) + 1
    assert set(deployment[0].models.endpoints) == {m.model_name for m in deployed}


def test_a_prefix_too_long_for_an_alb_name_is_refused() -> None:
    config = load_config(PROJECT_DIR / "config.yaml").model_copy(update={"deployment_name": "a" * 30})
    with pytest.raises(ValueError, match="more than 32 characters"):
        _ = resource_names(config).model_balancer


def test_model_capacity_is_validated_by_its_key() -> None:
    data = {"deploymentName": "lisa", "s3BucketModels": "lisa-models"}
    assert parse_config(data).model_capacity.max_capacity == 2
    with pytest.raises(ConfigError, match=r"modelCapacity\.instanceType") as caught:
        parse_config({**data, "modelCapacity": {"instanceType": "G5 XL", "maxCapacity": 0}})
    assert "maxCapacity" not in str(caught.value)  # 0 is allowed: no run-time capacity
