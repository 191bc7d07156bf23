"""Wire formats, as pydantic models: the wire format is the documentation.

- OpenAI (what LISA serves at /v1/openai): chat completions, completions, embeddings, models, errors.
- TGI (text-generation-inference, what LISA calls): /generate, /generate_stream, /info, error bodies.
- TEI (text-embeddings-inference): /embed, /info. Instructor containers: POST /predictions/model.
- LISA-native v1 (the `lisapy` SDK): /v1/generate, /v1/generateStream, /v1/embeddings, model metadata.

Requests are validated with these models at the edge (unknown fields are ignored, as OpenAI does for forward
compatibility). Responses on the hot path are built as plain dicts shaped exactly like the response models below
(tests validate them against these models).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

MAX_STOP_SEQUENCES = 4  # TGI's default `--max-stop-sequences`
MAX_BATCH_PROMPTS = 32  # completions `prompt` lists and embeddings `input` lists (TEI's default client batch)

NonEmptyStr = Annotated[str, Field(min_length=1)]
Penalty = Annotated[float, Field(ge=-2.0, le=2.0)]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class _Open(BaseModel):
    """A wire object whose extra fields are kept (forwarded as sent)."""

    model_config = ConfigDict(extra="allow")


# --------------------------------------------------------------------------------------------------------------
# OpenAI: requests
# --------------------------------------------------------------------------------------------------------------
class TextContentPart(_Open):
    """One part of a multi-part message `content`; only `{"type": "text", "text": ...}` parts are served."""

    type: str
    text: str | None = None


class ChatMessage(_Open):
    """A chat message; extra fields (`name`, `tool_calls`, `tool_call_id`) are forwarded to the chat template."""

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[TextContentPart] | None = None


class StreamOptions(_Wire):
    include_usage: bool = False


class _SamplingRequest(_Wire):
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


class EmbeddingRequest(_Wire):
    """POST /v1/openai/embeddings."""

    model: NonEmptyStr
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None


# --------------------------------------------------------------------------------------------------------------
# OpenAI: responses
# --------------------------------------------------------------------------------------------------------------
class Usage(_Wire):
    prompt_tokens: int
    completion_tokens: int = 0
    total_tokens: int


class ChatCompletionMessage(_Open):
    role: Literal["assistant"]
    content: str | None
    tool_calls: list[dict[str, Any]] | None = None


class ChatCompletionChoice(_Wire):
    index: int
    message: ChatCompletionMessage
    logprobs: dict[str, Any] | None = None
    finish_reason: Literal["stop", "length", "tool_calls", "content_filter"] | None


class ChatCompletion(_Wire):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    system_fingerprint: str | None = None
    choices: list[ChatCompletionChoice]
    usage: Usage


class ChunkDelta(_Open):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChatCompletionChunkChoice(_Wire):
    index: int
    delta: ChunkDelta
    logprobs: dict[str, Any] | None = None
    finish_reason: Literal["stop", "length", "tool_calls", "content_filter"] | None = None


class ChatCompletionChunk(_Wire):
    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    system_fingerprint: str | None = None
    choices: list[ChatCompletionChunkChoice]
    usage: Usage | None = None


class CompletionLogprobs(_Wire):
    tokens: list[str]
    token_logprobs: list[float | None]
    top_logprobs: list[dict[str, float]] | None = None
    text_offset: list[int]


class CompletionChoice(_Wire):
    index: int
    text: str
    logprobs: CompletionLogprobs | None = None
    finish_reason: Literal["stop", "length"] | None


class Completion(_Wire):
    """A completions response; the streamed chunks have the same shape (object `text_completion`)."""

    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    system_fingerprint: str | None = None
    choices: list[CompletionChoice]
    usage: Usage | None = None


class EmbeddingData(_Wire):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str  # str: base64 of little-endian float32 (`encoding_format: base64`)


class EmbeddingResponse(_Wire):
    object: Literal["list"]
    data: list[EmbeddingData]
    model: str
    usage: Usage


class ModelObject(_Wire):
    """One model of GET /v1/openai/models: OpenAI's fields, then LISA's (how to call it)."""

    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    provider: str | None = None
    model_type: Literal["textgen", "embedding"] | None = None
    streaming: bool | None = None


class ModelList(_Wire):
    object: Literal["list"]
    data: list[ModelObject]


class ErrorDetail(_Wire):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(_Wire):
    """Every error LISA's inference APIs answer (and the payload of an SSE error event)."""

    error: ErrorDetail


# --------------------------------------------------------------------------------------------------------------
# TGI
# --------------------------------------------------------------------------------------------------------------
class TgiParameters(_Wire):
    """`parameters` of TGI's /generate and /generate_stream (TGI 3.x names and ranges)."""

    do_sample: bool = False
    max_new_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, gt=0.0)
    top_k: int | None = Field(None, gt=0)
    top_p: float | None = Field(None, gt=0.0, lt=1.0)
    typical_p: float | None = Field(None, gt=0.0, lt=1.0)
    repetition_penalty: float | None = Field(None, gt=0.0)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    return_full_text: bool | None = None
    stop: list[str] = Field(default_factory=list, max_length=MAX_STOP_SEQUENCES)
    seed: int | None = Field(None, ge=0)
    truncate: int | None = Field(None, gt=0)
    watermark: bool = False
    details: bool = False
    decoder_input_details: bool = False
    top_n_tokens: int | None = Field(None, ge=0, le=5)


class TgiGenerateRequest(_Wire):
    inputs: NonEmptyStr
    parameters: TgiParameters = Field(default_factory=TgiParameters)
    stream: bool = False


class TgiToken(_Wire):
    id: int
    text: str
    logprob: float | None = None
    special: bool


class TgiDetails(_Wire):
    finish_reason: Literal["length", "eos_token", "stop_sequence"]
    generated_tokens: int
    seed: int | None = None
    prefill: list[dict[str, Any]] = Field(default_factory=list)
    tokens: list[TgiToken] = Field(default_factory=list)
    top_tokens: list[list[TgiToken]] | None = None


class TgiGenerateResponse(_Wire):
    generated_text: str
    details: TgiDetails | None = None


class TgiStreamDetails(_Wire):
    finish_reason: Literal["length", "eos_token", "stop_sequence"]
    generated_tokens: int
    seed: int | None = None
    input_length: int | None = None


class TgiStreamResponse(_Wire):
    """One event of /generate_stream; the last carries `generated_text` and `details`."""

    index: int | None = None
    token: TgiToken
    top_tokens: list[TgiToken] | None = None
    generated_text: str | None = None
    details: TgiStreamDetails | None = None


class TgiInfo(_Wire):
    model_id: str
    model_dtype: str | None = None
    max_input_tokens: int | None = None
    max_total_tokens: int | None = None
    max_stop_sequences: int | None = None
    max_best_of: int | None = None
    version: str | None = None


class TgiError(_Wire):
    """TGI's and TEI's error body."""

    error: str
    error_type: str | None = None


# --------------------------------------------------------------------------------------------------------------
# TEI and instructor
# --------------------------------------------------------------------------------------------------------------
class TeiEmbedRequest(_Wire):
    inputs: str | list[str]
    normalize: bool = True
    truncate: bool = False


class TeiInfo(_Wire):
    model_id: str
    max_input_length: int | None = None
    max_client_batch_size: int | None = None
    model_type: dict[str, Any] | None = None
    version: str | None = None


class InstructorRequest(_Wire):
    """POST /predictions/model of an instructor container; answers a JSON list of vectors, one per text."""

    instruction: str
    text: str | list[str]


# --------------------------------------------------------------------------------------------------------------
# LISA-native v1 (lisapy)
# --------------------------------------------------------------------------------------------------------------
class NativeRequest(_Wire):
    """POST /v1/generate, /v1/generateStream and /v1/embeddings."""

    provider: NonEmptyStr
    model_name: NonEmptyStr = Field(alias="modelName")
    text: str | list[str]
    model_kwargs: dict[str, Any] = Field(default_factory=dict, alias="modelKwargs")


class TgiModelKwargs(BaseModel):
    """`modelKwargs` of `ecs.textgen.tgi` models (TGI's own parameter names; defaults as LISA v1)."""

    model_config = ConfigDict(extra="forbid")

    max_new_tokens: int = Field(50, ge=1)
    top_k: int | None = Field(None, gt=0)
    top_p: float | None = Field(None, gt=0.0, lt=1.0)
    typical_p: float | None = Field(None, gt=0.0, lt=1.0)
    temperature: float | None = Field(None, ge=0.0)
    repetition_penalty: float | None = Field(None, gt=0.0)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    return_full_text: bool = False
    truncate: int | None = Field(None, gt=0)
    stop_sequences: list[str] = Field(default_factory=list, max_length=MAX_STOP_SEQUENCES)
    seed: int | None = Field(None, ge=0)
    do_sample: bool = False
    watermark: bool = False


class TeiModelKwargs(BaseModel):
    """`modelKwargs` of `ecs.embedding.tei` models."""

    model_config = ConfigDict(extra="forbid")

    normalize: bool = True
    truncate: bool = True


class InstructorModelKwargs(BaseModel):
    """`modelKwargs` of `ecs.embedding.instructor` models."""

    model_config = ConfigDict(extra="forbid")

    instruction: str = "Represent the document:"


class NativeGenerateResponse(_Wire):
    generated_text: str = Field(alias="generatedText")
    generated_tokens: int = Field(alias="generatedTokens")
    finish_reason: str = Field(alias="finishReason")


class NativeToken(_Wire):
    text: str
    special: bool


class NativeStreamResponse(_Wire):
    """One `data:` event of /v1/generateStream; the last carries `finishReason` and `generatedTokens`."""

    token: NativeToken
    generated_tokens: int | None = Field(None, alias="generatedTokens")
    finish_reason: str | None = Field(None, alias="finishReason")


class NativeEmbeddingsResponse(_Wire):
    embeddings: list[list[float]]


class ModelMetadata(_Wire):
    """One model in /v1/describeModel(s)."""

    provider: str
    model_name: str = Field(alias="modelName")
    model_type: Literal["textgen", "embedding"] = Field(alias="modelType")
    model_kwargs: dict[str, Any] = Field(alias="modelKwargs")
    streaming: bool


ModelTypeName = Literal["textgen", "embedding"]


class ModelListing(RootModel[dict[ModelTypeName, dict[str, list[str]]]]):
    """GET /v1/listModels: model type → provider → model names."""


class ModelDescriptions(RootModel[dict[ModelTypeName, dict[str, list[ModelMetadata]]]]):
    """GET /v1/describeModels: model type → provider → the models' metadata."""


class ModelTypesQuery(_Wire):
    """`?modelTypes=textgen&modelTypes=embedding`: the types listed (none: all)."""

    model_types: list[ModelTypeName] = Field(default_factory=list, alias="modelTypes")


class DescribeModelQuery(_Wire):
    """`?provider=P&modelName=N` of GET /v1/describeModel."""

    provider: NonEmptyStr
    model_name: NonEmptyStr = Field(alias="modelName")
