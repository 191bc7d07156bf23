"""text-embeddings-inference's HTTP API (TEI 1.x, the subset LISA uses): what LISA's embedders send to a TEI server
and what LISA's CPU worker (`workers.tei`) accepts and answers.

Field names and JSON types are TEI's (serde: strict types, unknown fields ignored). TEI answers errors with TGI's
error body (`TgiError`, exported here as `TeiError`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import RootModel

from chalicelib.contracts.base import StrictWireModel, WireModel
from chalicelib.contracts.tgi import TgiError as TeiError

__all__ = [
    "TeiEmbedRequest",
    "TeiEmbedResponse",
    "TeiError",
    "TeiInfo",
    "TeiOpenAIEmbedRequest",
]


class TeiEmbedRequest(StrictWireModel):
    """POST /embed. `truncate` None: the server's `--auto-truncate` decides."""

    inputs: str | list[str]
    normalize: bool = True
    truncate: bool | None = None
    truncation_direction: Literal["Left", "Right", "left", "right"] = "Right"
    prompt_name: str | None = None
    dimensions: int | None = None


class TeiEmbedResponse(RootModel[list[list[float]]]):
    """The answer of /embed: one vector per input, in order."""


class TeiOpenAIEmbedRequest(StrictWireModel):
    """POST /v1/embeddings, TEI's OpenAI-compatible route."""

    input: str | list[str]
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: str | None = None


class TeiInfo(WireModel):
    """GET /info: the model and the server's limits (a client reads what it needs; TEI always sends them all)."""

    model_id: str
    model_sha: str | None = None
    model_dtype: str | None = None
    served_model_name: str | None = None
    model_type: dict[str, dict[str, str]] | None = None
    max_concurrent_requests: int | None = None
    max_input_length: int | None = None
    max_batch_tokens: int | None = None
    max_batch_requests: int | None = None
    max_client_batch_size: int | None = None
    auto_truncate: bool | None = None
    tokenization_workers: int | None = None
    version: str | None = None
    sha: str | None = None
    docker_label: str | None = None
