"""The VPC: created (2 AZs, public + private subnets, one NAT) or imported by id from config.yaml `vpcConfig`;
with `vpcEndpoints`, the endpoints that keep every AWS API call LISA makes inside it (subnets without internet)."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

from chalicelib.config import LisaConfig
from gpu_stack.keys import logs_key
from gpu_stack.overrides import imported_role
from gpu_stack.suppressions import NAT_ROUTE_REASON, nag_suppression, suppress

# What LISA's Lambdas, router tasks and GPU instances call: queue, workflows, parameters and secrets, credentials,
# logs, image pulls (ECR API + registry) and the ECS agent. S3 and DynamoDB are gateway endpoints (no charge).
INTERFACE_ENDPOINTS = {
    "Sqs": ec2.InterfaceVpcEndpointAwsService.SQS,
    "StepFunctions": ec2.InterfaceVpcEndpointAwsService.STEP_FUNCTIONS,
    "Ssm": ec2.InterfaceVpcEndpointAwsService.SSM,
    "SecretsManager": ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
    "Sts": ec2.InterfaceVpcEndpointAwsService.STS,
    "Logs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
    "EcrApi": ec2.InterfaceVpcEndpointAwsService.ECR,
    "EcrDocker": ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
    "Ecs": ec2.InterfaceVpcEndpointAwsService.ECS,
    "EcsAgent": ec2.InterfaceVpcEndpointAwsService.ECS_AGENT,
    "EcsTelemetry": ec2.InterfaceVpcEndpointAwsService.ECS_TELEMETRY,
}
GATEWAY_ENDPOINTS = {"S3": ec2.GatewayVpcEndpointAwsService.S3, "DynamoDB": ec2.GatewayVpcEndpointAwsService.DYNAMODB}


class NetworkStack(cdk.Stack):
    """Exposes `vpc` to the other stacks."""

    def __init__(self, scope: Construct, construct_id: str, *, config: LisaConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        vpc_config = config.vpc_config
        if vpc_config is None:
            self.vpc: ec2.IVpc = ec2.Vpc(
                self,
                "Vpc",
                max_azs=2,
                nat_gateways=1,
                subnet_configuration=[
                    # Public subnets hold the NAT gateway (its own Elastic IP): nothing there gets a public IP.
                    ec2.SubnetConfiguration(
                        name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24, map_public_ip_on_launch=False
                    ),
                    ec2.SubnetConfiguration(
                        name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=20
                    ),
                ],
            )
            for name, service in GATEWAY_ENDPOINTS.items():
                self.vpc.add_gateway_endpoint(name, service=service)
            for subnet in self.vpc.public_subnets:
                route = subnet.node.find_child("DefaultRoute")
                suppress(route, nag_suppression("NIST.800.53.R5-VPCNoUnrestrictedRouteToIGW", NAT_ROUTE_REASON))
            # Every accepted and rejected flow of the created VPC, kept a year (an imported VPC has its own).
            flow_logs = logs.LogGroup(
                self,
                "FlowLogs",
                retention=logs.RetentionDays.ONE_YEAR,
                encryption_key=logs_key(self, config.kms_keys.logs),
            )
            delivery_role = imported_role(self, "FlowLogRole", config.roles.flow_logs)
            flow_log = self.vpc.add_flow_log(
                "FlowLog", destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs, delivery_role)
            )
            if delivery_role is None:
                reason = "CDK's flow-log delivery role: writes to this one log group, attached to nothing else"
                suppress(
                    flow_log.node.find_child("IAMRole"),
                    nag_suppression("NIST.800.53.R5-IAMNoInlinePolicy", reason),
                    children=True,
                )
        else:
            self.vpc = ec2.Vpc.from_vpc_attributes(
                self,
                "Vpc",
                vpc_id=vpc_config.vpc_id,
                vpc_cidr_block=vpc_config.vpc_cidr,
                availability_zones=vpc_config.availability_zones,
                private_subnet_ids=vpc_config.private_subnet_ids,
                private_subnet_route_table_ids=vpc_config.private_route_table_ids or None,
                public_subnet_ids=vpc_config.public_subnet_ids or None,
            )
            if config.vpc_endpoints:  # an imported VPC may have them already: only on request
                for name, service in GATEWAY_ENDPOINTS.items():
                    self.vpc.add_gateway_endpoint(
                        name, service=service, subnets=[ec2.SubnetSelection(subnets=self.vpc.private_subnets)]
                    )
        if config.vpc_endpoints:
            private = ec2.SubnetSelection(subnets=self.vpc.private_subnets)
            for name, interface in INTERFACE_ENDPOINTS.items():
                # `open`: HTTPS from the VPC's CIDR, so every LISA component reaches it without extra wiring.
                self.vpc.add_interface_endpoint(
                    name, service=interface, subnets=private, private_dns_enabled=True, open=True
                )
