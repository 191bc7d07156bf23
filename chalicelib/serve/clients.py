"""Small synchronous clients for the inference backends (for Lambdas, e.g. RAG ingestion embedding documents).

Every client keeps one pooled `httpx.Client`; failures surface as `ServeError`: connection refused → 503,
timeout → 504, a backend refusal → 400 with the backend's message, other backend failures → 502.

    embedder = embedder_for(record.provider, record.endpoint_url, record.default_model_kwargs)
    vectors = embedder.embed(["first chunk", "second chunk"])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import httpx

from chalicelib.contracts.tei import TeiInfo
from chalicelib.serve.errors import ServeError, backend_timeout, backend_unreachable, from_backend
from chalicelib.serve.mapping import DEFAULT_INSTRUCTION, check_vectors, embed_request

DEFAULT_TIMEOUT = httpx.Timeout(120.0, connect=5.0)


class _Client:
    """One backend at `base_url`, over a pooled connection."""

    kind = "the model backend"

    def __init__(self, base_url: str, timeout: httpx.Timeout | float = DEFAULT_TIMEOUT) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> _Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _request(self, method: str, path: str, json: Any = None) -> httpx.Response:
        try:
            response = self._http.request(method, path, json=json)
        except httpx.TimeoutException:
            raise backend_timeout(f"{self.kind} at {self.base_url}", self._seconds()) from None
        except httpx.TransportError as error:
            raise backend_unreachable(f"{self.kind} at {self.base_url}", str(error) or type(error).__name__) from None
        if response.status_code >= 400:
            raise from_backend(response.status_code, response.content, self.kind)
        return response

    def _seconds(self) -> float:
        timeout = self._timeout
        if isinstance(timeout, httpx.Timeout):
            return float(timeout.read or timeout.connect or 0)
        return float(timeout)

    def _json(self, method: str, path: str, json: Any = None) -> Any:
        response = self._request(method, path, json)
        try:
            return response.json()
        except ValueError:
            raise ServeError(502, f"{self.kind} answered {path} with something other than JSON") from None

    def health(self) -> bool:
        """True when the backend answers GET /health with 2xx."""
        try:
            return self._http.get("/health").is_success
        except httpx.HTTPError:
            return False


class Embedder(Protocol):
    """What RAG needs from an embedding model: one vector per text."""

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order."""
        ...


class TeiClient(_Client):
    """text-embeddings-inference: POST /embed, GET /info."""

    kind = "the embedding backend"

    def __init__(
        self,
        base_url: str,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        normalize: bool = True,
        truncate: bool = True,
    ) -> None:
        super().__init__(base_url, timeout)
        self.normalize = normalize
        self.truncate = truncate

    def info(self) -> TeiInfo:
        """GET /info: the model and its limits."""
        return TeiInfo.model_validate(self._json("GET", "/info"))

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order (a ServeError when the backend fails)."""
        kwargs = {"normalize": self.normalize, "truncate": self.truncate}
        path, body = embed_request("ecs.embedding.tei", texts, kwargs)
        return check_vectors(self._json("POST", path, body), len(texts))


class InstructorClient(_Client):
    """An instructor container: POST /predictions/model `{"instruction", "text"}` → one vector per text."""

    kind = "the instructor embedding backend"

    def __init__(
        self, base_url: str, timeout: httpx.Timeout | float = DEFAULT_TIMEOUT, instruction: str = DEFAULT_INSTRUCTION
    ) -> None:
        super().__init__(base_url, timeout)
        self.instruction = instruction

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order (a ServeError when the backend fails)."""
        path, body = embed_request("ecs.embedding.instructor", texts, {"instruction": self.instruction})
        return check_vectors(self._json("POST", path, body), len(texts))


def embedder_for(
    provider: str,
    endpoint_url: str,
    model_kwargs: Mapping[str, Any] | None = None,
    timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
) -> TeiClient | InstructorClient:
    """The client for an embedding model's provider (`ecs.embedding.tei` or `ecs.embedding.instructor`)."""
    kwargs = dict(model_kwargs or {})
    if provider == "ecs.embedding.tei":
        return TeiClient(
            endpoint_url,
            timeout,
            normalize=bool(kwargs.get("normalize", True)),
            truncate=bool(kwargs.get("truncate", True)),
        )
    if provider == "ecs.embedding.instructor":
        return InstructorClient(endpoint_url, timeout, instruction=str(kwargs.get("instruction", DEFAULT_INSTRUCTION)))
    raise ServeError(400, f"provider {provider!r} is not an embedding provider", param="provider")
