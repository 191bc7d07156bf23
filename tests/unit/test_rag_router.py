"""router/rag.py's prompt building: the `lisa_rag` field's validation, the model's input budget, passages that fit,
where the context goes, and how sources are reported. (The whole path runs in tests/test_rag_e2e.py.)"""

from __future__ import annotations

import opensearchpy.exceptions
import psycopg.errors
import pytest

from chalicelib.auth.principal import Principal
from chalicelib.contracts.openai import ChatCompletionRequest
from chalicelib.rag.vectorstores import SearchHit
from chalicelib.registry.models import ModelRecord
from chalicelib.serve.errors import ServeError
from router.rag import (
    CHARS_PER_TOKEN,
    DEFAULT_INPUT_TOKENS,
    INSTRUCTIONS,
    RagAugmenter,
    _with_context,
    context_message,
    input_budget_tokens,
    options_of,
    query_of,
    source_wire,
)


def _model(environment: dict[str, str] | None) -> ModelRecord:
    return ModelRecord.model_validate(
        {
            "modelId": "chat",
            "modelName": "chat",
            "hfModelId": "org/chat",
            "modelType": "textgen",
            "inferenceContainer": "tgi",
            "endpointUrl": "http://127.0.0.1:1",
            "status": "InService",
            "streaming": True,
            "containerConfig": {"image": "x", "environment": environment} if environment is not None else None,
            "createdAt": "2026-01-01T00:00:00Z",
            "updatedAt": "2026-01-01T00:00:00Z",
            "version": 1,
        }
    )


def _chat(*messages: tuple[str, str], **fields: object) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model": "chat", "messages": [{"role": r, "content": c} for r, c in messages], **fields}
    )


def _hit(text: str, page: int | None = None, score: float = 0.9) -> SearchHit:
    metadata: dict[str, object] = {"filename": "guide.pdf"}
    if page is not None:
        metadata["page"] = page
    return SearchHit("doc1", 3, text, "s3://docs/default/guide.pdf", score, metadata)


def test_options_are_validated_naming_the_field() -> None:
    assert options_of({"messages": []}) is None
    options = options_of({"lisa_rag": {"repositoryId": "default"}})
    assert options is not None
    assert (options.repository_id, options.k, options.filter) == ("default", 4, {})
    for bad, param in [
        ({"repositoryId": "default", "k": 51}, "lisa_rag.k"),
        ({"k": 2}, "lisa_rag.repositoryId"),
        ({"repositoryId": "default", "extra": 1}, "lisa_rag.extra"),
        ("default", "lisa_rag"),
    ]:
        with pytest.raises(ServeError) as caught:
            options_of({"lisa_rag": bad})
        assert caught.value.status == 422
        assert caught.value.param == param


def test_the_query_is_the_last_user_message() -> None:
    assert query_of(_chat(("user", "first"), ("assistant", "a"), ("user", "second"))) == "second"
    with pytest.raises(ServeError, match="user message"):
        query_of(_chat(("system", "only a system prompt")))


def test_budget_follows_the_models_limits() -> None:
    assert input_budget_tokens(_model(None), _chat(("user", "q"))) == DEFAULT_INPUT_TOKENS
    limits = {"MAX_INPUT_LENGTH": "1536", "MAX_TOTAL_TOKENS": "2048"}
    assert input_budget_tokens(_model(limits), _chat(("user", "q"))) == 1536
    assert input_budget_tokens(_model(limits), _chat(("user", "q"), max_tokens=1000)) == 1048
    assert input_budget_tokens(_model({"MAX_TOTAL_TOKENS": "1024"}), _chat(("user", "q"))) == 1024 - 256


def test_passages_are_added_best_first_while_they_fit() -> None:
    hits = [_hit("A" * 100, page=2), _hit("B" * 100), _hit("C" * 10)]
    text, used = context_message(hits, budget_chars=len(INSTRUCTIONS) + 2 * 140)
    assert [h.text[0] for h in used] == ["A", "B"]  # C would fit but comes after B, which is kept in rank order
    assert "[1] (source: guide.pdf, page 2)\n" + "A" * 100 in text
    assert "[2] (source: guide.pdf)\n" + "B" * 100 in text
    assert "C" * 10 not in text
    assert context_message(hits, budget_chars=50) == (INSTRUCTIONS, [])
    assert CHARS_PER_TOKEN >= 3  # conservative: fewer characters per token than English averages


def test_context_joins_a_leading_system_message_or_comes_first() -> None:
    with_system = _with_context(_chat(("system", "Be brief."), ("user", "q")), "CTX")
    assert [(m.role, m.content) for m in with_system.messages] == [("system", "Be brief.\n\nCTX"), ("user", "q")]
    without = _with_context(_chat(("user", "q")), "CTX")
    assert [(m.role, m.content) for m in without.messages] == [("system", "CTX"), ("user", "q")]


def test_sources_name_the_document_page_chunk_and_score() -> None:
    assert source_wire(1, "default", _hit("text", page=4, score=0.87654321)) == {
        "index": 1,
        "repositoryId": "default",
        "documentId": "doc1",
        "source": "s3://docs/default/guide.pdf",
        "filename": "guide.pdf",
        "page": 4,
        "chunkIndex": 3,
        "score": 0.876543,
        "text": "text",
    }


@pytest.mark.parametrize(
    "error",
    [
        psycopg.errors.UndefinedTable('relation "rag_x_chunks" does not exist'),
        psycopg.errors.InternalError_("cache lookup failed"),
        opensearchpy.exceptions.SerializationError("bad response"),
        opensearchpy.exceptions.ConnectionError("N/A", "refused", None),
    ],
)
def test_store_failures_the_rag_code_did_not_map_are_a_clear_503(error: Exception) -> None:
    class BrokenService:
        def repository(self, *args: object, **kwargs: object) -> None:
            raise error

    principal = Principal(username="alice", groups=(), is_admin=False, via="token")
    options = options_of({"lisa_rag": {"repositoryId": "default"}})
    assert options is not None
    with pytest.raises(ServeError) as caught:
        RagAugmenter(BrokenService())._retrieve(principal, options, "owls?")
    assert caught.value.status == 503
    assert "unavailable" in str(caught.value)
