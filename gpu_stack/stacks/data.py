"""State: the DynamoDB tables (specs from chalicelib/tables.py), the models and RAG documents buckets, the RAG
ingestion queue (S3 object events → SQS, with a dead-letter queue) and, with config.yaml `ragDatabase`, the RDS
PostgreSQL database of the pgvector repositories that name no host."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_rds as rds
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from chalicelib.attachments.models import ATTACHMENT_DAYS, ATTACHMENTS_PREFIX
from chalicelib.config import KmsKeys, RagDatabaseConfig, RoleOverrides, SecurityGroupOverrides
from chalicelib.tables import TABLES
from gpu_stack.keys import admit_s3_notifications, stack_key
from gpu_stack.names import ResourceNames
from gpu_stack.overrides import imported_role, imported_security_group, security_group_or
from gpu_stack.policies import StoreKeys
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
ROTATION_PERIOD = cdk.Duration.days(30)  # the RAG database password's


def secure_bucket_options(policy: cdk.RemovalPolicy, key: kms.IKey | None = None) -> dict[str, Any]:
    """What every LISA bucket gets: SSE-KMS under `key` (with an S3 bucket key: one KMS call per bucket key, and
    the bucket's ARN as encryption context), else the account's aws/s3 key (the web UI's build output: its callers
    need no key grant); no public access, TLS only, versions (old ones expire after 30 days). Then `log_access` it."""
    encryption: dict[str, Any] = (
        {"encryption": s3.BucketEncryption.KMS, "encryption_key": key, "bucket_key_enabled": True}
        if key is not None
        else {"encryption": s3.BucketEncryption.KMS_MANAGED}
    )
    return {
        **encryption,
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
    """Exposes `tables` (Settings field → table), `models_bucket`, `docs_bucket`, `ingestion_queue`, `dlq`,
    `database_clients` (the security group the database admits; None without `ragDatabase`) and `keys` (the ARN of
    each kind of store's KMS key, for the callers' grants in gpu_stack/policies.py)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ResourceNames,
        retain: bool,
        vpc: ec2.IVpc,
        rag_database: RagDatabaseConfig | None = None,
        kms_keys: KmsKeys | None = None,
        roles: RoleOverrides | None = None,
        security_groups: SecurityGroupOverrides | None = None,
        **kwargs: Any,
    ) -> None:
        """`kms_keys`: config.yaml `kmsKeys` (the account's keys per kind of store; a per-stack key for the rest);
        `roles`, `security_groups`: its `roles.bucketNotifications` and `securityGroups.ragDatabase*`."""
        super().__init__(scope, construct_id, **kwargs)
        policy = cdk.RemovalPolicy.RETAIN if retain else cdk.RemovalPolicy.DESTROY
        kms_keys = kms_keys or KmsKeys()
        roles = roles or RoleOverrides()
        self._groups = security_groups or SecurityGroupOverrides()
        tables_key = stack_key(self, "tables", kms_keys)
        buckets_key = stack_key(self, "buckets", kms_keys)
        queues_key = stack_key(self, "queues", kms_keys)
        database_key = stack_key(self, "database", kms_keys) if rag_database is not None else None
        self.keys = StoreKeys(
            buckets=buckets_key.key_arn,
            tables=tables_key.key_arn,
            queues=queues_key.key_arn,
            database=database_key.key_arn if database_key is not None else None,
        )
        self.tables: dict[str, dynamodb.Table] = {}
        for spec in TABLES:
            table = dynamodb.Table(
                self,
                spec.setting,
                table_name=names.tables[spec.setting],
                partition_key=_attribute(spec.partition_key),
                sort_key=_attribute(spec.sort_key) if spec.sort_key else None,
                billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
                encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
                encryption_key=tables_key,
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
            # SSE-S3: the only default encryption ELB access-log delivery supports (S3 server access logs too).
            encryption=s3.BucketEncryption.S3_MANAGED,
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
                "NIST.800.53.R5-S3DefaultEncryptionKMS",
                "ELB access-log delivery (the model ALBs' `elb/` logs) writes to SSE-S3 buckets only",
            ),
            nag_suppression("NIST.800.53.R5-S3BucketReplicationEnabled", REPLICATION_REASON),
        )
        bucket_options = secure_bucket_options(policy, buckets_key)
        self.models_bucket = s3.Bucket(self, "ModelsBucket", bucket_name=names.models_bucket, **bucket_options)
        self.docs_bucket = s3.Bucket(
            self,
            "DocsBucket",
            bucket_name=names.docs_bucket,
            # CDK's handler that writes the bucket's notification configuration runs as this role when given.
            notifications_handler_role=imported_role(self, "BucketNotificationsRole", roles.bucket_notifications),
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
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=queues_key,
            enforce_ssl=True,
        )
        # The key on the CloudFormation resource, not the L2's `encryption_master_key`: CDK's S3 notification would
        # then admit s3.amazonaws.com to the key for any bucket; admit_s3_notifications admits the documents bucket.
        self.ingestion_queue = sqs.Queue(
            self,
            "IngestionQueue",
            queue_name=names.ingestion_queue,
            visibility_timeout=INGESTION_TIMEOUT.plus(cdk.Duration.seconds(60)),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dlq, max_receive_count=3),
        )
        queue_resource = self.ingestion_queue.node.default_child
        assert isinstance(queue_resource, sqs.CfnQueue)
        queue_resource.sqs_managed_sse_enabled = None
        queue_resource.kms_master_key_id = queues_key.key_arn
        admit_s3_notifications(queues_key, self.docs_bucket)
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

        self.database_clients: ec2.ISecurityGroup | None = None
        if rag_database is not None:
            assert database_key is not None
            self._rag_database(names, vpc, rag_database, policy, database_key)

    def _rag_database(
        self,
        names: ResourceNames,
        vpc: ec2.IVpc,
        spec: RagDatabaseConfig,
        policy: cdk.RemovalPolicy,
        key: kms.IKey,
    ) -> None:
        """PostgreSQL 17.9 (pgvector ships with RDS PostgreSQL; minor upgrades automatic) in the private subnets,
        storage and password (generated into Secrets Manager) under `key`, TLS only; only `database_clients` members
        reach it. The hosted rotation Lambda gets the key through Secrets Manager's transform (`KmsKeyArn`)."""
        assert names.rag_database_secret is not None
        groups = self._groups
        self.database_clients = security_group_or(
            self,
            "DatabaseClients",
            groups.rag_database_clients,
            vpc=vpc,
            description="may connect to the RAG database",
        )
        # The account's database group admits `database_clients` itself (docs/deploy.md).
        own_group = imported_security_group(self, "RagDatabaseSecurityGroup", groups.rag_database)
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
            credentials=rds.Credentials.from_generated_secret(
                "lisa", secret_name=names.rag_database_secret, encryption_key=key
            ),
            database_name="lisa",
            allocated_storage=spec.allocated_storage,
            storage_encrypted=True,
            storage_encryption_key=key,
            multi_az=spec.multi_az,
            publicly_accessible=False,
            security_groups=[own_group] if own_group else None,  # None: RDS's construct makes one
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
        database.connections.allow_default_port_from(self.database_clients, "LISA Lambdas and router")
        # Secrets Manager's hosted rotation Lambda (single user) in the private subnets changes the password every
        # 30 days; readers fetch the secret when they open a connection pool, so new pools get the new password.
        # With the account's clients group, the rotation Lambda joins it (the account's database group admits it).
        rotation_group = self.database_clients
        if groups.rag_database_clients is None:
            rotation_group = ec2.SecurityGroup(
                self, "RagDatabaseRotation", vpc=vpc, description="rotation Lambda of the RAG database secret"
            )
            database.connections.allow_default_port_from(rotation_group, "secret rotation")
        secret = database.secret
        assert secret is not None
        secret.add_rotation_schedule(
            "Rotation",
            hosted_rotation=secretsmanager.HostedRotation.postgre_sql_single_user(
                vpc=vpc,
                vpc_subnets=ec2.SubnetSelection(subnets=vpc.private_subnets),
                security_groups=[rotation_group],
            ),
            automatically_after=ROTATION_PERIOD,
        )
