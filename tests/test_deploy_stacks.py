"""The gpu_stack CDK app, synthesized once in-process for a prod config (offline), checked with cfn-lint and
aws_cdk.assertions."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "1")
assertions = pytest.importorskip("aws_cdk.assertions")

from chalicelib import aws  # noqa: E402
from chalicelib.config import load_config  # noqa: E402
from gpu_stack.app import PROJECT_DIR, LisaApp, build_app  # noqa: E402
from gpu_stack.functions import AppFunctions, app_functions, asl_placeholders, substitution_function  # noqa: E402

Match = assertions.Match
ASL_DIR = PROJECT_DIR / "stepfunctions"
# Actions that touch data: none of them may be granted on "*".
DATA_ACTION = re.compile(
    r"^(dynamodb:(Get|Put|Update|Delete|BatchGet|BatchWrite|Query|Scan)\w*|s3:(Get|Put|Delete)Object\w*|s3:List\w*"
    r"|sqs:(Receive|Send|Delete)Message\w*|states:StartExecution|secretsmanager:GetSecretValue|ssm:GetParameter\w*)$"
)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> tuple[LisaApp, dict[str, dict[str, Any]], Path]:
    """The repo's config.yaml as a prod deployment plus one model that is not deployed; synthesized once."""
    base = tmp_path_factory.mktemp("deploy")
    data = yaml.safe_load((PROJECT_DIR / "config.yaml").read_text())
    data.update(stage="prod", deploymentName="acme", s3BucketModels="acme-prod-models", awsAccountId="123456789012")
    extra = dict(data["ecsModels"][0], modelName="not-deployed", deploy=False)
    data["ecsModels"].append(extra)
    certificate = "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-1111-2222-3333-444455556666"
    data["restApiConfig"] = {"domainName": "lisa.example.com", "sslCertIamArn": certificate}
    config_path = base / "config.yaml"
    config_path.write_text(yaml.safe_dump(data))
    saved = dict(os.environ)  # build_app exports the deployment's LISA_* names for the in-process Chalice import
    try:
        built = build_app(load_config(config_path), config_dir=base, outdir=str(base / "cdk.out"))
        assembly = built.app.synth()
    finally:
        os.environ.clear()
        os.environ.update(saved)
        aws.reset()  # settings read meanwhile named the synthesized deployment's resources
    templates = {stack.stack_name: stack.template for stack in assembly.stacks}
    return built, templates, base / "cdk.out"


@pytest.fixture(scope="module")
def templates(deployment: tuple[LisaApp, dict[str, dict[str, Any]], Path]) -> dict[str, dict[str, Any]]:
    return deployment[1]


def _template(templates: dict[str, dict[str, Any]], suffix: str) -> Any:
    return assertions.Template.from_json(templates[f"acme-prod-{suffix}"])


def _resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def test_every_stack_is_synthesized_and_listed(templates: dict[str, dict[str, Any]]) -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "gpu_stack", "--config", str(PROJECT_DIR / "config.yaml")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert sorted(templates) == sorted(f"acme-prod-{s}" for s in ("network", "data", "models", "router", "api"))
    assert [word for word in listed if word.startswith("lisa-dev-")] == [
        f"lisa-dev-{s}" for s in ("network", "data", "models", "router", "api")
    ]


def test_custom_domain_uses_the_configured_certificate(templates: dict[str, dict[str, Any]]) -> None:
    domain = templates["acme-prod-api"]["Resources"]["RestAPI"]["Properties"]["Domain"]
    assert domain["DomainName"] == "lisa.example.com"
    assert domain["CertificateArn"].startswith("arn:aws:acm:")


def test_cfn_lint_accepts_every_template(deployment: tuple[LisaApp, dict[str, dict[str, Any]], Path]) -> None:
    files = sorted(str(p) for p in deployment[2].glob("*.template.json"))
    assert len(files) == 5
    # W3005 (a DependsOn also implied by a Ref) is how CDK orders custom resources; everything else must pass.
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), "--ignore-checks", "W3005", "--", *files],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_one_gpu_service_per_deployed_model_with_its_environment(templates: dict[str, dict[str, Any]]) -> None:
    models = _template(templates, "models")
    models.resource_count_is("AWS::ECS::Service", 2)
    config = load_config(PROJECT_DIR / "config.yaml")
    for model in config.ecs_models:
        env = [{"Name": k, "Value": v} for k, v in model.container_config.environment.items()]
        env.append({"Name": "MODEL_ID", "Value": "/data/model"})
        models.has_resource_properties(
            "AWS::ECS::TaskDefinition",
            {
                "ContainerDefinitions": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Name": "fetch-weights",
                                "Essential": False,
                                "Command": ["s3", "sync", "--no-progress", Match.any_value(), "/data/model"],
                            }
                        ),
                        Match.object_like(
                            {
                                "Name": "model",
                                "Image": model.container_config.image,
                                "Environment": Match.array_with(env),
                                "ResourceRequirements": [{"Type": "GPU", "Value": "1"}],
                                "DependsOn": [{"ContainerName": "fetch-weights", "Condition": "SUCCESS"}],
                                "HealthCheck": Match.object_like(
                                    {"Command": ["CMD-SHELL", "curl -fsS http://localhost:8080/health || exit 1"]}
                                ),
                            }
                        ),
                    ]
                )
            },
        )
        assert f"/{model.model_id}" in json.dumps(templates["acme-prod-models"])  # s3://<models bucket>/<org/name>
    task_defs = _resources(templates["acme-prod-models"], "AWS::ECS::TaskDefinition")
    images = [c["Image"] for t in task_defs.values() for c in t["Properties"]["ContainerDefinitions"]]
    assert len(task_defs) == 2
    assert images.count(config.ecs_models[0].container_config.image) == 1


def test_gpu_capacity_uses_the_ecs_gpu_ami_and_scales_on_requests(templates: dict[str, dict[str, Any]]) -> None:
    models = templates["acme-prod-models"]
    assert any("gpu" in p.lower() for p in models.get("Parameters", {}) if p.startswith("SsmParameterValue"))
    _template(templates, "models").has_resource_properties(
        "AWS::EC2::LaunchTemplate", {"LaunchTemplateData": Match.object_like({"InstanceType": "g5.xlarge"})}
    )
    _template(templates, "models").resource_properties_count_is(
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        {
            "TargetTrackingScalingPolicyConfiguration": Match.object_like(
                {
                    "PredefinedMetricSpecification": Match.object_like(
                        {"PredefinedMetricType": "ALBRequestCountPerTarget"}
                    )
                }
            )
        },
        2,
    )


def test_router_behind_nlb_and_vpc_link_streams_the_data_plane(templates: dict[str, dict[str, Any]]) -> None:
    router = _template(templates, "router")
    router.resource_count_is("AWS::ECS::Service", 1)
    router.has_resource_properties("AWS::ECS::Service", {"LaunchType": "FARGATE"})
    nlb = next(iter(_resources(templates["acme-prod-router"], "AWS::ElasticLoadBalancingV2::LoadBalancer")))
    router.has_resource_properties("AWS::ApiGateway::VpcLink", {"TargetArns": [{"Ref": nlb}]})
    router.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::TargetGroup", {"HealthCheckPath": "/health", "TargetType": "ip"}
    )
    body = _resources(templates["acme-prod-api"], "AWS::Serverless::Api")["RestAPI"]["Properties"]["DefinitionBody"]
    integration = body["paths"]["/v1/{proxy+}"]["x-amazon-apigateway-any-method"]["x-amazon-apigateway-integration"]
    assert integration["connectionType"] == "VPC_LINK"
    assert integration["responseTransferMode"] == "STREAM"
    assert "Fn::ImportValue" in integration["connectionId"]  # the router stack's VPC link


def test_every_chalice_route_but_the_public_ones_has_the_authorizer(templates: dict[str, dict[str, Any]]) -> None:
    from app import app

    public = {path for path, methods in app.routes.items() if all(r.authorizer is None for r in methods.values())}
    assert public == {"/ui/config"}
    body = templates["acme-prod-api"]["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]
    checked = 0
    for path, methods in body["paths"].items():
        if path.startswith("/v1/") or path in public:
            continue
        for verb, method in methods.items():
            if verb == "options":
                continue
            assert method.get("security") == [{"lisa_authorizer": []}], f"{verb.upper()} {path} has no authorizer"
            checked += 1
    assert checked >= 15
    assert body["securityDefinitions"]["lisa_authorizer"]["x-amazon-apigateway-authtype"] == "custom"


def _statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for resource in template["Resources"].values():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::IAM::Policy":
            found += props["PolicyDocument"]["Statement"]
        if resource["Type"] == "AWS::IAM::Role":
            for policy in props.get("Policies", []):
                found += policy["PolicyDocument"]["Statement"]
    return found


def test_iam_has_no_wildcard_data_actions_or_resources(templates: dict[str, dict[str, Any]]) -> None:
    checked = 0
    for name, template in templates.items():
        for statement in _statements(template):
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            for action in actions:
                assert action != "*", f"{name}: every action granted"
                assert not action.endswith(":*"), f"{name}: every action of a service granted: {action}"
            if any(DATA_ACTION.match(a.rstrip("*")) for a in actions):
                assert "*" not in resources, f"{name}: data actions {actions} on every resource"
                checked += 1
    assert checked >= 10


def test_chalice_functions_get_only_their_resources(templates: dict[str, dict[str, Any]]) -> None:
    api = templates["acme-prod-api"]["Resources"]
    authorizer = json.dumps(api["LisaAuthorizerRole"]["Properties"]["Policies"])
    assert "table/acme-prod-api-tokens" in authorizer
    for foreign in ("acme-prod-sessions", "s3:", "dynamodb:PutItem"):
        assert foreign not in authorizer
    staging = json.dumps(api["StagingConvertShardRole"]["Properties"]["Policies"])
    assert "acme-prod-models/*" in staging
    assert "acme-prod-rag-docs" not in staging
    assert "sqs:" not in staging
    ingest = json.dumps(api["IngestDocumentsRole"]["Properties"]["Policies"])
    assert ":acme-prod-rag-ingestion" in ingest
    assert "states:" not in ingest
    handler = api["APIHandler"]["Properties"]
    env = handler["Environment"]["Variables"]
    assert env["LISA_TOKENS_TABLE"] == "acme-prod-api-tokens"
    assert env["LISA_DOCS_BUCKET"] == "acme-prod-rag-docs"
    assert handler["FunctionName"] == "acme-prod-api_handler"
    assert handler["VpcConfig"]["SubnetIds"]


def test_ingestion_queue_has_a_dlq_and_feeds_the_ingestion_lambda(templates: dict[str, dict[str, Any]]) -> None:
    data = templates["acme-prod-data"]["Resources"]
    queues = {
        v["Properties"]["QueueName"]: (k, v) for k, v in _resources({"Resources": data}, "AWS::SQS::Queue").items()
    }
    dlq_id, _ = queues["acme-prod-rag-ingestion-dlq"]
    _, queue = queues["acme-prod-rag-ingestion"]
    assert queue["Properties"]["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]},
        "maxReceiveCount": 3,
    }
    assert queue["Properties"]["VisibilityTimeout"] >= 300
    events = templates["acme-prod-api"]["Resources"]["IngestDocuments"]["Properties"]["Events"]
    assert "Fn::ImportValue" in events["IngestDocumentsSqsEventSource"]["Properties"]["Queue"]


def test_tables_come_from_the_table_specs(templates: dict[str, dict[str, Any]]) -> None:
    from chalicelib.tables import TABLES

    data = _template(templates, "data")
    data.resource_count_is("AWS::DynamoDB::Table", len(TABLES))
    data.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "TableName": "acme-prod-api-tokens",
            "KeySchema": [{"AttributeName": "tokenHash", "KeyType": "HASH"}],
            "GlobalSecondaryIndexes": [Match.object_like({"IndexName": "byTokenId"})],
        },
    )


def test_state_machines_embed_every_asl_file_unchanged(templates: dict[str, dict[str, Any]]) -> None:
    files = sorted(ASL_DIR.glob("*.json"))
    api = templates["acme-prod-api"]["Resources"]
    machines = {
        v["Properties"]["StateMachineName"]: v["Properties"]
        for v in api.values()
        if v["Type"] == "AWS::StepFunctions::StateMachine"
    }
    assert sorted(machines) == sorted(f"acme-prod-{f.stem}" for f in files)
    for path in files:
        props = machines[f"acme-prod-{path.stem}"]
        assert props["DefinitionString"] == path.read_text()
        subs = props.get("DefinitionSubstitutions", {})
        assert sorted(subs) == sorted(asl_placeholders(path.read_text()))
        for value in subs.values():
            logical, attribute = value["Fn::GetAtt"]
            assert attribute == "Arn"
            assert api[logical]["Type"] == "AWS::Serverless::Function"
    env = api["APIHandler"]["Properties"]["Environment"]["Variables"]
    if (ASL_DIR / "staging.json").exists():
        assert "stateMachine:acme-prod-staging" in json.dumps(env["LISA_STAGING_STATE_MACHINE_ARN"])


def test_substitution_names_follow_the_chalice_functions() -> None:
    functions = app_functions(PROJECT_DIR)
    fake = AppFunctions(api_handler=True, authorizers=(), event_handlers=(), pure=("staging_convert_shard",))
    assert substitution_function("staging", "ConvertShardFunctionArn", fake) == "staging_convert_shard"
    with pytest.raises(ValueError, match="staging_missing_step"):
        substitution_function("staging", "MissingStepFunctionArn", functions)
    with pytest.raises(ValueError, match=r"not a \.\.\.FunctionArn"):
        substitution_function("staging", "BucketName", functions)
