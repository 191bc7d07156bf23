"""The OpenAI API LISA serves at /v1/openai: chat completions, completions, embeddings, models, errors.

Requests are validated with these models at the edge (unknown fields are ignored, as OpenAI does for forward
compatibility); responses are built with them, so what the router writes is what the SDKs read.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from chalicelib.contracts.base import WireModel

MAX_STOP_SEQUENCES = 4  # TGI's default `--max-stop-sequences`
MAX_BATCH_PROMPTS = 32  # completions `prompt` lists and embeddings `input` lists (TEI's default client batch)

NonEmptyStr = Annotated[str, Field(min_length=1)]
Penalty = Annotated[float, Field(ge=-2.0, le=2.0)]


class OpenWireModel(WireModel):
    """A wire object whose extra fields are kept (forwarded as sent)."""

    model_config = ConfigDict(extra="allow")


class TextContentPart(OpenWireModel):
    """One part of a multi-part message `content`; only `{"type": "text", "text": ...}` parts are served."""

    type: str
    text: str | None = None


class ChatMessage(OpenWireModel):
    """A chat message; extra fields (`name`, `tool_calls`, `tool_call_id`) are forwarded to the chat template."""

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[TextContentPart] | None = None


class StreamOptions(WireModel):
    """`stream_options`: `include_usage` asks for a final chunk carrying `usage`."""

    include_usage: bool = False


class _SamplingRequest(WireModel):
    """Sampling parameters shared by chat completions and completions (OpenAI ranges)."""

    model: NonEmptyStr
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    n: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=0)
    frequency_penalty: Penalty | None = None
    presence_penalty: Penalty | None = None
    logit_bias: dict[str, float] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None


class ChatCompletionRequest(_SamplingRequest):
    """POST /v1/openai/chat/completions."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    modalities: list[str] | None = None
    audio: dict[str, Any] | None = None


class CompletionRequest(_SamplingRequest):
    """POST /v1/openai/completions (the legacy text completions API)."""

    prompt: str | list[str] | list[int] | list[list[int]]
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=5)
    best_of: int | None = Field(None, ge=1)
    suffix: str | None = None


class EmbeddingRequest(WireModel):
    """POST /v1/openai/embeddings."""

    model: NonEmptyStr
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None


class Usage(WireModel):
    """Token counts of a response (embeddings: prompt tokens only)."""

    prompt_tokens: int
    completion_tokens: int = 0
    total_tokens: int


class ChatCompletionMessage(OpenWireModel):
    """The assistant's answer; extra fields (`refusal`, ...) are passed through from the backend."""

    role: Literal["assistant"]
    content: str | None
    tool_calls: list[dict[str, Any]] | None = None


class ChatCompletionChoice(WireModel):
    """One choice of a chat completion (LISA always returns one)."""

    index: int
    message: ChatCompletionMessage
    logprobs: dict[str, Any] | None = None
    finish_reason: Literal["stop", "length", "tool_calls", "content_filter"] | None


class ChatCompletion(WireModel):
    """A non-streamed chat completions response."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    system_fingerprint: str | None = None
    choices: list[ChatCompletionChoice]
    usage: Usage


class ChunkDelta(OpenWireModel):
    """What one streamed chunk adds to the message (role first, then content)."""

    role: Literal["assistant"] | None = None
    content: str | None = None


class ChatCompletionChunkChoice(WireModel):
    """One choice of a streamed chunk; `finish_reason` is set on the last."""

    index: int
    delta: ChunkDelta
    logprobs: dict[str, Any] | None = None
    finish_reason: Literal["stop", "length", "tool_calls", "content_filter"] | None = None


class ChatCompletionChunk(WireModel):
    """One `data:` event of a streamed chat completion; the usage chunk has no choices."""

    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    system_fingerprint: str | None = None
    choices: list[ChatCompletionChunkChoice]
    usage: Usage | None = None


class CompletionLogprobs(WireModel):
    """Legacy completions `logprobs`: parallel lists, one entry per generated token."""

    tokens: list[str]
    token_logprobs: list[float | None]
    top_logprobs: list[dict[str, float]] | None = None
    text_offset: list[int]


class CompletionChoice(WireModel):
    """One completions choice (one per prompt)."""

    index: int
    text: str
    logprobs: CompletionLogprobs | None = None
    finish_reason: Literal["stop", "length"] | None


class Completion(WireModel):
    """A completions response; the streamed chunks have the same shape (object `text_completion`)."""

    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    system_fingerprint: str | None = None
    choices: list[CompletionChoice]
    usage: Usage | None = None


class EmbeddingData(WireModel):
    """One input's vector, at its `index`."""

    object: Literal["embedding"]
    index: int
    embedding: list[float] | str  # str: base64 of little-endian float32 (`encoding_format: base64`)


class EmbeddingResponse(WireModel):
    """An embeddings response."""

    object: Literal["list"]
    data: list[EmbeddingData]
    model: str
    usage: Usage


class ModelObject(WireModel):
    """One model of GET /v1/openai/models: OpenAI's fields, then LISA's (how to call it)."""

    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    provider: str | None = None
    model_type: Literal["textgen", "embedding"] | None = None
    streaming: bool | None = None


class ModelList(WireModel):
    """GET /v1/openai/models."""

    object: Literal["list"]
    data: list[ModelObject]


class ErrorDetail(WireModel):
    """The `error` of an error response: OpenAI's four fields, `param` naming the offending field."""

    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(WireModel):
    """Every error LISA's inference APIs answer (and the payload of an SSE error event)."""

    error: ErrorDetail


# -- what an OpenAI-protocol engine (vLLM) answers ---------------------------------------------------------------
# Read only as far as the router needs (ids to rewrite, usage to meter, finish reasons for the native API); every
# other field (vLLM's `stop_reason`, `prompt_logprobs`, a message's `tool_calls` or `reasoning_content`, ...) is
# kept and passed through as the engine sent it.


class EngineChoice(OpenWireModel):
    """One choice of an engine's completion or chunk (chat: `message`/`delta`; completions: `text`)."""

    index: int = 0
    text: str | None = None
    finish_reason: str | None = None
    stop_reason: int | str | None = None  # vLLM: the matched stop string, a stop token id, or null (EOS)


class EngineCompletion(OpenWireModel):
    """An engine's chat completion, completion, or one streamed chunk of either (the usage chunk has no choices)."""

    choices: list[EngineChoice]
    usage: Usage | None = None
