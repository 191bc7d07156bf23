"""The data plane's public routes (what API Gateway hands to the router under `/v1/`): one table, which the router
serves (router/app.py maps each operation id to its handler) and the OpenAPI document describes.

Errors are OpenAI's `{"error": {...}}` on every one of them (`types.ErrorResponse`); an operation with `stream`
answers `text/event-stream` when its body asks for `"stream": true` (generateStream always does).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from chalicelib.apidocs.operations import Operation

_T = "chalicelib.serve.types"


class DataPlaneRoute(NamedTuple):
    method: str
    path: str
    operation: Operation


def _op(operation_id: str, summary: str, response: str, **kwargs: Any) -> Operation:
    return Operation(operation_id=operation_id, summary=summary, responses={200: f"{_T}:{response}"}, **kwargs)


_MODEL_ERRORS = (404, 422, 429, 502, 503, 504)
_OPENAI, _NATIVE = "openai", "native"

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
            body=f"{_T}:ChatCompletionRequest",
            stream=f"{_T}:ChatCompletionChunk",
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
            body=f"{_T}:CompletionRequest",
            stream=f"{_T}:Completion",
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
            body=f"{_T}:EmbeddingRequest",
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
            query=f"{_T}:ModelTypesQuery",
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
            query=f"{_T}:DescribeModelQuery",
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
            query=f"{_T}:ModelTypesQuery",
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
            body=f"{_T}:NativeRequest",
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
            body=f"{_T}:NativeRequest",
            stream=f"{_T}:NativeStreamResponse",
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
            body=f"{_T}:NativeRequest",
            errors=_MODEL_ERRORS,
            tag=_NATIVE,
        ),
    ),
)
