"""config.yaml `roles` and `securityGroups`: the account's own IAM roles and security groups instead of created ones.

Imported immutable: CDK adds no policy to such a role and no rule to such a group, so each must already allow what
docs/deploy.md lists for it.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from constructs import Construct


def role_or(scope: Construct, construct_id: str, arn: str | None, **create: Any) -> iam.IRole:
    """The role `arn` (imported, immutable), or a new role made with `create` (iam.Role's arguments)."""
    return imported_role(scope, construct_id, arn) or iam.Role(scope, construct_id, **create)


def imported_role(scope: Construct, construct_id: str, arn: str | None) -> iam.IRole | None:
    """The role `arn` (imported, immutable), or None: the construct taking it then makes its own."""
    return iam.Role.from_role_arn(scope, construct_id, arn, mutable=False) if arn else None


def imported_security_group(scope: Construct, construct_id: str, group_id: str | None) -> ec2.ISecurityGroup | None:
    """The security group `group_id` (imported, immutable), or None: the construct taking it makes its own."""
    if group_id:
        return ec2.SecurityGroup.from_security_group_id(scope, construct_id, group_id, mutable=False)
    return None


def security_group_or(scope: Construct, construct_id: str, group_id: str | None, **create: Any) -> ec2.ISecurityGroup:
    """The security group `group_id` (imported, immutable), or a new one made with `create`."""
    return imported_security_group(scope, construct_id, group_id) or ec2.SecurityGroup(scope, construct_id, **create)
