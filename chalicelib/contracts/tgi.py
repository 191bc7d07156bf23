"""text-generation-inference's HTTP API (TGI 3.x, the subset LISA uses), written once and used both ways, as HF's
`text-generation` client does: LISA's router builds its requests with these models and reads the answers through
them (`chalicelib.serve.mapping`); LISA's CPU worker (`workers.tgi`) reads the requests and writes the answers.

Field names and JSON types are TGI's (serde: strict types, unknown fields ignored). The ranges TGI enforces depend
on the server's limits (`--max-top-n-tokens`, `--max-best-of`, ...) and come with TGI's own messages, so they are
checked by the server (`workers.tgi.validation`), not here. Answers are read leniently where the router does not
depend on a field (a token's `id`, the `id` of a chat chunk, which LISA replaces): TGI always sends them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from chalicelib.contracts.base import StrictWireModel, WireModel, omitted_when_none

FinishReason = Literal["length", "eos_token", "stop_sequence"]


# -- requests ---------------------------------------------------------------------------------------------------
class TgiParameters(StrictWireModel):
    """`parameters` of /generate, /generate_stream and the compat route `POST /`."""

    best_of: int | None = None
    temperature: float | None = None
    repetition_penalty: float | None = None
    frequency_penalty: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    typical_p: float | None = None
    do_sample: bool = False
    max_new_tokens: int | None = None
    return_full_text: bool | None = None
    stop: list[str] = Field(default_factory=list)
    truncate: int | None = None
    watermark: bool = False
    details: bool = False
    decoder_input_details: bool = False
    seed: int | None = None
    top_n_tokens: int | None = None
    grammar: Any = None


class TgiGenerateRequest(StrictWireModel):
    """POST /generate, /generate_stream and `POST /` (`stream` picks the answer of the compat route)."""

    inputs: str
    parameters: TgiParameters | None = None
    stream: bool = False


class TgiContentPart(StrictWireModel, extra="allow"):
    """One part of a multi-part message `content` (only `text` parts can be rendered by a chat template; the
    others, `image_url` for vision models, are forwarded as sent)."""

    type: str
    text: str | None = None


class TgiChatMessage(StrictWireModel, extra="allow"):
    """A Messages API message; extra fields (`tool_calls`, `tool_call_id`) are kept for the chat template."""

    role: str
    content: str | list[TgiContentPart] | None = None
    name: str | None = None


class TgiStreamOptions(StrictWireModel):
    """`stream_options` of the Messages and completions APIs."""

    include_usage: bool = False


class TgiOpenAIRequest(StrictWireModel):
    """The fields TGI's Messages API and completions API share (OpenAI's names)."""

    model: str | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    max_tokens: int | None = None
    n: int | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: TgiStreamOptions | None = None
    temperature: float | None = None
    top_p: float | None = None


class TgiChatRequest(TgiOpenAIRequest):
    """POST /v1/chat/completions: exactly the fields of TGI's `ChatRequest` (no `repetition_penalty`,
    `max_completion_tokens`, ...: TGI ignores them, so a client must not count on them)."""

    messages: list[TgiChatMessage] = Field(min_length=1)
    logit_bias: Any = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    tools: Any = None
    tool_prompt: str | None = None
    tool_choice: Any = None
    response_format: Any = None
    guideline: str | None = None


class TgiCompletionRequest(TgiOpenAIRequest):
    """POST /v1/completions (TGI's `CompletionRequest`: it adds `repetition_penalty` to OpenAI's fields)."""

    prompt: str | list[str]
    repetition_penalty: float | None = None
    echo: bool = False


class TgiTokenizeRequest(StrictWireModel):
    """POST /tokenize."""

    inputs: str
    add_special_tokens: bool = True


# -- responses --------------------------------------------------------------------------------------------------
class TgiToken(WireModel):
    """A generated token (and each of `top_tokens`)."""

    id: int | None = None
    text: str
    logprob: float | None = None
    special: bool = False


class TgiPrefillToken(WireModel):
    """A prompt token of `details.prefill` (its logprob: None for the first)."""

    id: int
    text: str
    logprob: float | None = None


class TgiBestOfSequence(WireModel):
    """One of `details.best_of_sequences`: a sampled sequence that lost to the best one."""

    generated_text: str
    finish_reason: FinishReason
    generated_tokens: int
    seed: int | None = None
    prefill: list[TgiPrefillToken] = Field(default_factory=list)
    tokens: list[TgiToken] = Field(default_factory=list)
    top_tokens: list[list[TgiToken]] | None = omitted_when_none()


class TgiDetails(WireModel):
    """`details` of /generate (`parameters.details`)."""

    finish_reason: FinishReason
    generated_tokens: int
    seed: int | None = None
    prefill: list[TgiPrefillToken] = Field(default_factory=list)
    tokens: list[TgiToken] = Field(default_factory=list)
    top_tokens: list[list[TgiToken]] | None = omitted_when_none()
    best_of_sequences: list[TgiBestOfSequence] | None = omitted_when_none()


class TgiGenerateResponse(WireModel):
    """The answer of /generate (the compat route answers a list of one)."""

    generated_text: str
    details: TgiDetails | None = omitted_when_none()


class TgiStreamDetails(WireModel):
    """`details` of the last /generate_stream event."""

    finish_reason: FinishReason
    generated_tokens: int
    seed: int | None = None
    input_length: int | None = None


class TgiStreamResponse(WireModel):
    """One `data:` event of /generate_stream; the last carries `generated_text` and `details` (else null)."""

    index: int | None = None
    token: TgiToken
    top_tokens: list[TgiToken] | None = omitted_when_none()
    generated_text: str | None = None
    details: TgiStreamDetails | None = None


# -- the Messages API's answers (OpenAI's shapes, TGI's finish reasons; fields TGI adds are kept) ---------------
class TgiUsage(WireModel):
    """`usage` of a chat completion (and of the last chunk of a stream that asked for it)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class TgiTopLogprob(WireModel, extra="allow"):
    """One alternative of `top_logprobs`."""

    token: str
    logprob: float | None = None


class TgiChatLogprob(WireModel, extra="allow"):
    """One generated token of `logprobs.content`, with its top alternatives."""

    token: str
    logprob: float | None = None
    top_logprobs: list[TgiTopLogprob] = Field(default_factory=list)


class TgiChatLogprobs(WireModel, extra="allow"):
    """`logprobs` of a choice (`logprobs: true`)."""

    content: list[TgiChatLogprob] = Field(default_factory=list)


class TgiOutputMessage(WireModel, extra="allow"):
    """The assistant's message of a chat completion (`tool_calls` and other fields are kept as sent)."""

    role: str
    content: str | None = None


class TgiChatChoice(WireModel, extra="allow"):
    """One choice of a chat completion; `finish_reason` as the server writes it (TGI's or OpenAI's words)."""

    index: int = 0
    message: TgiOutputMessage
    logprobs: TgiChatLogprobs | None = None
    finish_reason: str | None = None


class TgiChatCompletion(WireModel, extra="allow"):
    """The answer of POST /v1/chat/completions without `stream`."""

    id: str = ""
    object: str = "chat.completion"
    created: int | None = None
    model: str = ""
    system_fingerprint: str | None = None
    choices: list[TgiChatChoice] = Field(default_factory=list)
    usage: TgiUsage | None = None


class TgiChatDelta(WireModel, extra="allow"):
    """What one chunk adds to the message (`tool_calls` deltas are kept as sent)."""

    role: str | None = None
    content: str | None = None


class TgiChatChunkChoice(WireModel, extra="allow"):
    """The choice of a streamed chunk; `finish_reason` is set on the last."""

    index: int = 0
    delta: TgiChatDelta = Field(default_factory=TgiChatDelta)
    logprobs: TgiChatLogprobs | None = None
    finish_reason: str | None = None


class TgiChatCompletionChunk(WireModel, extra="allow"):
    """One `data:` event of a streamed chat completion; the usage chunk (`stream_options.include_usage`) has no
    choices."""

    id: str = ""
    object: str = "chat.completion.chunk"
    created: int = 0
    model: str = ""
    system_fingerprint: str | None = None
    choices: list[TgiChatChunkChoice] = Field(default_factory=list)
    usage: TgiUsage | None = None


class TgiTokenizedToken(WireModel):
    """One item of the list /tokenize answers: a token id and the span of the input it covers."""

    id: int
    text: str
    start: int
    stop: int


class TgiInfo(WireModel):
    """GET /info: the model and the server's limits (a client reads what it needs; TGI always sends them all)."""

    model_id: str
    model_sha: str | None = None
    model_dtype: str | None = None
    model_device_type: str | None = None
    model_pipeline_tag: str | None = None
    max_concurrent_requests: int | None = None
    max_best_of: int | None = None
    max_stop_sequences: int | None = None
    max_input_tokens: int | None = None
    max_total_tokens: int | None = None
    validation_workers: int | None = None
    max_client_batch_size: int | None = None
    max_batch_total_tokens: int | None = None
    max_batch_size: int | None = None
    router: str | None = None
    version: str | None = None
    sha: str | None = None
    docker_label: str | None = None


class TgiError(WireModel):
    """The error body of TGI and TEI (and of an error event in a stream)."""

    error: str
    error_type: str | None = None
