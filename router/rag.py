"""RAG in chat: the router's `ChatAugmenter` (router/services.py) for `create_app(augment_chat=RagAugmenter())`.

A chat request names a repository with an extra body field

    "lisa_rag": {"repositoryId": "default", "k": 4, "filter": {"filename": "a.pdf"}}

(`k` 1-50, default 4; `filter` optional metadata equality, as in POST /repositories/{id}/search). The caller must be
allowed to use the repository (allowedGroups; otherwise 404, as the API answers). The text of the last user message
is the query; the top-k chunks, best first, go into the prompt as a system message with numbered sources, as many as
fit the model's input limit (its `MAX_INPUT_LENGTH` / `MAX_TOTAL_TOKENS`, estimated conservatively at
CHARS_PER_TOKEN characters per token after the conversation itself). The chunks used come back with the answer as
`lisa_rag_sources` (non-stream: a field of the completion; stream: a field of the first chunk).
Retrieval (DynamoDB, the embedding model, PostgreSQL/OpenSearch) runs on a worker thread, never on the loop.
"""

from __future__ import annotations

import asyncio
import posixpath
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from chalicelib.serve import mapping
from chalicelib.serve.errors import ServeError
from router.services import AugmentedChat

logger = Logger(service="lisa-router", child=True)

if TYPE_CHECKING:
    from chalicelib.auth.principal import Principal
    from chalicelib.contracts.openai import ChatCompletionRequest
    from chalicelib.rag.vectorstores import SearchHit
    from chalicelib.registry.models import ModelRecord

FIELD = "lisa_rag"
SOURCES_FIELD = "lisa_rag_sources"
CHARS_PER_TOKEN = 3  # conservative for English BPE tokenizers (~4 on average)
DEFAULT_INPUT_TOKENS = 4096  # when the model's container config names no limit
PROMPT_RESERVE_TOKENS = 64  # chat template markup, the instructions
MIN_ANSWER_TOKENS = 256  # kept free for the answer when only MAX_TOTAL_TOKENS is known

INSTRUCTIONS = (
    "Answer the user's question using the numbered context passages below. Cite the passages you use by number,"
    " like [1]. If the context does not contain the answer, say so."
)


class RagOptions(BaseModel):
    """The `lisa_rag` body field."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    repository_id: str = Field(alias="repositoryId", min_length=1, max_length=63)
    k: int = Field(4, ge=1, le=50)
    filter: dict[str, str | int | float | bool] = Field(default_factory=dict, max_length=16)

    @field_validator("repository_id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


def options_of(body: dict[str, Any]) -> RagOptions | None:
    """The request's RAG options (None when it names no repository); a 422 naming the bad field otherwise."""
    raw = body.get(FIELD)
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ServeError(422, f'\'{FIELD}\' must be an object like {{"repositoryId": "default", "k": 4}}', param=FIELD)
    try:
        return RagOptions.model_validate(raw)
    except ValidationError as error:
        raise mapping.validation_error(error, FIELD) from None


def query_of(req: ChatCompletionRequest) -> str:
    """The retrieval query: the text of the last user message."""
    for message in reversed(req.messages):
        if message.role == "user":
            text = _text(message.content)
            if text.strip():
                return text
    raise ServeError(400, f"'{FIELD}' needs a user message with text to search for", param="messages")


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(part.text for part in content if getattr(part, "text", None))
    return ""


def input_budget_tokens(record: ModelRecord, req: ChatCompletionRequest) -> int:
    """Tokens the prompt may use: the model's input limit, less room for the answer under its total limit."""
    environment = record.container_config.environment if record.container_config else {}
    max_input = _positive(environment.get("MAX_INPUT_LENGTH") or environment.get("MAX_INPUT_TOKENS"))
    max_total = _positive(environment.get("MAX_TOTAL_TOKENS"))
    answer = req.max_completion_tokens or req.max_tokens or MIN_ANSWER_TOKENS
    limits = [limit for limit in (max_input, max_total - answer if max_total else None) if limit]
    return max(0, min(limits)) if limits else DEFAULT_INPUT_TOKENS


def _positive(value: Any) -> int | None:
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def context_message(hits: list[SearchHit], budget_chars: int) -> tuple[str, list[SearchHit]]:
    """The system message text with as many passages (best first) as fit `budget_chars`, and the passages used."""
    text = INSTRUCTIONS
    used: list[SearchHit] = []
    for hit in hits:
        passage = f"\n\n[{len(used) + 1}] (source: {_label(hit)})\n{hit.text}"
        if len(text) + len(passage) > budget_chars:
            break
        text += passage
        used.append(hit)
    return text, used


def _label(hit: SearchHit) -> str:
    name = str(hit.metadata.get("filename") or posixpath.basename(hit.source) or hit.source)
    page = hit.metadata.get("page")
    return f"{name}, page {page}" if page is not None else name


def source_wire(index: int, repository_id: str, hit: SearchHit) -> dict[str, Any]:
    """How a passage used in the prompt is reported with the answer."""
    return {
        "index": index,
        "repositoryId": repository_id,
        "documentId": hit.document_id,
        "source": hit.source,
        "filename": hit.metadata.get("filename"),
        "page": hit.metadata.get("page"),
        "chunkIndex": hit.chunk_index,
        "score": round(hit.score, 6),
        "text": hit.text,
    }


def _with_context(req: ChatCompletionRequest, context: str) -> ChatCompletionRequest:
    """`req` with the context as a system message: appended to a leading system message, else inserted first."""
    messages = list(req.messages)
    first = messages[0]
    if first.role == "system" and isinstance(first.content, str):
        messages[0] = first.model_copy(update={"content": f"{first.content}\n\n{context}"})
    else:
        messages.insert(0, type(first).model_validate({"role": "system", "content": context}))
    return req.model_copy(update={"messages": messages})


def _used_chars(req: ChatCompletionRequest) -> int:
    return sum(len(_text(m.content)) for m in req.messages)


class RagAugmenter:
    """Retrieves context for chat requests that name a repository (see the module docstring)."""

    def __init__(self, service: Any = None) -> None:
        self._service = service

    @property
    def service(self) -> Any:
        """The RAG service, built on first use (it loads the vector store clients)."""
        if self._service is None:
            from chalicelib.rag.service import RagService

            self._service = RagService()
        return self._service

    async def __call__(
        self, principal: Principal, body: dict[str, Any], req: ChatCompletionRequest, record: ModelRecord
    ) -> ChatCompletionRequest | AugmentedChat:
        """`req` with retrieved context added when the body names a repository; unchanged otherwise."""
        options = options_of(body)
        if options is None:
            return req
        query = query_of(req)
        hits = await asyncio.to_thread(self._retrieve, principal, options, query)
        budget_tokens = input_budget_tokens(record, req) - PROMPT_RESERVE_TOKENS
        budget_chars = budget_tokens * CHARS_PER_TOKEN - _used_chars(req)
        context, used = context_message(hits, budget_chars)
        sources = [source_wire(i, options.repository_id, hit) for i, hit in enumerate(used, start=1)]
        if not used:
            return AugmentedChat(req, {SOURCES_FIELD: []})
        return AugmentedChat(_with_context(req, context), {SOURCES_FIELD: sources})

    def _retrieve(self, principal: Principal, options: RagOptions, query: str) -> list[SearchHit]:
        from chalicelib.rag.errors import RagError, RepositoryNotFound
        from chalicelib.rag.service import search_repository

        try:
            repository = self.service.repository(principal, options.repository_id, cached=True)
            hits: list[SearchHit] = search_repository(repository, query, options.k, dict(options.filter) or None)
        except RepositoryNotFound as error:
            raise ServeError(404, error.message, param=f"{FIELD}.repositoryId", code="repository_not_found") from None
        except RagError as error:
            raise ServeError(error.status, f"RAG: {error.message}", param=FIELD, code="rag_error") from None
        except _backend_errors() as error:  # a store or AWS failure the RAG code did not map: still a clear 503
            logger.warning("RAG retrieval failed", error=f"{type(error).__name__}: {error}")
            message = f"RAG: the document search is unavailable right now ({type(error).__name__}); try again later"
            raise ServeError(503, message, param=FIELD, code="rag_unavailable") from None
        return hits


def _backend_errors() -> tuple[type[BaseException], ...]:
    """The exception types of the vector store clients and AWS that mean "the backend failed", for those installed."""
    errors: list[type[BaseException]] = [OSError]
    try:
        from botocore.exceptions import BotoCoreError, ClientError

        errors += [BotoCoreError, ClientError]
    except ImportError:
        pass
    try:
        import psycopg
        from psycopg_pool import PoolTimeout

        errors += [psycopg.Error, PoolTimeout]
    except ImportError:
        pass
    try:
        from opensearchpy.exceptions import ImproperlyConfigured, OpenSearchException

        errors += [OpenSearchException, ImproperlyConfigured]
    except ImportError:
        pass
    return tuple(errors)
