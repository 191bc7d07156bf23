"""Moved to `chalicelib.contracts.openai`; these names stay only for modules outside the serving surface.

Remove once `workers/` and `chalicelib/apidocs/document.py` import from `chalicelib.contracts.openai`.
"""

from chalicelib.contracts.openai import (
    ChatCompletion,
    ChatCompletionChoice,
    ChatCompletionChunk,
    ChatCompletionChunkChoice,
    ChatCompletionMessage,
    ChunkDelta,
    Completion,
    CompletionChoice,
    EmbeddingData,
    EmbeddingResponse,
    ErrorResponse,
    ModelList,
    ModelObject,
    Usage,
)

__all__ = [
    "ChatCompletion",
    "ChatCompletionChoice",
    "ChatCompletionChunk",
    "ChatCompletionChunkChoice",
    "ChatCompletionMessage",
    "ChunkDelta",
    "Completion",
    "CompletionChoice",
    "EmbeddingData",
    "EmbeddingResponse",
    "ErrorResponse",
    "ModelList",
    "ModelObject",
    "Usage",
]
