"""A repository's embedding model, reached through LISA's own embedding path.

The model is the registry record named by the repository's `embeddingModelId` (`get_registry().resolve`), and is
called with the shared protocol clients (`chalicelib.serve.clients`: TEI `/embed` or instructor
`/predictions/model`) in batches no larger than the backend accepts. Instructor models get the model's
`instruction` for documents and its `query_instruction` (if set) for queries.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from chalicelib.rag.errors import BackendUnavailable, InvalidRequest, UnusableDocument
from chalicelib.settings import get_settings

if TYPE_CHECKING:
    from chalicelib.registry.models import ModelRecord
    from chalicelib.serve.clients import InstructorClient, TeiClient

logger = Logger(service="lisa-rag")

_clients: dict[tuple[str, str, str], TeiClient | InstructorClient] = {}
_batch_sizes: dict[str, int] = {}
_lock = threading.Lock()


def _record(model_name: str) -> ModelRecord:
    from chalicelib.config import ModelType
    from chalicelib.registry.errors import ModelNotFound
    from chalicelib.registry.resolver import get_registry

    try:
        record = get_registry().resolve(model_name)
    except ModelNotFound:
        raise BackendUnavailable(f"embedding model {model_name!r} is not registered") from None
    if record.model_type is not ModelType.EMBEDDING:
        raise InvalidRequest(f"model {model_name!r} is not an embedding model")
    if not record.is_available or record.endpoint_url is None:
        raise BackendUnavailable(f"embedding model {model_name!r} is not in service (status {record.status.value})")
    return record


def _client(record: ModelRecord, purpose: str) -> TeiClient | InstructorClient:
    from chalicelib.serve.clients import embedder_for

    kwargs: dict[str, Any] = dict(record.default_model_kwargs)
    if purpose == "query" and kwargs.get("query_instruction"):
        kwargs["instruction"] = kwargs["query_instruction"]
    endpoint = str(record.endpoint_url)
    key = (record.provider, endpoint, f"{purpose}:{kwargs.get('instruction', '')}")
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = embedder_for(record.provider, endpoint, kwargs)
        return client


def _batch_size(record: ModelRecord, client: TeiClient | InstructorClient) -> int:
    """The settings' batch size, capped by what a TEI backend accepts per request (its /info)."""
    from chalicelib.serve.clients import TeiClient
    from chalicelib.serve.errors import ServeError

    wanted = get_settings().rag_embedding_batch_size
    endpoint = str(record.endpoint_url)
    if endpoint not in _batch_sizes:
        limit = wanted
        if isinstance(client, TeiClient):
            try:
                limit = client.info().max_client_batch_size or wanted
            except ServeError as error:
                raise BackendUnavailable(f"embedding model {record.model_name!r}: {error.message}") from None
        _batch_sizes[endpoint] = limit
    return max(1, min(wanted, _batch_sizes[endpoint]))


class RepositoryEmbedder:
    """Embeds a repository's chunks and queries with the model `model_name`."""

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in batches; a refusal of the text is an `UnusableDocument`, anything else that
        fails is `BackendUnavailable` (worth a retry)."""
        record = _record(self.model_name)
        client = _client(record, "document")
        size = _batch_size(record, client)
        vectors: list[list[float]] = []
        for start in range(0, len(texts), size):
            vectors.extend(self._call(client, texts[start : start + size], document=True))
        return vectors

    def embed_query(self, text: str) -> list[float]:
        """The embedding of a search query (instructor models embed queries and documents differently)."""
        record = _record(self.model_name)
        return self._call(_client(record, "query"), [text], document=False)[0]

    def _call(self, client: TeiClient | InstructorClient, texts: Sequence[str], document: bool) -> list[list[float]]:
        from chalicelib.serve.errors import ServeError

        try:
            vectors = client.embed(texts)
        except ServeError as error:
            if error.status in (400, 413, 422):
                refused = f"the embedding model {self.model_name!r} refused the text: {error.message}"
                raise (UnusableDocument(refused) if document else InvalidRequest(refused)) from None
            raise BackendUnavailable(f"embedding model {self.model_name!r}: {error.message}") from None
        dimensions = {len(v) for v in vectors}
        if len(dimensions) != 1:
            raise BackendUnavailable(f"embedding model {self.model_name!r} answered vectors of different sizes")
        return vectors
