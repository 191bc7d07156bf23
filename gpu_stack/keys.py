"""KMS keys of a deployment: one customer-managed key per stack for its CloudWatch log groups (or the key config.yaml
names), so log data at rest is under a key the account controls, rotates and can audit."""

from __future__ import annotations

from typing import cast

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

LOGS_KEY_ID = "LogsKey"
# What CloudWatch Logs needs on a key to encrypt and read back a log group's events (its documented key policy).
LOGS_KEY_ACTIONS = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]


def logs_key(scope: Construct, key_arn: str | None = None) -> kms.IKey:
    """The key of `scope`'s stack for its log groups: `key_arn` (customer-managed, its key policy must admit
    `logs.<region>.amazonaws.com`), else one created per stack, rotated yearly, usable by CloudWatch Logs for this
    account's log groups in this region only."""
    stack = cdk.Stack.of(scope)
    existing = stack.node.try_find_child(LOGS_KEY_ID)
    if existing is not None:
        return cast(kms.IKey, existing)  # made by an earlier call for this stack
    if key_arn:
        return kms.Key.from_key_arn(stack, LOGS_KEY_ID, key_arn)
    key = kms.Key(
        stack,
        LOGS_KEY_ID,
        description=f"{stack.stack_name}: CloudWatch log groups",
        enable_key_rotation=True,
    )
    key.add_to_resource_policy(
        iam.PolicyStatement(
            principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
            actions=LOGS_KEY_ACTIONS,
            resources=["*"],  # in a key policy, `*` is this key
            conditions={
                "ArnLike": {
                    "kms:EncryptionContext:aws:logs:arn": stack.format_arn(
                        service="logs",
                        resource="log-group",
                        resource_name="*",
                        arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                    )
                }
            },
        )
    )
    return key
