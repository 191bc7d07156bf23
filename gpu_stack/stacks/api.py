"""The control plane: the Chalice app (packaged by `chalice.cdk`, the CDK v2 construct shipped with chalice), the
Step Functions state machines from `stepfunctions/*.json` (embedded unchanged, Lambda ARNs substituted), and the
data-plane routes of the same REST API proxied through the VPC link to the router (response streaming)."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_wafv2 as wafv2
from chalice.cdk import Chalice
from chalice.utils import to_cfn_resource_name
from constructs import Construct

from chalicelib.aws import presigned_put_origin
from chalicelib.config import LisaConfig
from chalicelib.gateway import NO_ROUTE
from chalicelib.webui.security import ui_security_headers
from gpu_stack.ca_bundle import LAMBDA_FILE as CA_LAMBDA_FILE
from gpu_stack.ca_bundle import ca_environment, ca_layer, read_ca_bundle
from gpu_stack.functions import (
    AppFunctions,
    asl_placeholders,
    logical_id,
    state_machine_stems,
    substitution_function,
)
from gpu_stack.images import lambda_image_uri
from gpu_stack.keys import logs_key
from gpu_stack.names import MODEL_SCHEDULER_ROLE, ResourceNames
from gpu_stack.overrides import role_or, security_group_or
from gpu_stack.policies import ArnParts, StoreKeys, access_for, policy_document
from gpu_stack.runtime_models import RuntimeModels
from gpu_stack.scheduler import ModelSchedules, model_schedules
from gpu_stack.stacks.data import DataStack
from gpu_stack.stacks.webui import serve_web_ui, web_assets_dir
from gpu_stack.suppressions import (
    CHALICE_INLINE_REASON,
    CLUSTER_PLACEHOLDER,
    LAMBDA_VPC_ACCESS,
    LAMBDA_VPC_ACCESS_REASON,
    LOG_DELIVERY,
    NAG_ARN_PARTS,
    NO_RESOURCE_LEVEL_REASON,
    XRAY_WRITE,
    nag_suppression,
    suppress,
    wildcard_resource_suppressions,
)

LIFECYCLE_MACHINE = "model_lifecycle"  # stepfunctions/model_lifecycle.json: what a model schedule starts
# The paths API Gateway hands to the router (the data plane); everything else is the Chalice app.
DATA_PLANE_PATHS = ("/v1/{proxy+}",)
_CHALICE_DEFAULT_QUEUE = "lisa-rag-ingestion"  # Settings.ingestion_queue's default, baked in if the env was unset
_LARGE_TMP_PREFIXES = ("staging_",)  # functions that need 10 GB of /tmp (weight shards)
# Functions too big for a zip package (torch, huggingface_hub): they run lambda_images/staging/ (or stagingImage).
STAGING_IMAGE_FUNCTIONS = ("staging_fetch_from_hub", "staging_convert_shard")
STAGING_DOCKERFILE = "lambda_images/staging/Dockerfile"
# Only what the staging image needs; the rest of the repository (.venv, node_modules, models) stays out of the asset.
CA_BUILD_ARG = "LISA_CA_BUNDLE_B64"  # the Dockerfile's ARG
_STAGING_ASSET_EXCLUDE = [
    "*",
    "!requirements.txt",
    "!lambda_images/staging/*",
    "!chalicelib",
    "!chalicelib/**",
    "**/__pycache__",
]

_AUTHORIZER_SWAGGER = "DefinitionBody.securityDefinitions.lisa_authorizer.x-amazon-apigateway-authorizer"

# API Gateway's own refusals as LISA's error shape. ACCESS_DENIED: the authorizer denied (its context's `message`
# says why); UNAUTHORIZED: no credentials reached the authorizer; MISSING_AUTHENTICATION_TOKEN: no route serves the
# method and path (API Gateway's default is a 403 whose message quotes the caller's Authorization header). The app
# sets no CORS headers (the UI is served from the API's own origin), so neither do these. SAM's GatewayResponses
# redeploys the stage when they change.
_JSON = "application/json"
GATEWAY_RESPONSES: dict[str, Any] = {
    "MISSING_AUTHENTICATION_TOKEN": {
        "StatusCode": 404,
        "ResponseTemplates": {_JSON: json.dumps({"message": NO_ROUTE})},
    },
    "ACCESS_DENIED": {
        "StatusCode": 401,
        "ResponseTemplates": {_JSON: '{"message": "$context.authorizer.message"}'},
    },
    "UNAUTHORIZED": {
        "StatusCode": 401,
        "ResponseTemplates": {_JSON: '{"message": $context.error.messageString}'},
    },
}

# Which functions each layers/<name>/ set is for (layers/<name>/requirements.txt says why); no other function
# (the authorizer, the staging tasks) carries it.
LAYER_FUNCTIONS: dict[str, tuple[str, ...]] = {"rag": ("api_handler", "ingest_documents")}


def layers_per_function(layers: dict[str, Any], functions: AppFunctions) -> dict[str, list[Any]]:
    """function -> the layer ARNs it gets, from `lambdaLayers` (name -> ARN); an unknown layer name is an error."""
    attached: dict[str, list[Any]] = {}
    for name, arn in sorted(layers.items()):
        if name not in LAYER_FUNCTIONS:
            raise ValueError(f"lambdaLayers.{name}: unknown layer (known: {', '.join(sorted(LAYER_FUNCTIONS))})")
        for function in LAYER_FUNCTIONS[name]:
            if function in functions.all:
                attached.setdefault(function, []).append(arn)
    return attached


@contextlib.contextmanager
def _working_dir() -> Iterator[None]:
    """chalice.cdk writes its package under `./chalice.out`; keep that out of the source tree."""
    previous = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="lisa-chalice-") as scratch:
        os.chdir(scratch)
        try:
            yield
        finally:
            os.chdir(previous)


class _StageChalice(Chalice):
    """chalice.cdk's construct packages the stage named like its scope; LISA names the stage from config.yaml."""

    def __init__(self, scope: Construct, construct_id: str, *, stage: str, **kwargs: Any) -> None:
        self._lisa_stage = stage
        with _working_dir():
            super().__init__(scope, construct_id, **kwargs)

    def _package_app(self) -> None:
        self.stage_name = self._lisa_stage
        super()._package_app()


class ApiStack(cdk.Stack):
    """Exposes `chalice` (the construct), `state_machines` (stem → CfnStateMachine), `model_schedules` and
    `api_url`."""

    model_schedules: ModelSchedules | None = None

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: LisaConfig,
        names: ResourceNames,
        project_dir: Path,
        config_dir: Path,
        functions: AppFunctions,
        data: DataStack,
        vpc: ec2.IVpc,
        client_groups: Sequence[ec2.ISecurityGroup],
        router_endpoint: tuple[str, str] | None,
        runtime_models: RuntimeModels | None = None,
        **kwargs: Any,
    ) -> None:
        """`router_endpoint` is (VPC link id, NLB DNS name), or None for a control-plane-only API. The Lambdas join
        `client_groups` (those the model endpoints and the RAG database admit): ingestion and search embed and
        reach the vector store. `runtime_models` (the models stack's) is where the lifecycle workflow puts models
        created at run time."""
        super().__init__(scope, construct_id, **kwargs)
        stems = state_machine_stems(project_dir / "stepfunctions")
        machine_arns = {
            stem: self.format_arn(
                service="states",
                resource="stateMachine",
                resource_name=names.state_machines[stem],
                arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
            )
            for stem in stems
        }
        self.lambda_security_group = security_group_or(
            self,
            "LambdaSecurityGroup",
            config.security_groups.lambda_functions,
            vpc=vpc,
            description="LISA Lambdas (egress to models, vector stores)",
        )
        layers = {
            name: lambda_.LayerVersion(
                self,
                f"Layer-{name}",
                code=lambda_.Code.from_asset(str(Path(path).resolve())),
                compatible_runtimes=[lambda_.Runtime.PYTHON_3_11],
                description=f"LISA layer {name} (layers/{name})",
            ).layer_version_arn
            for name, path in sorted(config.lambda_layers.items())
        }
        stage_config: dict[str, Any] = {
            "environment_variables": names.environment(machine_arns)
            | config.auth_config.environment()
            | config.limits.environment(),
            "subnet_ids": [subnet.subnet_id for subnet in vpc.private_subnets],
            "security_group_ids": [
                self.lambda_security_group.security_group_id,
                *(group.security_group_id for group in client_groups),
            ],
        }
        if config.roles.lambda_functions:  # every function runs as the account's role; Chalice makes none
            stage_config.update(manage_iam_role=False, iam_role_arn=config.roles.lambda_functions)
        per_function = layers_per_function(layers, functions)
        pem = read_ca_bundle(config, config_dir)
        ca_layer_arn = ca_layer(self, pem).layer_version_arn if pem else None
        self.chalice = _StageChalice(
            self, "Chalice", stage=config.stage, source_dir=str(project_dir), stage_config=stage_config
        )

        for function in functions.all:
            resource = self.chalice.get_resource(logical_id(function))
            resource.add_property_override("FunctionName", f"{names.prefix}-{function}")
            image = function in STAGING_IMAGE_FUNCTIONS
            if ca_layer_arn and not image:
                per_function.setdefault(function, []).append(ca_layer_arn)
            # An image takes no layers: the one built here carries the bundle at the same path; `stagingImage` its own.
            if ca_layer_arn and not (image and config.staging_image):
                for name, value in ca_environment(CA_LAMBDA_FILE).items():
                    resource.add_property_override(f"Environment.Variables.{name}", value)
            if function in per_function:
                resource.add_property_override("Layers", per_function[function])
            if function.startswith(_LARGE_TMP_PREFIXES):
                resource.add_property_override("EphemeralStorage", {"Size": 10240})
        if not config.roles.lambda_functions:
            self._function_roles(functions, names, data.keys)
        self._run_from_staging_image(config, project_dir, config_dir, functions, pem)
        for source in functions.event_handlers:
            events = self.chalice.get_resource(logical_id(source))
            # The SQS event source is named when the app is imported; point it at this deployment's queue.
            sqs_source = f"Events.{logical_id(source)}SqsEventSource.Properties"
            events.add_property_override(f"{sqs_source}.Queue", data.ingestion_queue.queue_arn)
            # The handler answers with `batchItemFailures`: only the failed messages return to the queue.
            events.add_property_override(f"{sqs_source}.FunctionResponseTypes", ["ReportBatchItemFailures"])

        self.state_machines: dict[str, sfn.CfnStateMachine] = {}
        for stem in stems:
            self.state_machines[stem] = self._state_machine(project_dir, stem, names, functions, config)
        self._model_lifecycle(names, functions, machine_arns, runtime_models)

        if router_endpoint is not None:
            self._data_plane_routes(*router_endpoint)
        serve_web_ui(
            self,
            self.chalice.get_resource("RestAPI"),
            web_assets_dir(config, project_dir, config_dir),
            ui_security_headers(
                [
                    config.auth_config.authority,
                    presigned_put_origin(names.docs_bucket, region=config.region),
                    *config.auth_config.connect_origins,
                ]
            ),
            data.access_logs_bucket,
            config.roles.bucket_deployment,
        )
        rest_api = self.chalice.get_resource("RestAPI")
        # The authorizer's Deny carries `message`; callers see it as 401 {"message": ...} (as the local gateway does).
        rest_api.add_property_override("GatewayResponses", GATEWAY_RESPONSES)
        # Chalice declares a TOKEN authorizer (Authorization header only). LISA's is a REQUEST authorizer: it sees
        # every header, so `Api-Key` works on the control plane too. No identity source: with result caching off
        # (ttl 0) API Gateway then calls it for every request, and a request without credentials gets its reason.
        rest_api.add_property_override(f"{_AUTHORIZER_SWAGGER}.type", "request")
        rest = config.rest_api_config
        if rest.domain_name and rest.ssl_cert_iam_arn:
            # A custom domain with an ACM certificate (for dev stages: scripts/dev_tls.py, imported into ACM).
            rest_api.add_property_override(
                "Domain",
                {
                    "DomainName": rest.domain_name,
                    "CertificateArn": rest.ssl_cert_iam_arn,
                    "EndpointConfiguration": "REGIONAL",
                    "SecurityPolicy": "TLS_1_2",
                },
            )
            cdk.CfnOutput(self, "CustomDomain", value=f"https://{rest.domain_name}/")
        if config.web_acl_arn:
            self._web_acl(rest_api, config.web_acl_arn)
        self.api_url = cdk.Fn.sub(
            "https://${Api}.execute-api.${AWS::Region}.${AWS::URLSuffix}/" + config.stage + "/",
            {"Api": rest_api.ref},
        )
        cdk.CfnOutput(self, "ApiUrl", value=self.api_url, description="LISA's front door (set as --url)")

    def _function_roles(self, functions: AppFunctions, names: ResourceNames, keys: StoreKeys) -> None:
        """Each Chalice function's role gets its own policy (gpu_stack/policies.py: its stores and their keys) and
        the VPC access policy."""
        parts = ArnParts(partition=cdk.Aws.PARTITION, region=cdk.Aws.REGION, account=cdk.Aws.ACCOUNT_ID)
        vpc_access = iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AWSLambdaVPCAccessExecutionRole")
        for function in functions.all:
            role = self.chalice.get_resource(f"{to_cfn_resource_name(function)}Role")
            assert isinstance(role, iam.CfnRole)
            # Set as properties, not raw overrides: cdk-nag (and any aspect) checks the policies that deploy.
            role.policies = [
                iam.CfnRole.PolicyProperty(
                    policy_name=f"{function}Policy", policy_document=policy_document(function, names, parts, keys)
                )
            ]
            role.managed_policy_arns = [vpc_access.managed_policy_arn]
            # cdk-nag sees the cluster's name as the models stack's export: matched by a pattern
            rendered = dataclasses.replace(names, model_cluster=CLUSTER_PLACEHOLDER)
            suppress(
                role,
                *wildcard_resource_suppressions(policy_document(function, rendered, ArnParts(**NAG_ARN_PARTS), keys)),
                nag_suppression("AwsSolutions-IAM4", LAMBDA_VPC_ACCESS_REASON, [LAMBDA_VPC_ACCESS]),
                nag_suppression("NIST.800.53.R5-IAMNoInlinePolicy", CHALICE_INLINE_REASON),
            )

    def _model_lifecycle(
        self,
        names: ResourceNames,
        functions: AppFunctions,
        machine_arns: dict[str, str],
        runtime: RuntimeModels | None,
    ) -> None:
        """Run-time models: the lifecycle Lambdas get where models go (`LISA_MODEL_*`), and the Lambdas that sync
        model schedules get the schedule group and the scheduler's role, which may start the lifecycle workflow
        only (`LISA_SCHEDULE_*`)."""
        if LIFECYCLE_MACHINE not in machine_arns:
            return
        self.model_schedules = model_schedules(
            self, names, machine_arns[LIFECYCLE_MACHINE], role_name=names.role_name(MODEL_SCHEDULER_ROLE)
        )
        for function in functions.all:
            environment: dict[str, str] = {}
            if access_for(function).manage_model_services and runtime is not None:
                environment |= runtime.environment()
            if access_for(function).manage_schedules:
                environment |= self.model_schedules.environment()
            resource = self.chalice.get_resource(logical_id(function))
            for name, value in sorted(environment.items()):
                resource.add_property_override(f"Environment.Variables.{name}", value)

    def _web_acl(self, rest_api: cdk.CfnResource, web_acl_arn: str) -> None:
        """config.yaml `webAclArn` on the API's stage (the stage SAM makes from Chalice's RestAPI)."""
        association = wafv2.CfnWebACLAssociation(
            self,
            "WebAclAssociation",
            # SAM's `<api>.Stage` reference: the stage's name, and a dependency on the stage SAM creates.
            resource_arn=cdk.Fn.sub(
                "arn:${AWS::Partition}:apigateway:${AWS::Region}::/restapis/${Api}/stages/${Stage}",
                {"Api": rest_api.ref, "Stage": cdk.Fn.ref(f"{rest_api.logical_id}.Stage")},
            ),
            web_acl_arn=web_acl_arn,
        )
        # CDK checks the template before SAM's transform, which is what resolves `RestAPI.Stage`.
        cdk.Validations.of(association).acknowledge(
            cdk.Acknowledgment(id="CloudFormation-Validate::F1020", reason="SAM's reference to the stage it creates")
        )

    def _run_from_staging_image(
        self, config: LisaConfig, project_dir: Path, config_dir: Path, functions: AppFunctions, pem: str | None
    ) -> None:
        """Turn the STAGING_IMAGE_FUNCTIONS Chalice packaged as zips into container-image functions, same handler.
        The image built here gets `pem` (caBundle) as a build argument (lambda_images/staging/write_ca_bundle.sh)."""
        chosen = [f for f in STAGING_IMAGE_FUNCTIONS if f in functions.pure]
        if not chosen:
            return
        if config.staging_image:
            image_uri = lambda_image_uri(self, "StagingImage", config.staging_image, config_dir)
        else:
            image_uri = ecr_assets.DockerImageAsset(
                self,
                "StagingImage",
                directory=str(project_dir),
                file=STAGING_DOCKERFILE,
                exclude=_STAGING_ASSET_EXCLUDE,
                platform=ecr_assets.Platform.LINUX_AMD64,
                build_args={CA_BUILD_ARG: base64.b64encode(pem.encode()).decode()} if pem else None,
            ).image_uri
        for function in chosen:
            resource = self.chalice.get_resource(logical_id(function))
            resource.add_property_override("PackageType", "Image")
            resource.add_property_override("ImageUri", image_uri)
            resource.add_property_override("ImageConfig", {"Command": [functions.handlers[function]]})
            for zip_only in ("Runtime", "Handler", "CodeUri", "Layers"):
                resource.add_property_deletion_override(zip_only)

    def _state_machine(
        self, project_dir: Path, stem: str, names: ResourceNames, functions: AppFunctions, config: LisaConfig
    ) -> sfn.CfnStateMachine:
        definition = (project_dir / "stepfunctions" / f"{stem}.json").read_text()
        arns = {
            key: self.chalice.get_function(logical_id(substitution_function(stem, key, functions))).function_arn
            for key in asl_placeholders(definition)
        }
        role = role_or(
            self,
            f"StateMachineRole-{stem}",
            config.roles.state_machines,
            assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
            description=f"Step Functions {stem}: invoke its own task Lambdas only",
        )
        # Every execution event (inputs and outputs included) goes to CloudWatch Logs; X-Ray traces each execution.
        log_group = logs.LogGroup(
            self,
            f"StateMachineLogs-{stem}",
            log_group_name=f"/aws/vendedlogs/states/{names.state_machines[stem]}",
            retention=logs.RetentionDays.THREE_MONTHS,
            encryption_key=logs_key(self, config.kms_keys.logs),
        )
        statements = [iam.PolicyStatement(actions=[*LOG_DELIVERY, *XRAY_WRITE], resources=["*"])]
        suppressions = [nag_suppression("AwsSolutions-IAM5", NO_RESOURCE_LEVEL_REASON, ["Resource::*"])]
        if arns:
            statements.append(
                iam.PolicyStatement(
                    actions=["lambda:InvokeFunction"],
                    resources=[*arns.values(), *(f"{arn}:*" for arn in arns.values())],
                )
            )
            qualified = [f"Resource::<{logical_id(substitution_function(stem, k, functions))}.Arn>:*" for k in arns]
            suppressions.append(
                nag_suppression(
                    "AwsSolutions-IAM5",
                    "versions and aliases (`<arn>:*`) of the machine's own task functions only",
                    qualified,
                )
            )
        # A managed policy, not an inline one (NIST 800-53 IAMNoInlinePolicy); none on the account's own role.
        policy = None
        if not config.roles.state_machines:
            policy = iam.ManagedPolicy(self, f"StateMachinePolicy-{stem}", roles=[role], statements=statements)
            suppress(policy, *suppressions)
        machine = sfn.CfnStateMachine(
            self,
            f"StateMachine-{stem}",
            state_machine_name=names.state_machines[stem],
            role_arn=role.role_arn,
            definition_string=definition,
            definition_substitutions=arns,
            logging_configuration=sfn.CfnStateMachine.LoggingConfigurationProperty(
                level="ALL",
                include_execution_data=True,
                destinations=[
                    sfn.CfnStateMachine.LogDestinationProperty(
                        cloud_watch_logs_log_group=sfn.CfnStateMachine.CloudWatchLogsLogGroupProperty(
                            log_group_arn=log_group.log_group_arn
                        )
                    )
                ],
            ),
            tracing_configuration=sfn.CfnStateMachine.TracingConfigurationProperty(enabled=True),
        )
        if policy is not None:
            machine.node.add_dependency(policy)
        return machine

    def _data_plane_routes(self, vpc_link_id: str, nlb_dns: str) -> None:
        rest_api = self.chalice.get_resource("RestAPI")
        for path in DATA_PLANE_PATHS:
            target = path.replace("{proxy+}", "{proxy}")
            integration = {
                "type": "http_proxy",
                "httpMethod": "ANY",
                "uri": f"http://{nlb_dns}{target}",
                "connectionType": "VPC_LINK",
                "connectionId": vpc_link_id,
                "passthroughBehavior": "when_no_match",
                "requestParameters": {"integration.request.path.proxy": "method.request.path.proxy"},
                "responseTransferMode": "STREAM",  # SSE token streams pass through as they are produced
            }
            method = {
                "parameters": [{"name": "proxy", "in": "path", "required": True, "type": "string"}],
                "responses": {},
                "x-amazon-apigateway-integration": integration,
            }
            rest_api.add_property_override(f"DefinitionBody.paths.{path}", {"x-amazon-apigateway-any-method": method})
