"""The chat UI in AWS: a private bucket filled from the built UI, served through API Gateway S3 integrations at `/`,
`/reference` (the API reference page) and `/assets/{file}` of the same REST API, so the UI and the API share one
origin (and one stage path)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3_deployment
from constructs import Construct

from chalicelib.config import LisaConfig
from chalicelib.webui import UI_PAGES
from gpu_stack.overrides import imported_role
from gpu_stack.stacks.data import log_access, secure_bucket_options
from gpu_stack.suppressions import TASK_ROLE_INLINE_REASON, nag_suppression, suppress, suppress_cdk_handler

# The UI's paths (public, static): its pages (the chat UI, the API reference) and their hashed bundles.
WEB_UI_PATHS = (*UI_PAGES, "/assets/{file}")
WEB_ASSETS_DEFAULT = "webui/dist"


def web_assets_dir(config: LisaConfig, project_dir: Path, config_dir: Path) -> Path:
    """The built chat UI: `webAssets` (relative to the config's folder) or the repository's `webui/dist`."""
    assets = (config_dir / config.web_assets) if config.web_assets else project_dir / WEB_ASSETS_DEFAULT
    if not (assets / "index.html").is_file():
        key = f"webAssets {config.web_assets!r}" if config.web_assets else WEB_ASSETS_DEFAULT
        raise ValueError(f"{key}: no built chat UI at {assets.resolve()} (build it with `make webui`)")
    return assets.resolve()


def serve_web_ui(
    scope: Construct,
    rest_api: cdk.CfnResource,
    assets: Path,
    headers: Mapping[str, str],
    access_logs: s3.IBucket,
    deployment_role: str | None = None,
) -> None:
    """The chat UI from a private bucket through API Gateway's S3 integration: same origin as the API. Every
    answer (the files and their 404s) carries `headers` (chalicelib.webui.security.ui_security_headers).
    `deployment_role` (config.yaml `roles.bucketDeployment`) runs CDK's BucketDeployment instead of its own role."""
    bucket = s3.Bucket(
        scope,
        "WebAssets",
        **secure_bucket_options(cdk.RemovalPolicy.DESTROY),  # build output only: redeploying recreates it
        auto_delete_objects=True,
    )
    log_access(bucket, access_logs, "webui")
    suppress(
        bucket,
        nag_suppression("NIST.800.53.R5-S3BucketReplicationEnabled", "build output of webui/: a redeploy rebuilds it"),
    )
    s3_deployment.BucketDeployment(
        scope,
        "WebAssetsDeployment",
        sources=[s3_deployment.Source.asset(str(assets))],
        destination_bucket=bucket,
        role=imported_role(scope, "WebAssetsDeploymentRole", deployment_role),
    )
    stack = cdk.Stack.of(scope)
    objects = f"Resource::<{stack.get_logical_id(bucket.node.default_child)}.Arn>/*"  # type: ignore[arg-type]
    for handler in (c for c in stack.node.children if c.node.id.startswith("Custom::CDKBucketDeployment")):
        copy = "CDK's BucketDeployment copies the built UI from the CDK asset bucket into the web assets bucket"
        suppress_cdk_handler(
            handler,
            nag_suppression(
                "AwsSolutions-IAM5",
                copy + " (CDK's grant of s3:GetObject*/GetBucket*/List*/DeleteObject*/Abort* on both)",
                [
                    *(f"Action::s3:{a}" for a in ("Abort*", "DeleteObject*", "GetBucket*", "GetObject*", "List*")),
                    objects,
                    f"Resource::arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-<AWS::AccountId>-{stack.region}/*",
                ],
            ),
        )
    role = iam.Role(
        scope,
        "WebAssetsReader",
        assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"),
        description="API Gateway: read the chat UI's files",
    )
    # GetObject on the UI's files; ListBucket so that a missing file is a 404, not a 403.
    role.add_to_principal_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=[bucket.arn_for_objects("*")]))
    role.add_to_principal_policy(iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket.bucket_arn]))
    suppress(
        role,
        nag_suppression("AwsSolutions-IAM5", "every file of the chat UI's build (its own bucket)", [objects]),
        nag_suppression("NIST.800.53.R5-IAMNoInlinePolicy", TASK_ROLE_INLINE_REASON),
        children=True,
    )
    # Static values are quoted once; API Gateway keeps the quotes inside them ('self', 'none') as they are.
    hardening = {f"method.response.header.{name}": f"'{value}'" for name, value in headers.items()}
    for path, key, cache in (
        *((page, name, "no-cache") for page, name in UI_PAGES.items()),
        ("/assets/{file}", "assets/{file}", "public, max-age=31536000, immutable"),  # names carry a hash
    ):
        integration: dict[str, Any] = {
            "type": "aws",
            "httpMethod": "GET",
            "uri": cdk.Fn.sub(
                "arn:${AWS::Partition}:apigateway:${AWS::Region}:s3:path/${Bucket}/" + key,
                {"Bucket": bucket.bucket_name},
            ),
            "credentials": role.role_arn,
            "passthroughBehavior": "when_no_match",
            "responses": {
                "4\\d{2}": {"statusCode": "404", "responseParameters": hardening},
                "default": {
                    "statusCode": "200",
                    "responseParameters": {
                        "method.response.header.Content-Type": "integration.response.header.Content-Type",
                        "method.response.header.Cache-Control": f"'{cache}'",
                        **hardening,
                    },
                },
            },
        }
        declared = {name: {"type": "string"} for name in headers}
        method: dict[str, Any] = {
            "responses": {
                "200": {
                    "description": "the file",
                    "headers": {"Content-Type": {"type": "string"}, "Cache-Control": {"type": "string"}, **declared},
                },
                "404": {"description": "no such file", "headers": declared},
            },
            "x-amazon-apigateway-integration": integration,
        }
        if "{file}" in path:
            method["parameters"] = [{"name": "file", "in": "path", "required": True, "type": "string"}]
            integration["requestParameters"] = {"integration.request.path.file": "method.request.path.file"}
        rest_api.add_property_override(f"DefinitionBody.paths.{path}", {"get": method})
