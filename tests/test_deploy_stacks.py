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
from chalice.utils import to_cfn_resource_name

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "1")
assertions = pytest.importorskip("aws_cdk.assertions")

from chalicelib import aws  # noqa: E402
from chalicelib.aws import presigned_put_origin  # noqa: E402
from chalicelib.config import ConfigError, InferenceContainer, load_config, parse_config  # noqa: E402
from chalicelib.gateway import NO_ROUTE  # noqa: E402
from chalicelib.webui.security import ui_security_headers  # noqa: E402
from gpu_stack.app import PROJECT_DIR, LisaApp, build_app  # noqa: E402
from gpu_stack.functions import AppFunctions, app_functions, asl_placeholders, substitution_function  # noqa: E402
from gpu_stack.stacks.models import FETCH_SCRIPT, WEIGHTS_IMAGE  # noqa: E402
from gpu_stack.stacks.webui import WEB_UI_PATHS  # noqa: E402

Match = assertions.Match
ASL_DIR = PROJECT_DIR / "stepfunctions"
# Actions that touch data: none of them may be granted on "*".
DATA_ACTION = re.compile(
    r"^(dynamodb:(Get|Put|Update|Delete|BatchGet|BatchWrite|Query|Scan)\w*|s3:(Get|Put|Delete)Object\w*|s3:List\w*"
    r"|sqs:(Receive|Send|Delete)Message\w*|states:StartExecution|secretsmanager:GetSecretValue|ssm:GetParameter\w*)$"
)


# A vLLM model on a 4-GPU instance: engine args from engineArgs and from upstream LISA's VLLM_* names.
VLLM_MODEL = {
    "modelName": "qwen3-8b",
    "modelId": "Qwen/Qwen3-8B",
    "modelType": "textgen",
    "inferenceContainer": "vllm",
    "instanceType": "g5.12xlarge",
    "containerConfig": {
        "image": "vllm/vllm-openai:v0.32.0",
        "engineArgs": {"maxModelLen": 16384, "tensorParallelSize": 4, "enableAutoToolChoice": True},
        "environment": {"VLLM_TOOL_CALL_PARSER": "hermes", "VLLM_DTYPE": "bfloat16", "VLLM_LOGGING_LEVEL": "INFO"},
    },
}


OIDC_AUTHORITY = "https://login.example.com/realms/acme"


def write_prod_config(base: Path) -> Path:
    """The repo's config.yaml as a prod deployment (custom domain, RAG database, a layer) plus one model that is not
    deployed and a vLLM one, written under `base`; tests/test_deploy_nag.py checks the same config."""
    data = yaml.safe_load((PROJECT_DIR / "config.yaml").read_text())
    data.update(stage="prod", deploymentName="acme", s3BucketModels="acme-prod-models", awsAccountId="123456789012")
    extra = dict(data["ecsModels"][0], modelName="not-deployed", deploy=False)
    data["ecsModels"] += [extra, VLLM_MODEL]
    certificate = "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-1111-2222-3333-444455556666"
    data["restApiConfig"] = {"domainName": "lisa.example.com", "sslCertIamArn": certificate}
    data["ragDatabase"] = {"instanceType": "t4g.medium", "allocatedStorage": 50}  # for config.yaml's `default` repo
    data["authConfig"] |= {"authority": OIDC_AUTHORITY, "clientId": "lisa-ui"}  # prod signs users in with OIDC
    layer = base / "layers" / "rag" / "python"
    layer.mkdir(parents=True)
    (layer / "placeholder.py").write_text("")
    data["lambdaLayers"] = {"rag": str(layer.parent)}
    config_path = base / "config.yaml"
    config_path.write_text(yaml.safe_dump(data))
    return config_path


_PROD: list[tuple[LisaApp, dict[str, dict[str, Any]], Path]] = []


def prod_deployment(tmp_path_factory: pytest.TempPathFactory) -> tuple[LisaApp, dict[str, dict[str, Any]], Path]:
    """The prod config (write_prod_config), synthesized once per test process: this module and
    tests/test_deploy_models.py assert on the same synth."""
    if _PROD:
        return _PROD[0]
    base = tmp_path_factory.mktemp("deploy")
    config_path = write_prod_config(base)
    saved = dict(os.environ)  # build_app exports the deployment's LISA_* names for the in-process Chalice import
    try:
        built = build_app(load_config(config_path), config_dir=base, outdir=str(base / "cdk.out"))
        assembly = built.app.synth()
    finally:
        os.environ.clear()
        os.environ.update(saved)
        aws.reset()  # settings read meanwhile named the synthesized deployment's resources
    templates = {stack.stack_name: stack.template for stack in assembly.stacks}
    _PROD.append((built, templates, base / "cdk.out"))
    return _PROD[0]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> tuple[LisaApp, dict[str, dict[str, Any]], Path]:
    """The prod config (write_prod_config), synthesized once."""
    return prod_deployment(tmp_path_factory)


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


def _cfn_lint(files: list[str]) -> None:
    # W3005 (a DependsOn also implied by a Ref) is how CDK orders custom resources; everything else must pass.
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), "--ignore-checks", "W3005", "--", *files],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_cfn_lint_accepts_every_template(deployment: tuple[LisaApp, dict[str, dict[str, Any]], Path]) -> None:
    files = sorted(str(p) for p in deployment[2].glob("*.template.json"))
    assert len(files) == 5
    _cfn_lint(files)


def test_one_gpu_service_per_deployed_model_with_its_environment(templates: dict[str, dict[str, Any]]) -> None:
    models = _template(templates, "models")
    models.resource_count_is("AWS::ECS::Service", 4)  # config.yaml's three + the vLLM model
    config = load_config(PROJECT_DIR / "config.yaml")
    # config.yaml's TGI/TEI models (its vLLM chat model's task is the vLLM test's kind); not the undeployed TGI entry
    for model in (m for m in config.ecs_models if m.deploy and m.inference_container is not InferenceContainer.VLLM):
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
                                # only what lisa-manifest.json lists, sha256-checked (tests/test_deploy_weights.py)
                                "EntryPoint": ["sh", "-c", FETCH_SCRIPT, "fetch-weights"],
                                "Command": [Match.any_value(), "/data/model"],
                                "Image": WEIGHTS_IMAGE,
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
    assert len(task_defs) == 4
    assert images.count(config.ecs_models[0].container_config.image) == 2  # it and qwen3-8b, not `not-deployed`


def test_vllm_model_runs_the_vllm_server_on_the_staged_weights_with_its_gpus(
    templates: dict[str, dict[str, Any]],
) -> None:
    task = next(
        t["Properties"]
        for t in _resources(templates["acme-prod-models"], "AWS::ECS::TaskDefinition").values()
        if any(c["Image"] == "vllm/vllm-openai:v0.32.0" for c in t["Properties"]["ContainerDefinitions"])
        and "qwen3-8b" in json.dumps(t["Properties"])  # config.yaml's own chat model runs the same image
    )
    fetch, model = task["ContainerDefinitions"]
    assert fetch["Name"] == "fetch-weights"
    assert fetch["EntryPoint"] == ["sh", "-c", FETCH_SCRIPT, "fetch-weights"]  # manifest-checked, as for TGI
    assert "/Qwen/Qwen3-8B" in json.dumps(fetch["Command"])
    assert model["DependsOn"] == [{"ContainerName": "fetch-weights", "Condition": "SUCCESS"}]
    assert model["EntryPoint"] == ["python3", "-m", "vllm.entrypoints.openai.api_server"]
    assert model["Command"] == [
        *("--model", "/data/model", "--served-model-name", "qwen3-8b", "--host", "0.0.0.0", "--port", "8080"),  # noqa: S104
        *("--max-model-len", "16384", "--dtype", "bfloat16", "--tensor-parallel-size", "4"),
        *("--enable-auto-tool-choice", "--tool-call-parser", "hermes"),
    ]
    assert model["ResourceRequirements"] == [{"Type": "GPU", "Value": "4"}]  # one per tensor-parallel rank
    environment = {e["Name"]: e["Value"] for e in model["Environment"]}
    assert environment["VLLM_LOGGING_LEVEL"] == "INFO"
    assert environment["HF_HUB_OFFLINE"] == "1"
    assert not {"VLLM_DTYPE", "VLLM_TOOL_CALL_PARSER", "MODEL_ID", "PORT"} & set(environment)  # flags, not TGI's
    probe = model["HealthCheck"]["Command"]
    assert probe[:3] == ["CMD", "python3", "-c"]
    assert "http://localhost:8080/health" in probe[3]
    assert model["LinuxParameters"]["SharedMemorySize"] == 2048
    models = _template(templates, "models")
    models.has_resource_properties(
        "AWS::EC2::LaunchTemplate", {"LaunchTemplateData": Match.object_like({"InstanceType": "g5.12xlarge"})}
    )
    models.has_resource_properties("AWS::ElasticLoadBalancingV2::TargetGroup", {"HealthCheckPath": "/health"})
    assert "qwen3-8b (ecs.textgen.vllm)" in json.dumps(templates["acme-prod-models"]["Outputs"])


def test_the_local_cpu_defaults_stay_out_of_the_gpu_task(templates: dict[str, dict[str, Any]]) -> None:
    """config.yaml's chat model runs locally with float32, eager mode and VLLM_CPU_* (workers/launch.py); its
    ECS task has only what its config says."""
    containers = [
        c
        for t in _resources(templates["acme-prod-models"], "AWS::ECS::TaskDefinition").values()
        for c in t["Properties"]["ContainerDefinitions"]
        if "smollm2-135m-instruct" in c.get("Command", [])
    ]
    assert len(containers) == 1
    model = containers[0]
    flags = ("--max-model-len", "2048", "--enable-auto-tool-choice", "--tool-call-parser", "hermes")
    assert model["Command"][8:] == list(flags)  # no --dtype float32, no --enforce-eager
    assert not [e["Name"] for e in model["Environment"] if e["Name"].startswith("VLLM_CPU_")]


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
        4,
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
    assert public == {"/ui/config", "/openapi.json"}  # the UI needs its config before login; the API document is public
    body = templates["acme-prod-api"]["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]
    checked = 0
    for path, methods in body["paths"].items():
        if path.startswith("/v1/") or path in public or path in WEB_UI_PATHS:
            continue
        for verb, method in methods.items():
            if verb == "options":
                continue
            assert method.get("security") == [{"lisa_authorizer": []}], f"{verb.upper()} {path} has no authorizer"
            checked += 1
    assert checked >= 15
    definition = body["securityDefinitions"]["lisa_authorizer"]
    assert definition["x-amazon-apigateway-authtype"] == "custom"
    # A REQUEST authorizer (every header reaches it: Api-Key works), uncached, with no identity source that
    # would let API Gateway refuse a request without asking it (and without its reason).
    authorizer = definition["x-amazon-apigateway-authorizer"]
    assert (authorizer["type"], authorizer["authorizerResultTtlInSeconds"]) == ("request", 0)
    assert "identitySource" not in authorizer


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
    # Ingestion and search embed through the model endpoints: the Lambdas join the group the model ALBs admit.
    clients = next(
        k
        for k, v in templates["acme-prod-models"]["Resources"].items()
        if v["Type"] == "AWS::EC2::SecurityGroup"
        and v["Properties"]["GroupDescription"] == "may call the model endpoints"
    )
    for function in ("APIHandler", "IngestDocuments"):
        groups = json.dumps(api[function]["Properties"]["VpcConfig"]["SecurityGroupIds"])
        assert f"GetAtt{clients}GroupId" in groups, function
    ingress = _resources(templates["acme-prod-models"], "AWS::EC2::SecurityGroupIngress").values()
    assert any(
        json.dumps(i["Properties"].get("SourceSecurityGroupId")) == json.dumps({"Fn::GetAtt": [clients, "GroupId"]})
        for i in ingress
    )


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
    source = events["IngestDocumentsSqsEventSource"]["Properties"]
    assert "Fn::ImportValue" in source["Queue"]
    # ingest_documents answers with partial batch failures; without this Lambda would drop the failed messages
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


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


def _asset_dir(cdk_out: Path, image_uri: Any) -> Path:
    """The cdk.out folder of the Docker asset an `ImageUri` (`...container-assets-...:<hash>`) names."""
    digest = json.dumps(image_uri).rsplit(":", 1)[1].split('"')[0]
    return cdk_out / f"asset.{digest}"


def _pins(path: Path) -> dict[str, str]:
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return dict(line.split("==", 1) for line in lines if "==" in line)


def test_staging_functions_that_need_torch_run_from_the_staging_image(
    deployment: tuple[LisaApp, dict[str, dict[str, Any]], Path],
) -> None:
    _, templates, cdk_out = deployment
    api = templates["acme-prod-api"]["Resources"]
    handlers = app_functions(PROJECT_DIR).handlers
    uris = set()
    for function in ("staging_convert_shard", "staging_fetch_from_hub"):
        props = api[to_cfn_resource_name(function)]["Properties"]
        assert props["PackageType"] == "Image"
        assert props["ImageConfig"] == {"Command": [handlers[function]]}
        assert not {"Runtime", "Handler", "CodeUri", "Layers"} & set(props), f"{function} keeps zip settings"
        assert props["MemorySize"] == 10240 if function == "staging_convert_shard" else props["MemorySize"] >= 3008
        assert props["EphemeralStorage"] == {"Size": 10240}
        uris.add(json.dumps(props["ImageUri"]))
    assert len(uris) == 1, "one staging image for both functions"
    resolve = api["StagingResolve"]["Properties"]
    assert resolve["Runtime"] == "python3.11"
    assert "PackageType" not in resolve

    asset = _asset_dir(cdk_out, json.loads(uris.pop()))
    dockerfile = asset / "lambda_images/staging/Dockerfile"
    assert (asset / "chalicelib/staging/convert.py").is_file()
    assert (asset / "requirements.txt").is_file()
    assert not [p for p in ("app.py", ".venv", "webui", "tests", "models", ".lisa") if (asset / p).exists()]
    cmd = re.search(r'^CMD \["([\w.]+)"\]', dockerfile.read_text(), re.MULTILINE)
    assert cmd
    assert cmd[1] == handlers["staging_convert_shard"]
    image_pins, dev_pins = _pins(dockerfile.parent / "requirements.txt"), _pins(PROJECT_DIR / "requirements-dev.txt")
    assert {"torch", "safetensors", "huggingface-hub", "chalice"} <= set(image_pins)
    assert {name: dev_pins.get(name) for name in image_pins} == image_pins, "image pins differ from requirements-dev"
    assert "download.pytorch.org/whl/cpu torch==" + image_pins["torch"] in dockerfile.read_text()


def test_router_image_and_role_serve_rag_in_chat(deployment: tuple[LisaApp, dict[str, dict[str, Any]], Path]) -> None:
    _, templates, cdk_out = deployment
    router = templates["acme-prod-router"]["Resources"]
    task = next(iter(_resources({"Resources": router}, "AWS::ECS::TaskDefinition").values()))
    asset = _asset_dir(cdk_out, task["Properties"]["ContainerDefinitions"][0]["Image"])
    assert (asset / "router/rag.py").is_file()
    assert "-r ../layers/rag/requirements.txt" in (asset / "router/requirements.txt").read_text()
    assert "psycopg[binary]" in (asset / "layers/rag/requirements.txt").read_text()
    role_policies = json.dumps([v for v in router.values() if v["Type"] == "AWS::IAM::Policy"])
    assert "secretsmanager:GetSecretValue" in role_policies
    assert "secret:acme-prod-*" in role_policies
    for table in ("api-tokens", "models", "rag-repositories"):  # by name, as gpu_stack/policies.py ROUTER_TASK
        assert f":table/acme-prod-{table}" in role_policies, table
    assert "rag-documents" not in role_policies
    assert "sessions" not in role_policies
    writes = [s for s in _statements({"Resources": router}) if "dynamodb:PutItem" in json.dumps(s["Action"])]
    assert writes  # metering: the router writes usage batches, and nothing else
    assert all(":table/acme-prod-usage" in json.dumps(s["Resource"]) for s in writes), writes
    assert "TablesKey" in role_policies  # the tables' key, for reading (tests/test_deploy_nag.py checks each grant)


def test_lambda_images_come_from_ecr_or_are_built(tmp_path: Path) -> None:
    import aws_cdk as cdk

    from gpu_stack.images import image_source, lambda_image_uri

    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "img.tar").write_bytes(b"")
    assert image_source("img", tmp_path).kind == "directory"
    assert image_source("img.tar", tmp_path).kind == "tarball"
    ecr_image = image_source("123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/lisa-staging:v3", tmp_path)
    assert (ecr_image.kind, ecr_image.repository, ecr_image.tag) == ("ecr", "team/lisa-staging", "v3")
    stack = cdk.Stack(cdk.App(), "Images")
    with pytest.raises(ValueError, match="Lambda runs container images from Amazon ECR only"):
        lambda_image_uri(stack, "Public", "ghcr.io/acme/lisa-staging:1", tmp_path)
    with pytest.raises(ValueError, match="no such tarball"):
        lambda_image_uri(stack, "Missing", "gone.tar.gz", tmp_path)
    uri = stack.resolve(lambda_image_uri(stack, "Ecr", ecr_image.image, tmp_path))
    assert "team/lisa-staging" in json.dumps(uri)
    assert ":v3" in json.dumps(uri)


def test_chat_ui_is_served_from_a_private_bucket_on_the_apis_origin(
    deployment: tuple[LisaApp, dict[str, dict[str, Any]], Path],
) -> None:
    built_app, templates, cdk_out = deployment
    api = templates["acme-prod-api"]["Resources"]
    (bucket_id, bucket), *others = _resources({"Resources": api}, "AWS::S3::Bucket").items()
    assert not others
    assert bucket["Properties"]["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] is True
    deployment_props = next(v for v in api.values() if v["Type"] == "Custom::CDKBucketDeployment")["Properties"]
    assert deployment_props["DestinationBucketName"] == {"Ref": bucket_id}
    built = cdk_out / f"asset.{deployment_props['SourceObjectKeys'][0].removesuffix('.zip')}"
    assert (built / "index.html").read_text() == (PROJECT_DIR / "webui/dist/index.html").read_text()
    assert 'src="./assets/' in (built / "index.html").read_text()  # relative: works under the /prod/ stage path

    # The UI's page may call its own origin, the OIDC issuer and the documents bucket's presigned uploads.
    uploads = "https://acme-prod-rag-docs.s3.amazonaws.com"
    assert presigned_put_origin(built_app.names.docs_bucket, region="us-east-1") == uploads
    hardening = ui_security_headers([OIDC_AUTHORITY, uploads])
    assert f"connect-src 'self' {uploads} https://login.example.com;" in hardening["Content-Security-Policy"]
    paths = api["RestAPI"]["Properties"]["DefinitionBody"]["paths"]
    assert (built / "reference.html").is_file()  # the API reference page, served at /reference
    assert {"/", "/reference", "/assets/{file}"} <= set(WEB_UI_PATHS)
    for path, key in (("/", "/index.html"), ("/reference", "/reference.html"), ("/assets/{file}", "/assets/{file}")):
        method = paths[path]["get"]
        assert "security" not in method  # the page and bundles are public; every API call they make is authorized
        integration = method["x-amazon-apigateway-integration"]
        assert integration["type"] == "aws"
        assert integration["uri"]["Fn::Sub"][0].endswith(":s3:path/${Bucket}" + key)
        assert integration["uri"]["Fn::Sub"][1] == {"Bucket": {"Ref": bucket_id}}
        reader = integration["credentials"]["Fn::GetAtt"][0]
        # the browser-hardening headers, on the file and on its 404, declared on the method
        for status, answer in (
            ("200", integration["responses"]["default"]),
            ("404", integration["responses"]["4\\d{2}"]),
        ):
            set_here = {k.removeprefix("method.response.header."): v for k, v in answer["responseParameters"].items()}
            assert {name: set_here.get(name) for name in hardening} == {k: f"'{v}'" for k, v in hardening.items()}
            assert set(hardening) <= set(method["responses"][status]["headers"])
    grants = json.dumps([v for v in api.values() if v["Type"] == "AWS::IAM::Policy" and reader in json.dumps(v)])
    assert "s3:GetObject" in grants
    assert "s3:PutObject" not in grants
    assert "s3:DeleteObject" not in grants


def test_web_assets_must_be_a_built_ui(tmp_path: Path) -> None:
    from gpu_stack.stacks.webui import web_assets_dir

    config = load_config(PROJECT_DIR / "config.yaml").model_copy(update={"web_assets": "ui"})
    with pytest.raises(ValueError, match=r"webAssets 'ui': no built chat UI .*make webui"):
        web_assets_dir(config, PROJECT_DIR, tmp_path)
    (tmp_path / "ui").mkdir()
    (tmp_path / "ui" / "index.html").write_text("<!doctype html>")
    assert web_assets_dir(config, PROJECT_DIR, tmp_path) == (tmp_path / "ui").resolve()


def _network(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    """The network stack alone for config.yaml + `overrides`, synthesized and linted (when it has resources)."""
    import aws_cdk as cdk

    from gpu_stack.stacks.network import NetworkStack

    data = yaml.safe_load((PROJECT_DIR / "config.yaml").read_text()) | overrides
    app = cdk.App(outdir=str(tmp_path / "cdk.out"))
    NetworkStack(app, "network", config=parse_config(data), env=cdk.Environment(region="us-east-1"))  # as build_app
    app.synth()
    template = json.loads((tmp_path / "cdk.out" / "network.template.json").read_text())
    if template.get("Resources"):
        _cfn_lint([str(tmp_path / "cdk.out" / "network.template.json")])
    return template


def _endpoint_services(template: dict[str, Any]) -> dict[str, str]:
    found = {}
    for resource in _resources(template, "AWS::EC2::VPCEndpoint").values():
        props = resource["Properties"]
        name = json.dumps(props["ServiceName"])
        found[re.findall(r"\.([a-z0-9-]+)\W*$", name)[-1]] = props.get("VpcEndpointType", "")
    return found


def test_vpc_endpoints_keep_aws_calls_inside_the_vpc(tmp_path: Path) -> None:
    created = _network(tmp_path / "created", vpcEndpoints=True)
    services = _endpoint_services(created)
    expected = {"sqs", "states", "ssm", "secretsmanager", "sts", "logs", "api", "dkr", "ecs", "ecs-agent"}
    assert expected <= set(services), services
    assert services["s3"] == "Gateway"
    assert services["dynamodb"] == "Gateway"
    interface = [
        r["Properties"]
        for r in _resources(created, "AWS::EC2::VPCEndpoint").values()
        if r["Properties"].get("VpcEndpointType") == "Interface"
    ]
    assert all(p["PrivateDnsEnabled"] is True for p in interface)
    ingress = [
        rule
        for group in _resources(created, "AWS::EC2::SecurityGroup").values()
        for rule in group["Properties"].get("SecurityGroupIngress", [])
    ]
    assert ingress
    assert all(rule["FromPort"] == 443 for rule in ingress)
    assert all("CidrIp" in rule for rule in ingress)
    # Without the flag: gateway endpoints only (free), no interface endpoints.
    plain = _endpoint_services(_network(tmp_path / "plain"))
    assert set(plain) == {"s3", "dynamodb"}


def test_vpc_endpoints_in_an_imported_vpc(tmp_path: Path) -> None:
    vpc = {
        "vpcId": "vpc-0123456789abcdef0",
        "availabilityZones": ["us-east-1a", "us-east-1b"],
        "privateSubnetIds": ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0aaaaaaaaaaaaaaa2"],
    }
    with pytest.raises(ConfigError, match=r"vpcConfig\.vpcCidr: required with vpcEndpoints"):
        parse_config(
            yaml.safe_load((PROJECT_DIR / "config.yaml").read_text()) | {"vpcConfig": vpc, "vpcEndpoints": True}
        )
    vpc |= {"vpcCidr": "10.20.0.0/16", "privateRouteTableIds": ["rtb-0aaaaaaaaaaaaaaa1", "rtb-0aaaaaaaaaaaaaaa2"]}
    template = _network(tmp_path, vpcConfig=vpc, vpcEndpoints=True)
    assert not _resources(template, "AWS::EC2::VPC")  # imported, not created
    gateways = [
        r["Properties"]
        for r in _resources(template, "AWS::EC2::VPCEndpoint").values()
        if r["Properties"].get("VpcEndpointType") == "Gateway"
    ]
    assert [g["RouteTableIds"] for g in gateways] == [vpc["privateRouteTableIds"]] * 2
    assert "10.20.0.0/16" in json.dumps(template)
    # An imported VPC without the flag gets no endpoints: it may have its own.
    assert not _network(tmp_path / "bare", vpcConfig=vpc).get("Resources")


def test_rag_database_is_private_encrypted_and_reached_by_lambdas_and_router(
    templates: dict[str, dict[str, Any]],
) -> None:
    data = templates["acme-prod-data"]["Resources"]
    (database_id, database), *others = _resources({"Resources": data}, "AWS::RDS::DBInstance").items()
    assert not others
    props = database["Properties"]
    assert props["Engine"] == "postgres"
    assert props["EngineVersion"].startswith("17")
    assert props["StorageEncrypted"] is True
    assert props["PubliclyAccessible"] is False
    assert props["DeletionProtection"] is True  # prod
    assert database["DeletionPolicy"] == "Snapshot"
    assert props["AllocatedStorage"] == "50"
    secret = next(iter(_resources({"Resources": data}, "AWS::SecretsManager::Secret").values()))
    assert secret["Properties"]["Name"] == "acme-prod-rag-db"  # inside the policies' `secret:acme-prod-*`
    parameters = next(iter(_resources({"Resources": data}, "AWS::RDS::DBParameterGroup").values()))
    assert parameters["Properties"]["Parameters"] == {"rds.force_ssl": "1"}
    clients = next(
        k
        for k, v in _resources({"Resources": data}, "AWS::EC2::SecurityGroup").items()
        if v["Properties"]["GroupDescription"] == "may connect to the RAG database"
    )
    ingress = _resources({"Resources": data}, "AWS::EC2::SecurityGroupIngress").values()
    port = {"Fn::GetAtt": [database_id, "Endpoint.Port"]}  # PostgreSQL's, from the database only
    assert [i["Properties"]["FromPort"] for i in ingress if clients in json.dumps(i)] == [port]
    api = templates["acme-prod-api"]["Resources"]
    for function in ("APIHandler", "IngestDocuments"):
        props = api[function]["Properties"]
        assert f"GetAtt{clients}GroupId" in json.dumps(props["VpcConfig"]["SecurityGroupIds"]), function
        assert props["Environment"]["Variables"]["LISA_RAG_PG_SECRET"] == "acme-prod-rag-db"
    router = templates["acme-prod-router"]["Resources"]
    service = next(iter(_resources({"Resources": router}, "AWS::ECS::Service").values()))
    assert f"GetAtt{clients}GroupId" in json.dumps(service["Properties"]["NetworkConfiguration"])
    task = next(iter(_resources({"Resources": router}, "AWS::ECS::TaskDefinition").values()))
    env = task["Properties"]["ContainerDefinitions"][0]["Environment"]
    assert {"Name": "LISA_RAG_PG_SECRET", "Value": "acme-prod-rag-db"} in env


def test_the_authorizer_lambdas_and_the_router_verify_the_same_oidc_issuer(
    templates: dict[str, dict[str, Any]],
) -> None:
    expected = {
        "LISA_AUTHORITY": OIDC_AUTHORITY,
        "LISA_CLIENT_ID": "lisa-ui",
        "LISA_ADMIN_GROUP": "lisa-admins",
        "LISA_JWT_GROUPS_PROPERTY": "groups",
        "LISA_TOKEN_MAX_LIFETIME_DAYS": "365",
    }
    api = templates["acme-prod-api"]["Resources"]
    for name in ("LisaAuthorizer", "APIHandler"):
        variables = api[name]["Properties"]["Environment"]["Variables"]
        assert {key: variables.get(key) for key in expected} == expected, name
    router = templates["acme-prod-router"]["Resources"]
    task = next(iter(_resources({"Resources": router}, "AWS::ECS::TaskDefinition").values()))
    variables = {e["Name"]: e["Value"] for e in task["Properties"]["ContainerDefinitions"][0]["Environment"]}
    assert {key: variables.get(key) for key in expected} == expected


def test_rag_database_password_rotates_inside_the_vpc(templates: dict[str, dict[str, Any]]) -> None:
    data = templates["acme-prod-data"]["Resources"]
    (schedule,) = _resources({"Resources": data}, "AWS::SecretsManager::RotationSchedule").values()
    props = schedule["Properties"]
    assert props["RotationRules"] == {"ScheduleExpression": "rate(30 days)"}
    hosted = props["HostedRotationLambda"]
    assert hosted["RotationType"] == "PostgreSQLSingleUser"
    assert "privateSubnet" in json.dumps(hosted["VpcSubnetIds"])
    group_id = hosted["VpcSecurityGroupIds"]["Fn::GetAtt"][0]
    database_id = next(iter(_resources({"Resources": data}, "AWS::RDS::DBInstance")))
    # The rotation Lambda's group may reach the database's port (it logs in to change the password).
    assert any(
        i["Properties"].get("SourceSecurityGroupId") == {"Fn::GetAtt": [group_id, "GroupId"]}
        and i["Properties"]["FromPort"] == {"Fn::GetAtt": [database_id, "Endpoint.Port"]}
        for i in _resources({"Resources": data}, "AWS::EC2::SecurityGroupIngress").values()
    )


def test_model_load_balancers_log_into_the_access_log_bucket(templates: dict[str, dict[str, Any]]) -> None:
    balancers = _resources(templates["acme-prod-models"], "AWS::ElasticLoadBalancingV2::LoadBalancer").values()
    assert len(balancers) == 5  # config.yaml's three, the vLLM model and the run-time models' shared one
    data = templates["acme-prod-data"]["Resources"]
    bucket_id = next(k for k in data if k.startswith("AccessLogsBucket"))
    for balancer in balancers:
        attributes = {a["Key"]: a["Value"] for a in balancer["Properties"]["LoadBalancerAttributes"]}
        assert attributes["access_logs.s3.enabled"] == "true"
        assert attributes["access_logs.s3.prefix"] == "elb"
        assert f"Ref{bucket_id}" in json.dumps(attributes["access_logs.s3.bucket"])
    (policy,) = (
        p
        for p in _resources({"Resources": data}, "AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": bucket_id}
    )
    writers = [
        s for s in policy["Properties"]["PolicyDocument"]["Statement"] if "/elb/AWSLogs/" in json.dumps(s["Resource"])
    ]
    # us-east-1's Elastic Load Balancing account (older regions) and the log-delivery service (newer ones).
    assert ":iam::127311923021:root" in json.dumps(writers)
    assert all(s["Action"] == "s3:PutObject" for s in writers)


def test_api_gateway_refusals_are_json_and_never_quote_the_request(templates: dict[str, dict[str, Any]]) -> None:
    """As chalicelib/auth/routes.py promises (and runner/chalice_gateway.py does locally): a denial is a 401 with the
    authorizer's message; a method and path no route serves is a 404 (API Gateway's default: a 403 quoting the
    caller's Authorization header)."""
    api = _template(templates, "api")
    api.has_resource_properties(
        "AWS::Serverless::Api",
        {
            "GatewayResponses": {
                "MISSING_AUTHENTICATION_TOKEN": {
                    "StatusCode": 404,
                    "ResponseTemplates": {"application/json": json.dumps({"message": NO_ROUTE})},
                },
                "ACCESS_DENIED": {
                    "StatusCode": 401,
                    "ResponseTemplates": {"application/json": '{"message": "$context.authorizer.message"}'},
                },
                "UNAUTHORIZED": {
                    "StatusCode": 401,
                    "ResponseTemplates": {"application/json": '{"message": $context.error.messageString}'},
                },
            }
        },
    )


def test_the_nlb_admits_only_the_vpc(templates: dict[str, dict[str, Any]]) -> None:
    groups = _resources(templates["acme-prod-router"], "AWS::EC2::SecurityGroup")
    nlb = next(g for g in groups.values() if "NLB" in g["Properties"]["GroupDescription"])
    rules = nlb["Properties"]["SecurityGroupIngress"]
    assert rules
    assert all(r.get("CidrIp") != "0.0.0.0/0" for r in rules), rules
    assert all("Fn::ImportValue" in json.dumps(r["CidrIp"]) or "VpcCidr" in json.dumps(r) for r in rules), rules


def test_the_rag_layer_goes_only_to_the_functions_that_need_it(templates: dict[str, dict[str, Any]]) -> None:
    functions = _resources(templates["acme-prod-api"], "AWS::Serverless::Function")
    with_layers = sorted(k for k, v in functions.items() if v["Properties"].get("Layers"))
    assert with_layers == ["APIHandler", "IngestDocuments"]
    assert "Layers" not in functions["LisaAuthorizer"]["Properties"]
