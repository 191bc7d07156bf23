"""Create LISA's AWS resources (tables, buckets) on whatever endpoint the settings point at; idempotent."""

from __future__ import annotations

from typing import Any

from chalicelib import aws
from chalicelib.schedules.eventbridge import ensure_schedule_group
from chalicelib.settings import Settings, get_settings
from chalicelib.tables import TABLES, TableSpec


def _table_request(spec: TableSpec, settings: Settings) -> dict[str, Any]:
    keys = [{"AttributeName": spec.partition_key, "KeyType": "HASH"}]
    attributes = {spec.partition_key}
    if spec.sort_key:
        keys.append({"AttributeName": spec.sort_key, "KeyType": "RANGE"})
        attributes.add(spec.sort_key)
    request: dict[str, Any] = {"TableName": spec.name(settings), "KeySchema": keys, "BillingMode": "PAY_PER_REQUEST"}
    indexes = []
    for index in spec.indexes:
        index_keys = [{"AttributeName": index.partition_key, "KeyType": "HASH"}]
        attributes.add(index.partition_key)
        if index.sort_key:
            index_keys.append({"AttributeName": index.sort_key, "KeyType": "RANGE"})
            attributes.add(index.sort_key)
        indexes.append({"IndexName": index.name, "KeySchema": index_keys, "Projection": {"ProjectionType": "ALL"}})
    if indexes:
        request["GlobalSecondaryIndexes"] = indexes
    request["AttributeDefinitions"] = [{"AttributeName": a, "AttributeType": "S"} for a in sorted(attributes)]
    return request


def create_tables(settings: Settings | None = None) -> list[str]:
    """Create every LISA table that does not exist yet; returns the names created."""
    settings = settings or get_settings()
    dynamodb = aws.client("dynamodb")
    existing = set(dynamodb.list_tables()["TableNames"])
    created = []
    for spec in TABLES:
        request = _table_request(spec, settings)
        if request["TableName"] in existing:
            continue
        dynamodb.create_table(**request)
        dynamodb.get_waiter("table_exists").wait(TableName=request["TableName"])
        created.append(request["TableName"])
    return created


def create_buckets(settings: Settings | None = None) -> None:
    """Create the models and documents buckets if missing. Browsers upload documents with the presigned PUT URLs
    of /repositories/{id}/upload-url, so the documents bucket allows cross-origin PUTs (as the data stack sets it)."""
    settings = settings or get_settings()
    s3 = aws.client("s3")
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    for bucket in (settings.models_bucket, settings.docs_bucket):
        if bucket not in existing:
            s3.create_bucket(Bucket=bucket)
    upload_rule = {"AllowedMethods": ["PUT"], "AllowedOrigins": ["*"], "AllowedHeaders": ["*"]}
    s3.put_bucket_cors(Bucket=settings.docs_bucket, CORSConfiguration={"CORSRules": [upload_rule]})


def create_ingestion_queue(settings: Settings | None = None) -> str:
    """The RAG ingestion queue (with its DLQ) fed by the docs bucket's ObjectCreated/ObjectRemoved events.

    The queue only exists to be consumed by the ingestion Lambda (locally: runner/sqs_poller.py); returns its URL.
    """
    import json

    settings = settings or get_settings()
    sqs = aws.client("sqs")
    dlq_url = sqs.create_queue(QueueName=settings.ingestion_dlq, Attributes={"MessageRetentionPeriod": "1209600"})
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url["QueueUrl"], AttributeNames=["QueueArn"])["Attributes"]
    redrive = {"deadLetterTargetArn": dlq_arn["QueueArn"], "maxReceiveCount": "5"}
    url: str = sqs.create_queue(
        QueueName=settings.ingestion_queue,
        Attributes={"VisibilityTimeout": "900", "RedrivePolicy": json.dumps(redrive)},
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bucket_arn = f"arn:aws:s3:::{settings.docs_bucket}"
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "s3.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": bucket_arn}},
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
    aws.client("s3").put_bucket_notification_configuration(
        Bucket=settings.docs_bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {"QueueArn": arn, "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"], "Id": "lisa-rag-ingestion"}
            ]
        },
    )
    return url


def bootstrap(settings: Settings | None = None) -> None:
    """All the AWS resources local LISA needs."""
    create_tables(settings)
    create_buckets(settings)
    create_ingestion_queue(settings)
    ensure_schedule_group((settings or get_settings()).schedule_group)  # model schedules (in AWS: the stack's)
