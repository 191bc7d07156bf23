"""DynamoDB table definitions as data: one source for the local bootstrap, the tests and the CDK stack."""

from __future__ import annotations

from dataclasses import dataclass, field

from chalicelib.settings import Settings


@dataclass(frozen=True)
class Index:
    """A global secondary index of a table."""

    name: str
    partition_key: str
    sort_key: str | None = None


@dataclass(frozen=True)
class TableSpec:
    """Keys are string attributes; `setting` names the Settings field that holds the table's name."""

    setting: str
    partition_key: str
    sort_key: str | None = None
    indexes: tuple[Index, ...] = field(default_factory=tuple)
    ttl_attribute: str | None = None

    def name(self, settings: Settings) -> str:
        """The table's name in this deployment (from its settings field)."""
        return str(getattr(settings, self.setting))


TABLES: tuple[TableSpec, ...] = (
    TableSpec("tokens_table", "tokenHash", indexes=(Index("byTokenId", "tokenId"),)),
    TableSpec("models_table", "modelId"),
    TableSpec("sessions_table", "userId", "sessionId"),
    TableSpec(
        "prompt_templates_table",
        "templateId",
        indexes=(Index("byOwner", "ownerId"), Index("byVisibility", "visibility")),
    ),
    TableSpec("attachments_table", "userId", "attachmentId", ttl_attribute="expiresAt"),
    TableSpec("rag_documents_table", "repositoryId", "documentId", indexes=(Index("bySource", "source"),)),
    TableSpec("rag_repositories_table", "repositoryId"),
    TableSpec(
        "usage_table", "ownerId", "dayModel", indexes=(Index("byMonth", "month", "day"),), ttl_attribute="expiresAt"
    ),
)
