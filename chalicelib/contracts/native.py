"""LISA-native v1 (the `lisapy` SDK): /v1/generate, /v1/generateStream, /v1/embeddings, model metadata.

`modelKwargs` use the backends' own parameter names (TGI, TEI, instructor), validated per provider.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, RootModel

from chalicelib.contracts.base import WireModel
from chalicelib.contracts.openai import MAX_STOP_SEQUENCES, NonEmptyStr


class NativeRequest(WireModel):
    """POST /v1/generate, /v1/generateStream and /v1/embeddings."""

    provider: NonEmptyStr
    model_name: NonEmptyStr = Field(alias="modelName")
    text: str | list[str]
    model_kwargs: dict[str, Any] = Field(default_factory=dict, alias="modelKwargs")


class TgiModelKwargs(WireModel):
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


class TeiModelKwargs(WireModel):
    """`modelKwargs` of `ecs.embedding.tei` models."""

    model_config = ConfigDict(extra="forbid")

    normalize: bool = True
    truncate: bool = True


class InstructorModelKwargs(WireModel):
    """`modelKwargs` of `ecs.embedding.instructor` models."""

    model_config = ConfigDict(extra="forbid")

    instruction: str = "Represent the document:"


class NativeGenerateResponse(WireModel):
    """POST /v1/generate: the text and TGI's own finish reason (`length`, `eos_token`, `stop_sequence`)."""

    generated_text: str = Field(alias="generatedText")
    generated_tokens: int = Field(alias="generatedTokens")
    finish_reason: str = Field(alias="finishReason")


class NativeToken(WireModel):
    """One generated token of a /v1/generateStream event."""

    text: str
    special: bool


class NativeStreamResponse(WireModel):
    """One `data:` event of /v1/generateStream; the last carries `finishReason` and `generatedTokens`."""

    token: NativeToken
    generated_tokens: int | None = Field(None, alias="generatedTokens")
    finish_reason: str | None = Field(None, alias="finishReason")


class NativeEmbeddingsResponse(WireModel):
    """POST /v1/embeddings: one vector per input text, in order."""

    embeddings: list[list[float]]


class ModelMetadata(WireModel):
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


class ModelTypesQuery(WireModel):
    """`?modelTypes=textgen&modelTypes=embedding`: the types listed (none: all)."""

    model_types: list[ModelTypeName] = Field(default_factory=list, alias="modelTypes")


class DescribeModelQuery(WireModel):
    """`?provider=P&modelName=N` of GET /v1/describeModel."""

    provider: NonEmptyStr
    model_name: NonEmptyStr = Field(alias="modelName")
