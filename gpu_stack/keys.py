"""KMS keys of a deployment: one customer-managed key per stack and kind of store (log groups, buckets, tables,
queues, the RAG database; the stacks have no SNS topic), or the key config.yaml `kmsKeys.<kind>` names, so data at
rest is under keys the account controls, rotates and can audit. Who may use each key is in gpu_stack/policies.py
(IAM, through the store's service only); a key policy here admits only AWS services that write without a caller's
role."""

from __future__ import annotations

from typing import Literal, cast

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from chalicelib.config import KmsKeys

KeyKind = Literal["logs", "buckets", "tables", "queues", "database"]
LOGS_KEY_ID = "LogsKey"
_PURPOSE: dict[KeyKind, str] = {
    "logs": "CloudWatch log groups",
    "buckets": "the models and RAG documents buckets",
    "tables": "DynamoDB tables",
    "queues": "the ingestion queue and its dead-letter queue",
    "database": "the RAG database's storage and secret",
}
# What CloudWatch Logs needs on a key to encrypt and read back a log group's events (its documented key policy).
LOGS_KEY_ACTIONS = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
# What S3 needs to send event notifications to an encrypted queue (S3's documented key policy for SQS targets).
S3_NOTIFICATION_KEY_ACTIONS = ["kms:GenerateDataKey", "kms:Decrypt"]


def stack_key(scope: Construct, kind: KeyKind, keys: KmsKeys) -> kms.IKey:
    """The key of `scope`'s stack for `kind`: `keys.<kind>` (imported: its key policy is the account's), else one
    made once per stack, rotated yearly, whose default policy leaves its use to IAM policies of this account."""
    stack = cdk.Stack.of(scope)
    construct_id = f"{kind.capitalize()}Key"
    existing = stack.node.try_find_child(construct_id)
    if existing is not None:
        return cast(kms.IKey, existing)  # made by an earlier call for this stack
    key_arn: str | None = getattr(keys, kind)
    if key_arn:
        return kms.Key.from_key_arn(stack, construct_id, key_arn)
    key = kms.Key(stack, construct_id, description=f"{stack.stack_name}: {_PURPOSE[kind]}", enable_key_rotation=True)
    if kind == "logs":
        _admit_cloudwatch_logs(key, stack)
    return key


def logs_key(scope: Construct, key_arn: str | None = None) -> kms.IKey:
    """The key of `scope`'s stack for its log groups (`key_arn`'s policy must admit `logs.<region>.amazonaws.com`)."""
    return stack_key(scope, "logs", KmsKeys(logs=key_arn))


def container_log_group(scope: Construct, construct_id: str, key_arn: str | None = None) -> logs.LogGroup:
    """An ECS service's container log group: kept a month, removed with its stack, encrypted with `logs_key`."""
    return logs.LogGroup(
        scope,
        construct_id,
        retention=logs.RetentionDays.ONE_MONTH,
        removal_policy=cdk.RemovalPolicy.DESTROY,
        encryption_key=logs_key(scope, key_arn),
    )


def _admit_cloudwatch_logs(key: kms.Key, stack: cdk.Stack) -> None:
    """CloudWatch Logs may use the key for this account's log groups in this region only."""
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


def admit_s3_notifications(key: kms.IKey, bucket: s3.IBucket) -> None:
    """S3 may encrypt event notifications of `bucket` (only) to a queue under `key`. An imported key is the
    account's: its policy must already say so (docs/deploy.md); CDK cannot change it."""
    key.add_to_resource_policy(
        iam.PolicyStatement(
            principals=[iam.ServicePrincipal("s3.amazonaws.com")],
            actions=S3_NOTIFICATION_KEY_ACTIONS,
            resources=["*"],  # in a key policy, `*` is this key
            conditions={
                "ArnEquals": {"aws:SourceArn": bucket.bucket_arn},
                "StringEquals": {"aws:SourceAccount": cdk.Stack.of(key).account},
            },
        )
    )
