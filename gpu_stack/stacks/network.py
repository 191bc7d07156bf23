"""The VPC: created (2 AZs, public + private subnets, one NAT) or imported by id from config.yaml `vpcConfig`."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from chalicelib.config import LisaConfig


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
                    ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                    ec2.SubnetConfiguration(
                        name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=20
                    ),
                ],
            )
            self.vpc.add_gateway_endpoint("S3", service=ec2.GatewayVpcEndpointAwsService.S3)
            self.vpc.add_gateway_endpoint("DynamoDB", service=ec2.GatewayVpcEndpointAwsService.DYNAMODB)
        else:
            self.vpc = ec2.Vpc.from_vpc_attributes(
                self,
                "Vpc",
                vpc_id=vpc_config.vpc_id,
                availability_zones=vpc_config.availability_zones,
                private_subnet_ids=vpc_config.private_subnet_ids,
                public_subnet_ids=vpc_config.public_subnet_ids or None,
            )
