"""State: the DynamoDB tables (specs from chalicelib/tables.py), the models and RAG documents buckets, the RAG
ingestion queue (S3 object events → SQS, with a dead-letter queue) and, with config.yaml `ragDatabase`, the RDS
PostgreSQL database of the pgvector repositories that name no host."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_rds as rds
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from chalicelib.attachments.models import ATTACHMENT_DAYS, ATTACHMENTS_PREFIX
from chalicelib.config import RagDatabaseConfig
from chalicelib.tables import TABLES
from gpu_stack.names import ResourceNames
from gpu_stack.suppressions import (
    ACCESS_LOG_BUCKET_REASON,
    BACKUP_PLAN_REASON,
    CDK_HANDLER_REASON,
    DEV_DELETION_REASON,
    REPLICATION_REASON,
    nag_suppression,
    suppress,
    suppress_cdk_handler,
)

# The ingestion Lambda may run this long; SQS hides a received message for longer than that.
INGESTION_TIMEOUT = cdk.Duration.seconds(300)


def secure_bucket_options(policy: cdk.RemovalPolicy) -> dict[str, Any]:
    """What every LISA data bucket gets: SSE-KMS (the account's aws/s3 key: S3 callers need no key grant), no public
    access, TLS only, versions (old ones expire after 30 days). Then `log_access` it."""
    return {
        "encryption": s3.BucketEncryption.KMS_MANAGED,
        "block_public_access": s3.BlockPublicAccess.BLOCK_ALL,
        "enforce_ssl": True,
        "versioned": True,
        "lifecycle_rules": [s3.LifecycleRule(noncurrent_version_expiration=cdk.Duration.days(30))],
        "removal_policy": policy,
    }


def log_access(bucket: s3.Bucket, access_logs: s3.IBucket, prefix: str) -> None:
    """Server access logs of `bucket` into `access_logs` under `prefix/`. Set on the CloudFormation resource: the
    log bucket's own policy admits S3 log delivery for the account, so no bucket policy or ACL crosses stacks."""
    resource = bucket.node.default_child
    assert isinstance(resource, s3.CfnBucket)
    resource.logging_configuration = s3.CfnBucket.LoggingConfigurationProperty(
        destination_bucket_name=access_logs.bucket_name, log_file_prefix=f"{prefix}/"
    )


def _attribute(name: str) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=name, type=dynamodb.AttributeType.STRING)


class DataStack(cdk.Stack):
    """Exposes `tables` (Settings field → table), `models_bucket`, `docs_bucket`, `ingestion_queue`, `dlq`, and
    `database_clients` (the security group the database admits; None without `ragDatabase`)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ResourceNames,
        retain: bool,
        vpc: ec2.IVpc,
        rag_database: RagDatabaseConfig | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        policy = cdk.RemovalPolicy.RETAIN if retain else cdk.RemovalPolicy.DESTROY
        self.tables: dict[str, dynamodb.Table] = {}
        for spec in TABLES:
            table = dynamodb.Table(
                self,
                spec.setting,
                table_name=names.tables[spec.setting],
                partition_key=_attribute(spec.partition_key),
                sort_key=_attribute(spec.sort_key) if spec.sort_key else None,
                billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
                encryption=dynamodb.TableEncryption.AWS_MANAGED,
                point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                    point_in_time_recovery_enabled=True
                ),
                time_to_live_attribute=spec.ttl_attribute,
                removal_policy=policy,
            )
            for index in spec.indexes:
                table.add_global_secondary_index(
                    index_name=index.name,
                    partition_key=_attribute(index.partition_key),
                    sort_key=_attribute(index.sort_key) if index.sort_key else None,
                )
            self.tables[spec.setting] = table
            suppress(table, nag_suppression("NIST.800.53.R5-DynamoDBInBackupPlan", BACKUP_PLAN_REASON))

        # Server access logs of every LISA bucket (models, documents, web UI) land here, under the bucket's name.
        self.access_logs_bucket = s3.Bucket(
            self,
            "AccessLogsBucket",
            encryption=s3.BucketEncryption.S3_MANAGED,  # the only default encryption S3 log delivery supports
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(expiration=cdk.Duration.days(365), noncurrent_version_expiration=cdk.Duration.days(30))
            ],
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=policy,
        )
        self.access_logs_bucket.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("logging.s3.amazonaws.com")],
                actions=["s3:PutObject"],
                resources=[self.access_logs_bucket.arn_for_objects("*")],
                conditions={"StringEquals": {"aws:SourceAccount": self.account}},
            )
        )
        suppress(
            self.access_logs_bucket,
            nag_suppression("AwsSolutions-S1", ACCESS_LOG_BUCKET_REASON),
            nag_suppression("NIST.800.53.R5-S3BucketLoggingEnabled", ACCESS_LOG_BUCKET_REASON),
            nag_suppression(
                "NIST.800.53.R5-S3DefaultEncryptionKMS", "S3 server access log delivery writes to SSE-S3 buckets only"
            ),
            nag_suppression("NIST.800.53.R5-S3BucketReplicationEnabled", REPLICATION_REASON),
        )
        bucket_options = secure_bucket_options(policy)
        self.models_bucket = s3.Bucket(self, "ModelsBucket", bucket_name=names.models_bucket, **bucket_options)
        self.docs_bucket = s3.Bucket(
            self,
            "DocsBucket",
            bucket_name=names.docs_bucket,
            cors=[  # browsers upload documents with the presigned PUT URLs of /repositories/{id}/upload-url
                s3.CorsRule(allowed_methods=[s3.HttpMethods.PUT], allowed_origins=["*"], allowed_headers=["*"])
            ],
            **bucket_options,
        )
        self.docs_bucket.add_lifecycle_rule(  # chat attachments (chalicelib.attachments): a day, old versions too
            id="attachments",
            prefix=ATTACHMENTS_PREFIX,
            expiration=cdk.Duration.days(ATTACHMENT_DAYS),
            noncurrent_version_expiration=cdk.Duration.days(ATTACHMENT_DAYS),
        )
        for bucket, prefix in ((self.models_bucket, "models"), (self.docs_bucket, "docs")):
            log_access(bucket, self.access_logs_bucket, prefix)
            suppress(bucket, nag_suppression("NIST.800.53.R5-S3BucketReplicationEnabled", REPLICATION_REASON))

        self.dlq = sqs.Queue(
            self,
            "IngestionDlq",
            queue_name=names.ingestion_dlq,
            retention_period=cdk.Duration.days(14),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        self.ingestion_queue = sqs.Queue(
            self,
            "IngestionQueue",
            queue_name=names.ingestion_queue,
            visibility_timeout=INGESTION_TIMEOUT.plus(cdk.Duration.seconds(60)),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dlq, max_receive_count=3),
        )
        destination = s3n.SqsDestination(self.ingestion_queue)
        self.docs_bucket.add_event_notification(s3.EventType.OBJECT_CREATED, destination)
        self.docs_bucket.add_event_notification(s3.EventType.OBJECT_REMOVED, destination)
        for handler in (c for c in self.node.children if c.node.id.startswith("BucketNotificationsHandler")):
            suppress_cdk_handler(handler)
        suppress(
            self.docs_bucket.node.find_child("Notifications"),
            nag_suppression("NIST.800.53.R5-IAMNoInlinePolicy", CDK_HANDLER_REASON + ": s3:PutBucketNotification only"),
            children=True,
        )

        self.database_clients: ec2.SecurityGroup | None = None
        if rag_database is not None:
            self._rag_database(names, vpc, rag_database, policy)

    def _rag_database(
        self, names: ResourceNames, vpc: ec2.IVpc, spec: RagDatabaseConfig, policy: cdk.RemovalPolicy
    ) -> None:
        """PostgreSQL 17.9 (pgvector ships with RDS PostgreSQL; minor upgrades automatic) in the private subnets,
        encrypted, TLS only, its password generated into Secrets Manager; only `database_clients` members reach it."""
        assert names.rag_database_secret is not None
        self.database_clients = ec2.SecurityGroup(
            self, "DatabaseClients", vpc=vpc, description="may connect to the RAG database"
        )
        parameters = rds.ParameterGroup(
            self,
            "RagDatabaseParameters",
            engine=rds.DatabaseInstanceEngine.postgres(version=rds.PostgresEngineVersion.VER_17_9),
            parameters={"rds.force_ssl": "1"},
        )
        database = rds.DatabaseInstance(
            self,
            "RagDatabase",
            engine=rds.DatabaseInstanceEngine.postgres(version=rds.PostgresEngineVersion.VER_17_9),
            instance_type=ec2.InstanceType(spec.instance_type),
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnets=vpc.private_subnets),
            credentials=rds.Credentials.from_generated_secret("lisa", secret_name=names.rag_database_secret),
            database_name="lisa",
            allocated_storage=spec.allocated_storage,
            storage_encrypted=True,
            multi_az=spec.multi_az,
            publicly_accessible=False,
            parameter_group=parameters,
            backup_retention=cdk.Duration.days(7),
            deletion_protection=policy == cdk.RemovalPolicy.RETAIN,
            removal_policy=cdk.RemovalPolicy.SNAPSHOT if policy == cdk.RemovalPolicy.RETAIN else policy,
            cloudwatch_logs_exports=["postgresql", "upgrade"],
        )
        suppress(
            database,
            nag_suppression("AwsSolutions-RDS11", "the default port, reachable only from the database-clients group"),
            nag_suppression(
                "NIST.800.53.R5-RDSInBackupPlan", "7 days of automated backups; AWS Backup is the account's"
            ),
            nag_suppression(
                "NIST.800.53.R5-RDSEnhancedMonitoringEnabled",
                "CloudWatch's standard RDS metrics; enhanced is a cost option",
            ),
            *(
                [
                    nag_suppression("AwsSolutions-RDS3", "config.yaml ragDatabase.multiAz is false (a cost choice)"),
                    nag_suppression("NIST.800.53.R5-RDSMultiAZSupport", "config.yaml ragDatabase.multiAz is false"),
                ]
                if not spec.multi_az
                else []
            ),
            *(
                [
                    nag_suppression("AwsSolutions-RDS10", DEV_DELETION_REASON),
                    nag_suppression("NIST.800.53.R5-RDSInstanceDeletionProtectionEnabled", DEV_DELETION_REASON),
                ]
                if policy != cdk.RemovalPolicy.RETAIN
                else []
            ),
        )
        rotation_reason = (
            "the generated RDS password, encrypted with the aws/secretsmanager key; rotation (a rotation Lambda in the"
            " VPC) is still to do (issue 14)"
        )
        suppress(
            database.node.find_child("Secret"),
            nag_suppression("AwsSolutions-SMG4", rotation_reason),
            nag_suppression("NIST.800.53.R5-SecretsManagerRotationEnabled", rotation_reason),
            nag_suppression("NIST.800.53.R5-SecretsManagerUsingKMSKey", rotation_reason),
        )
        database.connections.allow_default_port_from(self.database_clients, "LISA Lambdas and router")
