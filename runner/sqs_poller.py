"""A local stand-in for Lambda's SQS event source mapping (local-only, never deployed).

It long-polls a queue, hands each batch to the handler as the Lambda SQS event (`{"Records": [...]}` with
messageId, receiptHandle, body, attributes, messageAttributes, md5OfBody, eventSource, eventSourceARN, awsRegion)
in-process, and then does what the mapping does with `ReportBatchItemFailures`: deletes the messages that were not
reported in `batchItemFailures`; if the handler raises or answers something malformed, deletes none. Messages not
deleted come back after the queue's visibility timeout (or after `retry_delay` seconds when set, a local
convenience) and reach the DLQ after the redrive policy's maxReceiveCount, as in AWS.

    poller = SqsPoller.for_ingestion()      # the Chalice app's ingest_documents handler on the ingestion queue
    poller.start(); ...; poller.stop()      # in a background thread (the local runner)
    poller.drain(timeout=60)                # until the queue is empty (tests, CLI)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger

from chalicelib import aws
from chalicelib.settings import get_settings

logger = Logger(service="lisa-sqs-poller")

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class PollStats:
    """Counts over the poller's life (or one `poll_once`)."""

    batches: int = 0
    received: int = 0
    succeeded: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: PollStats) -> None:
        """Accumulate another poll's counts into these."""
        self.batches += other.batches
        self.received += other.received
        self.succeeded += other.succeeded
        self.failed += other.failed
        self.errors.extend(other.errors)


class SqsPoller:
    """Feeds one queue to one handler, as an event source mapping with partial batch responses does."""

    def __init__(
        self,
        handler: Handler,
        queue_url: str,
        *,
        batch_size: int = 10,
        wait_seconds: int = 1,
        retry_delay: int | None = None,
        function_name: str = "ingest_documents",
    ) -> None:
        if not 1 <= batch_size <= 10:
            raise ValueError("batch_size must be 1-10 (SQS ReceiveMessage's limit)")
        self.handler = handler
        self.queue_url = queue_url
        self.batch_size = batch_size
        self.wait_seconds = wait_seconds
        self.retry_delay = retry_delay
        self.function_name = function_name
        self.stats = PollStats()
        self._arn: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def for_ingestion(cls, retry_delay: int | None = None) -> SqsPoller:
        """The RAG ingestion queue feeding the Chalice app's `ingest_documents` handler."""
        from chalicelib.rag.routes import ingest_documents

        settings = get_settings()
        url = (
            settings.ingestion_queue_url
            or aws.client("sqs").get_queue_url(QueueName=settings.ingestion_queue)["QueueUrl"]
        )
        return cls(ingest_documents, url, retry_delay=retry_delay)

    # -- one batch -------------------------------------------------------------------------------------------
    def poll_once(self) -> PollStats:
        """Receive up to one batch, invoke the handler, settle the messages; returns what happened."""
        sqs = aws.client("sqs")
        response = sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=self.wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = response.get("Messages", [])
        stats = PollStats()
        if not messages:
            return stats
        stats.batches, stats.received = 1, len(messages)
        failed_ids = self._invoke(messages, stats)
        done = [m for m in messages if m["MessageId"] not in failed_ids]
        for start in range(0, len(done), 10):
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done[start : start + 10])
            ]
            result = sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
            for failure in result.get("Failed", []):
                stats.errors.append(f"could not delete a message: {failure.get('Message')}")
        if self.retry_delay is not None:
            for message in messages:
                if message["MessageId"] in failed_ids:
                    sqs.change_message_visibility(
                        QueueUrl=self.queue_url,
                        ReceiptHandle=message["ReceiptHandle"],
                        VisibilityTimeout=self.retry_delay,
                    )
        stats.succeeded, stats.failed = len(done), len(failed_ids)
        self.stats.add(stats)
        return stats

    def _invoke(self, messages: list[dict[str, Any]], stats: PollStats) -> set[str]:
        """The ids of the messages to leave on the queue."""
        all_ids = {m["MessageId"] for m in messages}
        event = {"Records": [self._record(m) for m in messages]}
        try:
            from chalice.local import LambdaContext

            result = self.handler(event, LambdaContext(self.function_name, 1024, max_runtime_ms=900_000))
        except Exception as error:
            logger.exception("the handler failed; the whole batch will be retried")
            stats.errors.append(f"{type(error).__name__}: {error}")
            return all_ids
        if result is None:
            return set()  # no partial batch response: the batch succeeded
        try:
            failures = result["batchItemFailures"]
            failed = {str(item["itemIdentifier"]) for item in failures}
        except (KeyError, TypeError):
            stats.errors.append(f"malformed partial batch response: {result!r}"[:300])
            return all_ids
        if not failed <= all_ids:
            stats.errors.append("the partial batch response names unknown messages; retrying the batch")
            return all_ids
        return failed

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        attributes = {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": value.get("BinaryValue"),
                "stringListValues": value.get("StringListValues", []),
                "binaryListValues": value.get("BinaryListValues", []),
                "dataType": value.get("DataType"),
            }
            for name, value in (message.get("MessageAttributes") or {}).items()
        }
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": attributes,
            "md5OfBody": message.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": self._queue_arn(),
            "awsRegion": get_settings().region,
        }

    def _queue_arn(self) -> str:
        if self._arn is None:
            attributes = aws.client("sqs").get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
            self._arn = str(attributes["Attributes"]["QueueArn"])
        return self._arn

    # -- running ---------------------------------------------------------------------------------------------
    def pending(self) -> int:
        """Messages on the queue, visible or in flight."""
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        attributes = aws.client("sqs").get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=names)
        return sum(int(attributes["Attributes"].get(name, 0)) for name in names)

    def drain(self, timeout: float = 60.0) -> PollStats:
        """Poll until the queue holds no message (visible or in flight), or `timeout` seconds passed."""
        stats = PollStats()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = self.poll_once()
            stats.add(batch)
            if batch.received == 0 and self.pending() == 0:
                break
        return stats

    def start(self) -> SqsPoller:
        """Poll in a background thread until `stop()`."""
        if self._thread is not None:
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sqs-poller", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:  # the endpoint went away, a transient error: keep polling, as the mapping does
                logger.exception("polling failed")
                self._stop.wait(2.0)

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the poll loop to end and wait up to `timeout` seconds for the batch in flight."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
