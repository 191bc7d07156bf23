"""The data plane's public routes (what API Gateway hands to the router under `/v1/`): one table, which the router
serves (router/app.py maps each operation id to its handler) and the OpenAPI document describes.

Errors are OpenAI's `{"error": {...}}` on every one of them (`contracts.openai.ErrorResponse`); an operation with
`stream` answers `text/event-stream` when its body asks for `"stream": true` (generateStream always does).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from chalicelib.apidocs.operations import Operation


class DataPlaneRoute(NamedTuple):
    """One public route: method, path and its OpenAPI operation."""

    method: str
    path: str
    operation: Operation


_MODEL_ERRORS = (404, 422, 429, 502, 503, 504)
_OPENAI, _NATIVE = "openai", "native"
_OPENAI_CONTRACTS, _NATIVE_CONTRACTS = "chalicelib.contracts.openai", "chalicelib.contracts.native"
_CONTRACTS_BY_TAG = {_OPENAI: _OPENAI_CONTRACTS, _NATIVE: _NATIVE_CONTRACTS}


def _op(operation_id: str, summary: str, response: str, *, tag: str, **kwargs: Any) -> Operation:
    """One operation whose 200 body is `response`, a model of the tag's contract module."""
    responses = {200: f"{_CONTRACTS_BY_TAG[tag]}:{response}"}
    return Operation(operation_id=operation_id, summary=summary, responses=responses, tag=tag, **kwargs)


DATA_PLANE: tuple[DataPlaneRoute, ...] = (
    DataPlaneRoute(
        "GET",
        "/v1/openai/models",
        _op("listOpenAIModels", "The models that can be called now", "ModelList", tag=_OPENAI),
    ),
    DataPlaneRoute(
        "POST",
        "/v1/openai/chat/completions",
        _op(
            "createChatCompletion",
            "A chat completion (the model's chat template renders the messages)",
            "ChatCompletion",
            body=f"{_OPENAI_CONTRACTS}:ChatCompletionRequest",
            stream=f"{_OPENAI_CONTRACTS}:ChatCompletionChunk",
            errors=_MODEL_ERRORS,
            tag=_OPENAI,
        ),
    ),
    DataPlaneRoute(
        "POST",
        "/v1/openai/completions",
        _op(
            "createCompletion",
            "A text completion of each prompt",
            "Completion",
            body=f"{_OPENAI_CONTRACTS}:CompletionRequest",
            stream=f"{_OPENAI_CONTRACTS}:Completion",
            errors=_MODEL_ERRORS,
            tag=_OPENAI,
        ),
    ),
    DataPlaneRoute(
        "POST",
        "/v1/openai/embeddings",
        _op(
            "createEmbeddings",
            "Embeddings of each input",
            "EmbeddingResponse",
            body=f"{_OPENAI_CONTRACTS}:EmbeddingRequest",
            errors=_MODEL_ERRORS,
            tag=_OPENAI,
        ),
    ),
    DataPlaneRoute(
        "GET",
        "/v1/listModels",
        _op(
            "listModels",
            "Model names by type and provider (lisapy)",
            "ModelListing",
            query=f"{_NATIVE_CONTRACTS}:ModelTypesQuery",
            errors=(422,),
            tag=_NATIVE,
        ),
    ),
    DataPlaneRoute(
        "GET",
        "/v1/describeModel",
        _op(
            "describeModel",
            "One model's metadata (lisapy)",
            "ModelMetadata",
            query=f"{_NATIVE_CONTRACTS}:DescribeModelQuery",
            errors=(404,),
            tag=_NATIVE,
        ),
    ),
    DataPlaneRoute(
        "GET",
        "/v1/describeModels",
        _op(
            "describeModels",
            "Model metadata by type and provider (lisapy)",
            "ModelDescriptions",
            query=f"{_NATIVE_CONTRACTS}:ModelTypesQuery",
            errors=(422,),
            tag=_NATIVE,
        ),
    ),
    DataPlaneRoute(
        "POST",
        "/v1/generate",
        _op(
            "generate",
            "Generate text from `text` (lisapy)",
            "NativeGenerateResponse",
            body=f"{_NATIVE_CONTRACTS}:NativeRequest",
            errors=_MODEL_ERRORS,
            tag=_NATIVE,
        ),
    ),
    DataPlaneRoute(
        "POST",
        "/v1/generateStream",
        Operation(
            operation_id="generateStream",
            summary="Generate text from `text`, one event per token (lisapy)",
            responses={},
            body=f"{_NATIVE_CONTRACTS}:NativeRequest",
            stream=f"{_NATIVE_CONTRACTS}:NativeStreamResponse",
            errors=_MODEL_ERRORS,
            tag=_NATIVE,
        ),
    ),
    DataPlaneRoute(
        "POST",
        "/v1/embeddings",
        _op(
            "embeddings",
            "Embeddings of `text` (lisapy)",
            "NativeEmbeddingsResponse",
            body=f"{_NATIVE_CONTRACTS}:NativeRequest",
            errors=_MODEL_ERRORS,
            tag=_NATIVE,
        ),
    ),
)
