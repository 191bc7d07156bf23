"""Embeddings: OpenAI and native inputs out to TEI / instructor, their vectors back as OpenAI's response."""

from __future__ import annotations

import base64
import sys
from array import array
from collections.abc import Mapping, Sequence
from typing import Any

from chalicelib.contracts.native import InstructorModelKwargs
from chalicelib.contracts.openai import MAX_BATCH_PROMPTS, EmbeddingRequest
from chalicelib.serve.errors import ServeError, invalid, unsupported
from chalicelib.serve.mapping.model_kwargs import instructor_kwargs, tei_kwargs
from chalicelib.serve.mapping.sampling import usage

DEFAULT_INSTRUCTION = InstructorModelKwargs.model_fields["instruction"].default


def embedding_inputs(req: EmbeddingRequest) -> list[str]:
    """The texts of an embeddings request (1..MAX_BATCH_PROMPTS non-empty strings)."""
    if req.dimensions is not None:
        raise unsupported("dimensions", "embeddings have the model's own dimension")
    value = req.input
    texts = [value] if isinstance(value, str) else value
    if any(not isinstance(t, str) for t in texts):
        raise unsupported("input", "token-id inputs cannot be sent to the embedding backend; send text")
    if not 0 < len(texts) <= MAX_BATCH_PROMPTS:
        raise invalid(f"'input' must hold 1 to {MAX_BATCH_PROMPTS} texts, got {len(texts)}", "input")
    for i, text in enumerate(texts):
        if not text:
            raise invalid("'input' texts must not be empty", f"input.{i}" if len(texts) > 1 else "input")
    return texts  # type: ignore[return-value]


def embeddings_response(
    vectors: Sequence[Sequence[float]], model: str, encoding_format: str, prompt_tokens: int
) -> dict[str, Any]:
    """OpenAI embeddings response (`encoding_format: base64` packs little-endian float32, as OpenAI does)."""
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": float32_base64(vector) if encoding_format == "base64" else vector,
        }
        for i, vector in enumerate(vectors)
    ]
    return {"object": "list", "data": data, "model": model, "usage": usage(prompt_tokens, 0)}


def float32_base64(vector: Sequence[float]) -> str:
    """Base64 of a vector as little-endian float32 (what the OpenAI SDK decodes)."""
    packed = array("f", vector)
    if packed.itemsize != 4:  # pragma: no cover (every supported platform has 4-byte C floats)
        raise RuntimeError("float32 packing needs 4-byte C floats")
    if sys.byteorder != "little":  # pragma: no cover
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode()


def check_vectors(payload: Any, expected: int) -> list[list[float]]:
    """A backend's embeddings answer, checked: `expected` lists of numbers (else a 502)."""
    if (
        not isinstance(payload, list)
        or len(payload) != expected
        or not all(isinstance(v, list) and v and isinstance(v[0], int | float) for v in payload)
    ):
        raise ServeError(502, "the embedding backend answered something other than one vector per input")
    return payload


TEI_EMBED_PATH = "/embed"
INSTRUCTOR_EMBED_PATH = "/predictions/model"


def embed_request(
    provider: str,
    texts: Sequence[str],
    model_kwargs: Mapping[str, Any] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> tuple[str, dict[str, Any]]:
    """(path, body) that embed `texts` on an embedding backend: TEI `/embed` or instructor `/predictions/model`.

    The one request builder for both transports (the router's aiohttp backend, the Lambdas' httpx clients)."""
    if provider == "ecs.embedding.instructor":
        instructor = instructor_kwargs(model_kwargs or {}, defaults)
        return INSTRUCTOR_EMBED_PATH, {"instruction": instructor.instruction, "text": list(texts)}
    if provider == "ecs.embedding.tei":
        tei = tei_kwargs(model_kwargs or {}, defaults)
        return TEI_EMBED_PATH, {"inputs": list(texts), "normalize": tei.normalize, "truncate": tei.truncate}
    raise ServeError(400, f"provider {provider!r} is not an embedding provider", param="provider")
