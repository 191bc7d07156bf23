"""cdk-nag (AwsSolutions + NIST 800-53 R5) over every stack: example_config.yaml, a minimal config, the minimal one
with a RAG database, and the prod config tests/test_deploy_stacks.py asserts on.

Each config is synthesized once per session (both packs attached). Every error must be fixed or suppressed next to
its construct with a reason (gpu_stack/suppressions.py; the list is in docs/deploy.md). Counts per pack and stack:
`python -m gpu_stack.nag --config <file> [--list]`.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "1")
pytest.importorskip("cdk_nag")

from chalicelib import aws
from chalicelib.config import ConfigError, load_config, parse_config
from gpu_stack.app import PROJECT_DIR
from gpu_stack.nag import PACKS, nag_findings
from tests.test_deploy_stacks import _cfn_lint, write_prod_config

sys.path.insert(0, str(PROJECT_DIR / "scripts"))
from dev_tls import create_certificate

# The least a deployment needs (no models, no RAG database, no custom domain, a `dev` stage), in an account that
# requires a permissions boundary on every role and no inline policies.
BOUNDARY = "arn:aws:iam::123456789012:policy/lisa-boundary"
MINIMAL_CONFIG = {
    "deploymentName": "lisa",
    "s3BucketModels": "lisa-models",
    "authConfig": {"adminGroup": "admins"},
    "permissionsBoundary": BOUNDARY,
    "convertInlinePoliciesToManaged": True,
}
# With the RDS database of the pgvector repositories and subnets that reach AWS through VPC endpoints only.
CONFIGS = {
    "minimal": MINIMAL_CONFIG,
    "rag-database": {**MINIMAL_CONFIG, "ragDatabase": {"instanceType": "t4g.medium"}, "vpcEndpoints": True},
}
# The prod config (models, RAG database) with every enterprise option: the account's roles, security groups, log
# key and WAF web ACL instead of created ones.
ACCOUNT = "123456789012"
ENTERPRISE: dict[str, Any] = {
    "permissionsBoundary": BOUNDARY,
    "convertInlinePoliciesToManaged": True,
    "roles": {
        key: f"arn:aws:iam::{ACCOUNT}:role/acme-{key}"
        for key in (
            *("lambdaFunctions", "stateMachines", "routerTask", "modelTasks", "taskExecution", "gpuInstances"),
            *("flowLogs", "bucketDeployment", "bucketNotifications"),
        )
    },
    "securityGroups": {
        key: f"sg-0123456789abcdef{i}"
        for i, key in enumerate(
            (
                *("lambdaFunctions", "router", "routerLoadBalancer", "modelLoadBalancers", "gpuInstances"),
                *("ragDatabase", "ragDatabaseClients"),
            )
        )
    },
    "kmsKeys": {
        kind: f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{i}1111111-2222-3333-4444-555555555555"
        for i, kind in enumerate(("logs", "buckets", "tables", "queues", "database"))
    },
    "webAclArn": f"arn:aws:wafv2:us-east-1:{ACCOUNT}:regional/webacl/acme/a1b2c3d4-5678-90ab-cdef-111111111111",
}
BOUNDED = {*CONFIGS, "enterprise"}  # the configs with a permissions boundary and managed policies only


@dataclass(frozen=True)
class Checked:
    """One config's synth: its name, its unsuppressed cdk-nag errors and the templates written."""

    name: str
    errors: list[str]
    templates: dict[str, dict[str, Any]]
    outdir: Path


@pytest.fixture(scope="module", params=["example", "prod", "enterprise", *CONFIGS])
def checked(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Checked:
    """Every stack of the config synthesized once with both packs attached."""
    base = tmp_path_factory.mktemp(f"nag-{request.param}")
    if request.param == "example":
        config_path = PROJECT_DIR / "example_config.yaml"
    elif request.param in ("prod", "enterprise"):
        config_path = write_prod_config(base)
        if request.param == "enterprise":
            cert, _ = create_certificate("proxy.corp.example", base / "tls")  # a private CA's certificate
            data = {**yaml.safe_load(config_path.read_text()), **ENTERPRISE, "caBundle": str(cert.relative_to(base))}
            config_path.write_text(yaml.safe_dump(data))
    else:
        config_path = base / "config.yaml"
        config_path.write_text(yaml.safe_dump(CONFIGS[request.param]))
    outdir = base / "cdk.out"
    try:
        found = nag_findings(load_config(config_path), config_dir=config_path.parent, outdir=str(outdir))
    finally:
        aws.reset()  # settings read meanwhile named the synthesized deployment's resources
    templates = {p.name: json.loads(p.read_text()) for p in outdir.glob("*.template.json")}
    return Checked(request.param, sorted(str(f) for f in found), templates, outdir)


def test_every_stack_passes_both_packs(checked: Checked) -> None:
    assert len(checked.templates) == 5
    assert not checked.errors, (
        f"{len(checked.errors)} unsuppressed cdk-nag errors ({', '.join(PACKS)}) for the {checked.name} config:\n"
        + "\n".join(checked.errors)
    )


def test_every_role_gets_the_configured_permissions_boundary(checked: Checked) -> None:
    roles = {
        f"{name}:{key}": resource["Properties"].get("PermissionsBoundary")
        for name, template in checked.templates.items()
        for key, resource in template["Resources"].items()
        if resource["Type"] == "AWS::IAM::Role"
    }
    chalice_roles = any(key.endswith("-api.template.json:ApiHandlerRole") for key in roles)  # they count too
    assert chalice_roles is (checked.name != "enterprise")  # there, the account's role runs the functions
    expected = BOUNDARY if checked.name in BOUNDED else None
    assert {key: value for key, value in roles.items() if value != expected} == {}


def test_every_log_group_is_encrypted_with_a_key_cloudwatch_logs_may_use(checked: Checked) -> None:
    groups = 0
    for name, template in checked.templates.items():
        resources = template["Resources"]
        for key, group in resources.items():
            if group["Type"] != "AWS::Logs::LogGroup":
                continue
            groups += 1
            if checked.name == "enterprise":  # the configured key (test_enterprise_options_...)
                assert group["Properties"]["KmsKeyId"] == ENTERPRISE["kmsKeys"]["logs"]
                continue
            (key_id, _) = group["Properties"]["KmsKeyId"]["Fn::GetAtt"]
            statements = resources[key_id]["Properties"]["KeyPolicy"]["Statement"]
            (service,) = [s for s in statements if s["Principal"].get("Service") == "logs.us-east-1.amazonaws.com"]
            assert "kms:GenerateDataKey*" in service["Action"], f"{name}:{key}"
            assert ":log-group:*" in json.dumps(service["Condition"]["ArnLike"]), f"{name}:{key}"
            assert resources[key_id]["Properties"]["EnableKeyRotation"] is True
    assert groups >= 2  # the state machine's and the router's at least


def test_inline_policies_become_managed_ones_when_configured(checked: Checked) -> None:
    inline = sorted(
        f"{name}:{key}"
        for name, template in checked.templates.items()
        for key, resource in template["Resources"].items()
        if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::Group", "AWS::IAM::User")
        or (resource["Type"] == "AWS::IAM::Role" and resource["Properties"].get("Policies"))
    )
    api = next(t for n, t in checked.templates.items() if n.endswith("-api.template.json"))["Resources"]
    if checked.name == "enterprise":  # no Chalice roles at all: the account's role
        assert inline == []
        assert "ApiHandlerRole" not in api
        return
    handler_arns = json.dumps(api["ApiHandlerRole"]["Properties"]["ManagedPolicyArns"])
    if checked.name not in CONFIGS:  # the option is off: CDK's and Chalice's inline policies
        assert inline
        assert "ApiHandlerRoleManaged" not in handler_arns
        return
    assert inline == []
    (converted,) = [k for k in api if k.startswith("ChaliceChaliceAppApiHandlerRoleManaged")]
    assert {"Ref": converted} in api["ApiHandlerRole"]["Properties"]["ManagedPolicyArns"]
    document = json.dumps(api[converted]["Properties"]["PolicyDocument"])
    assert "table/lisa-dev-api-tokens" in document  # the function's own policy, as gpu_stack/policies.py renders it
    assert "dynamodb:PutItem" in document
    _cfn_lint(sorted(str(p) for p in checked.outdir.glob("*.template.json")))


def test_a_permissions_boundary_must_be_a_policy_arn() -> None:
    with pytest.raises(ConfigError, match="permissionsBoundary"):
        parse_config({**MINIMAL_CONFIG, "permissionsBoundary": "arn:aws:iam::123456789012:role/not-a-policy"})


def test_the_packs_do_report_an_unsuppressed_error(tmp_path: Path) -> None:
    """The harness itself: an unsuppressed public, unlogged bucket in a stack is reported by both packs."""
    import aws_cdk as cdk
    import cdk_nag
    from aws_cdk import aws_s3 as s3

    from gpu_stack.nag import collect_errors

    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "probe")
    s3.Bucket(stack, "Plain")
    cdk.Aspects.of(stack).add(cdk_nag.AwsSolutionsChecks())
    cdk.Aspects.of(stack).add(cdk_nag.NIST80053R5Checks())
    rules = {f.rule for f in collect_errors(app.synth())}
    assert {"AwsSolutions-S1", "NIST.800.53.R5-S3BucketLoggingEnabled"} <= rules


def _of_type(checked: Checked, stack: str, kind: str) -> dict[str, dict[str, Any]]:
    template = checked.templates[next(n for n in checked.templates if n.endswith(f"-{stack}.template.json"))]
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def test_enterprise_options_replace_what_the_stacks_create(checked: Checked) -> None:
    """Roles, security groups, the log key and the WAF ACL from config.yaml, or created ones when not configured."""
    associations = [
        a for stack in ("api", "models") for a in _of_type(checked, stack, "AWS::WAFv2::WebACLAssociation").values()
    ]
    functions = _of_type(checked, "api", "AWS::Serverless::Function")
    roles = {k: v["Properties"].get("Role") for k, v in functions.items()}
    if checked.name != "enterprise":
        assert associations == []
        assert all("Fn::GetAtt" in role for role in roles.values())  # Chalice's own roles
        assert _of_type(checked, "router", "AWS::EC2::SecurityGroup")
        assert _of_type(checked, "api", "AWS::KMS::Key")
        return
    arn = ENTERPRISE["roles"]
    groups = ENTERPRISE["securityGroups"]
    assert set(roles.values()) == {arn["lambdaFunctions"]}
    handler = functions["APIHandler"]["Properties"]["VpcConfig"]["SecurityGroupIds"]
    assert groups["lambdaFunctions"] in handler
    machines = _of_type(checked, "api", "AWS::StepFunctions::StateMachine").values()
    assert len(machines) == 2  # staging, model_lifecycle
    assert {machine["Properties"]["RoleArn"] for machine in machines} == {arn["stateMachines"]}
    for stack, role in (("router", "routerTask"), ("models", "modelTasks")):
        for task in _of_type(checked, stack, "AWS::ECS::TaskDefinition").values():
            assert task["Properties"]["TaskRoleArn"] == arn[role]
            assert task["Properties"]["ExecutionRoleArn"] == arn["taskExecution"]
    assert _of_type(checked, "router", "AWS::IAM::Role") == {}
    assert _of_type(checked, "router", "AWS::EC2::SecurityGroup") == {}
    (service,) = _of_type(checked, "router", "AWS::ECS::Service").values()
    assert groups["router"] in service["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"]["SecurityGroups"]
    (nlb,) = _of_type(checked, "router", "AWS::ElasticLoadBalancingV2::LoadBalancer").values()
    assert nlb["Properties"]["SecurityGroups"] == [groups["routerLoadBalancer"]]
    albs = _of_type(checked, "models", "AWS::ElasticLoadBalancingV2::LoadBalancer")
    assert {json.dumps(a["Properties"]["SecurityGroups"]) for a in albs.values()} == {
        json.dumps([groups["modelLoadBalancers"]])
    }
    profiles = _of_type(checked, "models", "AWS::IAM::InstanceProfile").values()
    assert {p["Properties"]["Roles"][0] for p in profiles} == {"acme-gpuInstances"}
    templates = _of_type(checked, "models", "AWS::EC2::LaunchTemplate").values()
    assert all(t["Properties"]["LaunchTemplateData"]["SecurityGroupIds"] == [groups["gpuInstances"]] for t in templates)
    # CDK's own handlers and the flow logs run as the account's roles; the database sits in the account's groups.
    (flow_log,) = _of_type(checked, "network", "AWS::EC2::FlowLog").values()
    assert flow_log["Properties"]["DeliverLogsPermissionArn"] == arn["flowLogs"]
    assert _of_type(checked, "network", "AWS::IAM::Role") == {}
    handlers = {
        **_of_type(checked, "api", "AWS::Lambda::Function"),
        **_of_type(checked, "data", "AWS::Lambda::Function"),
    }
    (deployment,) = [v for k, v in handlers.items() if k.startswith("CustomCDKBucketDeployment")]
    assert deployment["Properties"]["Role"] == arn["bucketDeployment"]
    (notifications,) = [v for k, v in handlers.items() if k.startswith("BucketNotificationsHandler")]
    assert notifications["Properties"]["Role"] == arn["bucketNotifications"]
    assert _of_type(checked, "data", "AWS::IAM::Role") == {}
    assert _of_type(checked, "data", "AWS::EC2::SecurityGroup") == {}
    (database,) = _of_type(checked, "data", "AWS::RDS::DBInstance").values()
    assert database["Properties"]["VPCSecurityGroups"] == [groups["ragDatabase"]]
    (rotation,) = _of_type(checked, "data", "AWS::SecretsManager::RotationSchedule").values()
    assert rotation["Properties"]["HostedRotationLambda"]["VpcSecurityGroupIds"] == groups["ragDatabaseClients"]
    assert groups["ragDatabaseClients"] in handler
    # The account's key for every log group and data store; no key created.
    for stack in ("network", "data", "api", "models", "router"):
        assert _of_type(checked, stack, "AWS::KMS::Key") == {}
        for group in _of_type(checked, stack, "AWS::Logs::LogGroup").values():
            assert group["Properties"]["KmsKeyId"] == ENTERPRISE["kmsKeys"]["logs"]
    # The web ACL on the API's stage (SAM's stage reference) and on every model load balancer.
    assert {a["Properties"]["WebACLArn"] for a in associations} == {ENTERPRISE["webAclArn"]}
    (stage,) = [a for a in associations if "restapis" in json.dumps(a)]
    assert {"Ref": "RestAPI.Stage"} in stage["Properties"]["ResourceArn"]["Fn::Sub"][1].values()
    assert len(associations) == len(albs) + 1
    _cfn_lint(sorted(str(p) for p in checked.outdir.glob("*.template.json")))


def test_the_ca_bundle_reaches_every_lambda_and_container(checked: Checked) -> None:
    """caBundle: zip Lambdas get the file from a layer, ECS tasks from an init container; all get the variables."""
    functions = _of_type(checked, "api", "AWS::Serverless::Function")
    tasks = [t for s in ("router", "models") for t in _of_type(checked, s, "AWS::ECS::TaskDefinition").values()]
    if checked.name != "enterprise":
        assert "AWS_CA_BUNDLE" not in json.dumps([functions, tasks])
        return
    layers = _of_type(checked, "api", "AWS::Lambda::LayerVersion")
    (layer_id,) = [k for k, v in layers.items() if "caBundle" in v["Properties"]["Description"]]
    key = layers[layer_id]["Properties"]["Content"]["S3Key"]  # `<asset hash>.zip`; cdk.out has `asset.<hash>/`
    asset = checked.outdir / f"asset.{key.removesuffix('.zip')}"
    cert = next((checked.outdir.parent / "tls").glob("*cert*.pem"))
    assert (asset / "lisa-ca" / "bundle.pem").read_text() == cert.read_text()  # the configured file, unchanged
    expected = dict.fromkeys(("AWS_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"), "/opt/lisa-ca/bundle.pem")
    images = 0
    for name, function in functions.items():
        props = function["Properties"]
        assert expected.items() <= props["Environment"]["Variables"].items(), name
        if props.get("PackageType") == "Image":  # no layers: the staging image built here carries the file
            images += 1
            continue
        assert {"Ref": layer_id} in props["Layers"], name
    assert images == 2
    _the_staging_image_carries_the_bundle(checked, cert.read_text())
    assert len(tasks) == 5  # the router's and the four models'
    for task in tasks:
        containers = {c["Name"]: c for c in task["Properties"]["ContainerDefinitions"]}
        writer = containers.pop("ca-bundle")
        assert writer["Essential"] is False
        assert {"Name": "LISA_CA_BUNDLE_PEM", "Value": cert.read_text()} in writer["Environment"]
        assert writer["EntryPoint"][:2] == ["sh", "-c"]
        assert "/lisa-ca/bundle.pem" in writer["EntryPoint"][2]
        for name, container in containers.items():
            assert {"ContainerName": "ca-bundle", "Condition": "SUCCESS"} in container["DependsOn"], name
            assert {"ContainerPath": "/lisa-ca", "ReadOnly": True, "SourceVolume": "lisa-ca"} in container[
                "MountPoints"
            ], name
            variables = {e["Name"]: e["Value"] for e in container["Environment"]}
            assert variables["SSL_CERT_FILE"] == variables["AWS_CA_BUNDLE"] == "/lisa-ca/bundle.pem", name


def _the_staging_image_carries_the_bundle(checked: Checked, pem: str) -> None:
    """The staging image's build gets the bundle as its build argument, and the Dockerfile's script (run here as
    the image build runs it) writes exactly that file where the variables point; nothing without a bundle."""
    import base64
    import subprocess

    from gpu_stack.stacks.api import CA_BUILD_ARG

    (manifest,) = checked.outdir.glob("*-api.assets.json")
    images = json.loads(manifest.read_text())["dockerImages"]
    (staging,) = [
        i["source"] for i in images.values() if i["source"].get("dockerFile", "").endswith("staging/Dockerfile")
    ]
    encoded = staging["dockerBuildArgs"][CA_BUILD_ARG]
    dockerfile = (PROJECT_DIR / staging["dockerFile"]).read_text()
    assert f'RUN sh /tmp/write_ca_bundle.sh "${CA_BUILD_ARG}"' in dockerfile
    script = PROJECT_DIR / "lambda_images/staging/write_ca_bundle.sh"
    target = checked.outdir.parent / "image-root/opt/lisa-ca/bundle.pem"
    subprocess.run(["sh", str(script), encoded, str(target)], check=True)
    assert target.read_text() == pem
    subprocess.run(["sh", str(script), "", str(target) + ".none"], check=True)
    assert not Path(str(target) + ".none").exists()
    bad = subprocess.run(["sh", str(script), base64.b64encode(b"hello").decode(), str(target)], check=False)
    assert bad.returncode != 0


def test_a_ca_bundle_must_be_a_readable_pem_file(tmp_path: Path) -> None:
    from gpu_stack.ca_bundle import read_ca_bundle

    (tmp_path / "not-a-cert.pem").write_text("hello")
    with pytest.raises(ConfigError, match="caBundle"):
        parse_config({**MINIMAL_CONFIG, "caBundle": "ca.txt"})
    for name, reason in (("missing.pem", "cannot read"), ("not-a-cert.pem", "holds no PEM certificate")):
        with pytest.raises(ValueError, match=f"caBundle '{name}': .*{reason}"):
            read_ca_bundle(parse_config({**MINIMAL_CONFIG, "caBundle": name}), tmp_path)


def test_the_commented_enterprise_examples_in_example_config_are_valid() -> None:
    lines = (PROJECT_DIR / "example_config.yaml").read_text().splitlines()
    start = lines.index("# convertInlinePoliciesToManaged: true")
    end = next(i for i, line in enumerate(lines) if line.startswith("# webAclArn:"))
    options = yaml.safe_load("\n".join(line.removeprefix("# ") for line in lines[start : end + 1]))
    config = parse_config({**MINIMAL_CONFIG, **options})
    assert config.roles.lambda_functions == options["roles"]["lambdaFunctions"]
    assert config.security_groups.gpu_instances == options["securityGroups"]["gpuInstances"]
    assert config.kms_keys.logs == options["kmsKeys"]["logs"]
    assert config.kms_keys.queues == options["kmsKeys"]["queues"]
    assert config.roles.bucket_notifications == options["roles"]["bucketNotifications"]
    assert config.security_groups.rag_database_clients == options["securityGroups"]["ragDatabaseClients"]
    assert config.web_acl_arn == options["webAclArn"]
    assert config.ca_bundle == "corp-ca-bundle.pem"
    with pytest.raises(ConfigError, match=r"roles\.routerTask"):
        parse_config({**MINIMAL_CONFIG, "roles": {"routerTask": "arn:aws:iam::123456789012:policy/not-a-role"}})
    with pytest.raises(ConfigError, match=r"ragDatabase needs securityGroups\.ragDatabaseClients"):
        parse_config({**MINIMAL_CONFIG, "securityGroups": {"ragDatabase": "sg-0123456789abcdef5"}})
    with pytest.raises(ConfigError, match=r"kmsKeys\.tables"):
        parse_config({**MINIMAL_CONFIG, "kmsKeys": {"tables": "alias/lisa"}})
    with pytest.raises(ConfigError, match=r"securityGroups\.router"):
        parse_config({**MINIMAL_CONFIG, "securityGroups": {"router": "router-sg"}})


def _key_ref(checked: Checked, kind: str) -> Any:
    """How a store refers to its `kind` key: the configured ARN (enterprise), else the data stack's key."""
    if checked.name == "enterprise":
        return ENTERPRISE["kmsKeys"][kind]
    return {"Fn::GetAtt": [_one_key(checked, kind), "Arn"]}


def _one_key(checked: Checked, kind: str) -> str:
    (key_id,) = [k for k in _of_type(checked, "data", "AWS::KMS::Key") if k.startswith(f"{kind.capitalize()}Key")]
    return key_id


def test_every_data_store_is_encrypted_with_its_kinds_customer_managed_key(checked: Checked) -> None:
    """Tables (every TableSpec), the models/documents buckets, the queue and DLQ, the database and its secret, each
    under the key config.yaml `kmsKeys.<kind>` names, else the data stack's rotated key."""
    from chalicelib.tables import TABLES

    tables = _of_type(checked, "data", "AWS::DynamoDB::Table")
    assert len(tables) == len(TABLES)
    for name, table in tables.items():
        sse = table["Properties"]["SSESpecification"]
        assert sse == {"KMSMasterKeyId": _key_ref(checked, "tables"), "SSEEnabled": True, "SSEType": "KMS"}, name
    buckets = _of_type(checked, "data", "AWS::S3::Bucket")
    for name, bucket in buckets.items():
        (rule,) = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        if name.startswith("AccessLogsBucket"):  # ELB access-log delivery writes to SSE-S3 buckets only
            assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
            continue
        assert rule == {
            "BucketKeyEnabled": True,
            "ServerSideEncryptionByDefault": {
                "KMSMasterKeyID": _key_ref(checked, "buckets"),
                "SSEAlgorithm": "aws:kms",
            },
        }, name
    assert len(buckets) == 3
    queues = _of_type(checked, "data", "AWS::SQS::Queue")
    assert len(queues) == 2
    for name, queue in queues.items():
        assert queue["Properties"]["KmsMasterKeyId"] == _key_ref(checked, "queues"), name
        assert "SqsManagedSseEnabled" not in queue["Properties"], name
    databases = _of_type(checked, "data", "AWS::RDS::DBInstance")
    secrets = _of_type(checked, "data", "AWS::SecretsManager::Secret")
    assert len(databases) == len(secrets) == (checked.name in ("prod", "enterprise", "rag-database"))
    for database in databases.values():
        assert database["Properties"]["KmsKeyId"] == _key_ref(checked, "database")
        assert database["Properties"]["StorageEncrypted"] is True
    for secret in secrets.values():
        assert secret["Properties"]["KmsKeyId"] == _key_ref(checked, "database")
    for schedule in _of_type(checked, "data", "AWS::SecretsManager::RotationSchedule").values():
        assert schedule["Properties"]["HostedRotationLambda"]["KmsKeyArn"] == _key_ref(checked, "database")
    # No SNS topic anywhere: ECS managed draining replaces CDK's drain hook (topic, Lambda, roles).
    assert [
        t for n in ("network", "data", "models", "router", "api") for t in _of_type(checked, n, "AWS::SNS::Topic")
    ] == []
    assert _of_type(checked, "models", "AWS::Lambda::Function") == {}
    for provider in _of_type(checked, "models", "AWS::ECS::CapacityProvider").values():
        assert provider["Properties"]["AutoScalingGroupProvider"]["ManagedDraining"] == "ENABLED"
    if checked.name == "enterprise":
        return
    data = _of_type(checked, "data", "AWS::KMS::Key")
    assert all(key["Properties"]["EnableKeyRotation"] is True for key in data.values())
    # S3 may encrypt the documents bucket's notifications to the queue, for that bucket only.
    (docs_bucket,) = [k for k in buckets if k.startswith("DocsBucket")]
    statements = data[_one_key(checked, "queues")]["Properties"]["KeyPolicy"]["Statement"]
    (s3_use,) = [s for s in statements if s["Principal"].get("Service") == "s3.amazonaws.com"]
    assert s3_use["Condition"]["ArnEquals"] == {"aws:SourceArn": {"Fn::GetAtt": [docs_bucket, "Arn"]}}
    assert sorted(s3_use["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    services = [
        s for k in data.values() for s in k["Properties"]["KeyPolicy"]["Statement"] if "Service" in s["Principal"]
    ]
    assert services == [s3_use]  # no other service on the data keys: callers use them through IAM grants


def _role_documents(resources: dict[str, Any], role: str) -> list[dict[str, Any]]:
    """Every policy document attached to `role` in one template: inline, AWS::IAM::Policy, managed."""
    props = resources[role]["Properties"]
    documents = [p["PolicyDocument"] for p in props.get("Policies", [])]
    attached = {json.dumps(ref) for ref in props.get("ManagedPolicyArns", [])}
    for key, resource in resources.items():
        if resource["Type"] not in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            continue
        roles = resource["Properties"].get("Roles", [])
        if {"Ref": role} in roles or json.dumps({"Ref": key}) in attached:
            documents.append(resource["Properties"]["PolicyDocument"])
    return documents


def _key_grants(resources: dict[str, Any], role: str) -> dict[str, tuple[list[str], str, dict[str, Any]]]:
    """The role's KMS statements: Sid -> (actions, the key its resource names, condition)."""
    grants = {}
    for document in _role_documents(resources, role):
        for statement in document["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if any(a.startswith("kms:") for a in actions):
                (resource,) = (
                    statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
                )
                key = json.dumps(resource)
                kind = next((k for k in ("Tables", "Buckets", "Queues", "Database", "Topics") if f"{k}Key" in key), key)
                grants[statement.get("Sid", key)] = (sorted(actions), kind, statement.get("Condition", {}))
    return grants


TABLE_READ_KEY = ["kms:Decrypt", "kms:DescribeKey"]
TABLE_WRITE_KEY = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"]


def test_every_caller_gets_exactly_the_key_grants_of_the_stores_it_uses(checked: Checked) -> None:
    """Lambdas, the router task, the model tasks (gpu_stack/policies.py), nothing for the state machines; each
    grant names its store's key and its service (kms:ViaService)."""
    if checked.name == "enterprise":  # the account's roles: docs/deploy.md lists the key grants they need
        assert _of_type(checked, "router", "AWS::IAM::Role") == {}
        return
    database = checked.name in ("prod", "rag-database")
    secret = {"RagDatabaseSecretKey": (["kms:Decrypt"], "Database")} if database else {}
    expected = {
        "ApiHandlerRole": {
            "TablesKey": (TABLE_WRITE_KEY, "Tables"),
            "BucketsKey": (["kms:Decrypt", "kms:GenerateDataKey"], "Buckets"),
            **secret,
        },
        "LisaAuthorizerRole": {"TablesKey": (TABLE_READ_KEY, "Tables")},
        "IngestDocumentsRole": {
            "TablesKey": (TABLE_WRITE_KEY, "Tables"),
            "BucketsKey": (["kms:Decrypt"], "Buckets"),
            "IngestionQueueKey": (["kms:Decrypt"], "Queues"),
            **secret,
        },
        "StagingPublishRole": {
            "TablesKey": (TABLE_WRITE_KEY, "Tables"),
            "BucketsKey": (["kms:Decrypt", "kms:GenerateDataKey"], "Buckets"),
        },
    }
    api = next(t for n, t in checked.templates.items() if n.endswith("-api.template.json"))["Resources"]
    for role, grants in expected.items():
        found = _key_grants(api, role)
        assert {sid: g[:2] for sid, g in found.items()} == grants, role
        for sid, (_, _, condition) in found.items():
            assert "kms:ViaService" in condition["StringLike"], (role, sid)
        if "BucketsKey" in found:
            assert "kms:EncryptionContext:aws:s3:arn" in found["BucketsKey"][2]["StringLike"], role
    for role in _of_type(checked, "api", "AWS::IAM::Role"):
        if role.startswith("StateMachineRole"):
            assert _key_grants(api, role) == {}, role  # it invokes Lambdas only
    router = next(t for n, t in checked.templates.items() if n.endswith("-router.template.json"))["Resources"]
    (task_role,) = [k for k in _of_type(checked, "router", "AWS::IAM::Role") if k.startswith("TaskTaskRole")]
    assert {sid: g[:2] for sid, g in _key_grants(router, task_role).items()} == {
        "TablesKey": (TABLE_WRITE_KEY, "Tables"),  # it writes usage batches and counts limit windows
        **secret,
    }
    models = next(t for n, t in checked.templates.items() if n.endswith("-models.template.json"))["Resources"]
    task_roles = [k for k in _of_type(checked, "models", "AWS::IAM::Role") if "TaskRole" in k]
    assert len(task_roles) == len(_of_type(checked, "models", "AWS::ECS::TaskDefinition"))
    for role in task_roles:  # their weights only: the models bucket's key, for reading
        ((sid, (actions, kind, condition)),) = _key_grants(models, role).items()
        assert (sid, actions, kind) == ("BucketsKey", ["kms:Decrypt"], "Buckets"), role
        assert "docs" not in json.dumps(condition), role
