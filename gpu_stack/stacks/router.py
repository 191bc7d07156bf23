"""The data-plane router on ECS Fargate behind an internal NLB, and the API Gateway VPC link to it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from constructs import Construct

from chalicelib.config import LisaConfig
from gpu_stack.ca_bundle import add_ca_bundle, read_ca_bundle
from gpu_stack.images import container_image
from gpu_stack.keys import container_log_group
from gpu_stack.names import ResourceNames
from gpu_stack.overrides import imported_role, security_group_or
from gpu_stack.policies import ROUTER_TASK, ArnParts, StoreKeys, access_statements
from gpu_stack.suppressions import (
    DEV_DELETION_REASON,
    NAG_ARN_PARTS,
    NLB_LOGS_REASON,
    PRIVATE_LINK_TLS_REASON,
    TASK_ROLE_INLINE_REASON,
    nag_suppression,
    suppress,
    suppress_task_definition,
    wildcard_resource_suppressions,
)

ROUTER_PORT = 8080
# Only what the router image needs; the rest of the repository (.venv, node_modules, models) stays out of the asset.
_ROUTER_ASSET_EXCLUDE = [
    "*",
    "!requirements.txt",
    "!router",
    "!router/**",
    "!chalicelib",
    "!chalicelib/**",
    "!layers/rag/requirements.txt",
    "**/__pycache__",
]


class RouterStack(cdk.Stack):
    """Exposes `vpc_link`, `load_balancer` and `service`."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: LisaConfig,
        names: ResourceNames,
        vpc: ec2.IVpc,
        keys: StoreKeys,
        client_groups: Sequence[ec2.ISecurityGroup],
        project_dir: Path,
        config_dir: Path,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        rest = config.rest_api_config
        cluster = ecs.Cluster(self, "Cluster", vpc=vpc, container_insights_v2=ecs.ContainerInsights.ENABLED)
        roles = config.roles
        task = ecs.FargateTaskDefinition(
            self,
            "Task",
            cpu=rest.router_cpu,
            memory_limit_mib=rest.router_memory,
            task_role=imported_role(self, "TaskRole", roles.router_task),
            execution_role=imported_role(self, "ExecutionRole", roles.task_execution),
        )
        if rest.router_image:
            image = container_image(self, "RouterImage", rest.router_image, config_dir)
        else:
            image = ecs.ContainerImage.from_asset(
                str(project_dir), file="router/Dockerfile", exclude=_ROUTER_ASSET_EXCLUDE
            )
        environment = names.environment({})
        environment["LISA_REGION"] = cdk.Aws.REGION
        environment["LISA_ROUTER_PORT"] = str(ROUTER_PORT)
        environment.update(config.auth_config.environment())
        environment.update(config.limits.environment())
        log_group = container_log_group(self, "Logs", config.kms_keys.logs)
        router = task.add_container(
            "router",
            image=image,
            environment=environment,
            port_mappings=[ecs.PortMapping(container_port=ROUTER_PORT)],
            logging=ecs.LogDriver.aws_logs(stream_prefix="router", log_group=log_group),
        )
        pem = read_ca_bundle(config, config_dir)
        if pem:  # the router image's own `sh` writes it
            logging = ecs.LogDriver.aws_logs(stream_prefix="ca-bundle", log_group=log_group)
            add_ca_bundle(task, pem, image, logging, [router])
        suppress_task_definition(task)
        # The router authenticates (tokens, JWTs), resolves models from the registry, reads limit overrides and, for
        # RAG in chat, repositories and their vector-store passwords; it writes usage batches and counts limit windows:
        # named resources only (gpu_stack/policies.py ROUTER_TASK).
        parts = ArnParts(partition=cdk.Aws.PARTITION, region=cdk.Aws.REGION, account=cdk.Aws.ACCOUNT_ID)
        for statement in access_statements(ROUTER_TASK, names, parts, keys):
            task.add_to_task_role_policy(iam.PolicyStatement.from_json(statement))
        rendered = access_statements(ROUTER_TASK, names, ArnParts(**NAG_ARN_PARTS), keys)
        suppress(
            task.task_role,
            *wildcard_resource_suppressions({"Statement": rendered}),
            nag_suppression("NIST.800.53.R5-IAMNoInlinePolicy", TASK_ROLE_INLINE_REASON),
            children=True,
        )

        groups = config.security_groups
        self.load_balancer_security_group = security_group_or(
            self,
            "NlbSecurityGroup",
            groups.router_load_balancer,
            vpc=vpc,
            description="LISA router NLB (API Gateway VPC link)",
        )
        # The VPC link's traffic reaches the NLB from inside the VPC (PrivateLink; the SG is not enforced on it, but
        # nothing outside the VPC may use the listener either).
        self.load_balancer_security_group.add_ingress_rule(
            ec2.Peer.ipv4(vpc.vpc_cidr_block), ec2.Port.tcp(80), "VPC link (from the VPC)"
        )
        suppress(
            self.load_balancer_security_group,
            nag_suppression(
                "CdkNagValidationFailure",
                "the one ingress rule is tcp/80 from the VPC's own CIDR, a cross-stack import cdk-nag cannot resolve"
                " (tests/test_deploy_stacks.py asserts it)",
                ["AwsSolutions-EC23", "NIST.800.53.R5-EC2RestrictedCommonPorts", "NIST.800.53.R5-EC2RestrictedSSH"],
            ),
        )
        self.load_balancer = elbv2.NetworkLoadBalancer(
            self,
            "Nlb",
            vpc=vpc,
            internet_facing=False,
            vpc_subnets=ec2.SubnetSelection(subnets=vpc.private_subnets),
            security_groups=[self.load_balancer_security_group],
            enforce_security_group_inbound_rules_on_private_link_traffic=False,
            cross_zone_enabled=True,
            deletion_protection=config.stage == "prod",
        )
        nlb_reasons = [
            nag_suppression("AwsSolutions-ELB2", NLB_LOGS_REASON),
            nag_suppression("NIST.800.53.R5-ELBLoggingEnabled", NLB_LOGS_REASON),
        ]
        if config.stage != "prod":
            nlb_reasons.append(nag_suppression("NIST.800.53.R5-ELBDeletionProtectionEnabled", DEV_DELETION_REASON))
        suppress(self.load_balancer, *nlb_reasons)
        service_group = security_group_or(
            self, "RouterSecurityGroup", groups.router, vpc=vpc, description="LISA router tasks"
        )
        service_group.add_ingress_rule(self.load_balancer_security_group, ec2.Port.tcp(ROUTER_PORT), "from the NLB")
        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=cluster,
            task_definition=task,
            desired_count=2,
            min_healthy_percent=50,
            vpc_subnets=ec2.SubnetSelection(subnets=vpc.private_subnets),
            security_groups=[service_group, *client_groups],  # model endpoints and the RAG database admit these
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
        )
        listener = self.load_balancer.add_listener("Listener", port=80)
        suppress(listener, nag_suppression("NIST.800.53.R5-ELBv2ACMCertificateRequired", PRIVATE_LINK_TLS_REASON))
        listener.add_targets(
            "Router",
            port=ROUTER_PORT,
            targets=[self.service],
            health_check=elbv2.HealthCheck(
                protocol=elbv2.Protocol.HTTP, path="/health", port="traffic-port", interval=cdk.Duration.seconds(10)
            ),
            deregistration_delay=cdk.Duration.seconds(30),
        )
        scaling = self.service.auto_scale_task_count(min_capacity=2, max_capacity=10)
        scaling.scale_on_cpu_utilization("Cpu", target_utilization_percent=60)
        self.vpc_link = apigateway.VpcLink(
            self, "VpcLink", targets=[self.load_balancer], description="API Gateway → LISA router NLB"
        )
