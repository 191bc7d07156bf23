"""State: the DynamoDB tables (specs from chalicelib/tables.py), the models and RAG documents buckets, the RAG
ingestion queue (S3 object events → SQS, with a dead-letter queue) and, with config.yaml `ragDatabase`, the RDS
PostgreSQL database of the pgvector repositories that name no host."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_rds as rds
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from chalicelib.config import RagDatabaseConfig
from chalicelib.tables import TABLES
from gpu_stack.names import ResourceNames

# The ingestion Lambda may run this long; SQS hides a received message for longer than that.
INGESTION_TIMEOUT = cdk.Duration.seconds(300)


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

        bucket_options: dict[str, Any] = {
            "encryption": s3.BucketEncryption.S3_MANAGED,
            "block_public_access": s3.BlockPublicAccess.BLOCK_ALL,
            "enforce_ssl": True,
            "versioned": False,
            "removal_policy": policy,
        }
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
        )
        database.connections.allow_default_port_from(self.database_clients, "LISA Lambdas and router")
