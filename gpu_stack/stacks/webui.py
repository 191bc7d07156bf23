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


def serve_web_ui(scope: Construct, rest_api: cdk.CfnResource, assets: Path, headers: Mapping[str, str]) -> None:
    """The chat UI from a private bucket through API Gateway's S3 integration: same origin as the API. Every
    answer (the files and their 404s) carries `headers` (chalicelib.webui.security.ui_security_headers)."""
    bucket = s3.Bucket(
        scope,
        "WebAssets",
        encryption=s3.BucketEncryption.S3_MANAGED,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        enforce_ssl=True,
        removal_policy=cdk.RemovalPolicy.DESTROY,  # build output only: redeploying recreates it
        auto_delete_objects=True,
    )
    s3_deployment.BucketDeployment(
        scope, "WebAssetsDeployment", sources=[s3_deployment.Source.asset(str(assets))], destination_bucket=bucket
    )
    role = iam.Role(
        scope,
        "WebAssetsReader",
        assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"),
        description="API Gateway: read the chat UI's files",
    )
    bucket.grant_read(role)
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
