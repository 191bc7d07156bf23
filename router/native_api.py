"""The LISA-native v1 API of the `lisapy` SDK.

- `GET /v1/listModels[?modelTypes=textgen&modelTypes=embedding]` → `{"textgen": {"ecs.textgen.tgi": ["name"]}, ...}`
- `GET /v1/describeModel?provider=P&modelName=N` → `{"provider", "modelName", "modelType", "modelKwargs", "streaming"}`
- `GET /v1/describeModels[?modelTypes=...]` → `{"textgen": {"ecs.textgen.tgi": [<describeModel>, ...]}, ...}`
- `POST /v1/generate` `{"provider", "modelName", "text", "modelKwargs"}` → `{"generatedText", "generatedTokens",
  "finishReason"}` (TGI's finish reasons: `length`, `eos_token`, `stop_sequence`)
- `POST /v1/generateStream` (same body) → exactly one `data: {"token": {"text", "special"}}` event per generated
  token, the last token's event also carrying `"generatedTokens"` and `"finishReason"` (the first LISA's format: a
  one-token generation is one event). lisapy yields that last event with an empty token, dropping its text; other
  clients get every token. No `[DONE]` line: lisapy parses every `data:` line as JSON. A failure mid-stream is a
  final `data: {"error": {...}}` event.
- `POST /v1/embeddings` (same body; `text` a string or a list) → `{"embeddings": [[...], ...]}`

Listings show the models that can be called now; describeModel describes any registered model.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from aiohttp import web

from chalicelib.config import ModelType
from chalicelib.contracts.native import NativeRequest
from chalicelib.serve import mapping, sse
from chalicelib.serve.errors import ServeError, invalid
from router.accounting import count_tokens, usage_of
from router.http import json_response
from router.services import Services, backend_event, backend_name, header_count, relay
from router.vllm_api import VllmApi, serves_openai

if TYPE_CHECKING:
    import aiohttp

    from chalicelib.registry.models import ModelRecord

_TYPES = tuple(t.value for t in ModelType)


def _model_types(request: web.Request) -> list[str]:
    wanted = request.query.getall("modelTypes", [])
    for value in wanted:
        if value not in _TYPES:
            raise ServeError(
                422,
                f"modelTypes: {value!r} is not one of {', '.join(_TYPES)}",
                param="modelTypes",
                code="invalid_value",
            )
    return list(dict.fromkeys(wanted)) or list(_TYPES)


def metadata(record: ModelRecord) -> dict[str, Any]:
    """A model as describeModel shows it: its complete default `modelKwargs` included."""
    return {
        "provider": record.provider,
        "modelName": record.model_name,
        "modelType": record.model_type.value,
        "modelKwargs": mapping.default_model_kwargs(record.provider, record.default_model_kwargs),
        "streaming": record.streaming,
    }


class NativeApi:
    """Handlers of the LISA-native v1 routes."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.vllm = VllmApi(services)

    async def _available(self, request: web.Request) -> tuple[list[str], list[ModelRecord]]:
        await self.services.caller(request)
        types = _model_types(request)
        records = [r for r in await self.services.catalog.records() if r.is_available and r.model_type.value in types]
        return types, records

    async def list_models(self, request: web.Request) -> web.Response:
        """GET /v1/listModels."""
        types, records = await self._available(request)
        listing: dict[str, dict[str, list[str]]] = {t: {} for t in types}
        for record in records:
            listing[record.model_type.value].setdefault(record.provider, []).append(record.model_name)
        return json_response(listing)

    async def describe_models(self, request: web.Request) -> web.Response:
        """GET /v1/describeModels."""
        types, records = await self._available(request)
        described: dict[str, dict[str, list[dict[str, Any]]]] = {t: {} for t in types}
        for record in records:
            described[record.model_type.value].setdefault(record.provider, []).append(metadata(record))
        return json_response(described)

    async def describe_model(self, request: web.Request) -> web.Response:
        """GET /v1/describeModel."""
        await self.services.caller(request)
        provider, name = request.query.get("provider", ""), request.query.get("modelName", "")
        for param, value in (("provider", provider), ("modelName", name)):
            if not value:
                raise invalid(f"query parameter {param!r} is required", param, code="missing_parameter")
        record = await self.services.catalog.resolve(name, "modelName")
        self._check_provider(record, provider)
        return json_response(metadata(record))

    @staticmethod
    def _check_provider(record: ModelRecord, provider: str) -> None:
        if record.provider != provider:
            raise ServeError(
                404,
                f"model {record.model_name!r} is not served by provider {provider!r}"
                f" (its provider is {record.provider!r})",
                param="provider",
                code="model_not_found",
            )

    async def _request(self, request: web.Request, model_type: ModelType) -> tuple[NativeRequest, ModelRecord]:
        await self.services.caller(request)
        req = mapping.validate(NativeRequest, await self.services.body(request))
        record = await self.services.model(req.model_name, model_type, request, param="modelName")
        self._check_provider(record, req.provider)
        return req, record

    async def generate(self, request: web.Request) -> web.Response:
        """POST /v1/generate."""
        req, record = await self._request(request, ModelType.TEXTGEN)
        if serves_openai(record):
            return await self.vllm.generate(request, req, record)
        text = mapping.native_text(req.text)
        params = mapping.native_tgi_parameters(req.model_kwargs, record.default_model_kwargs)
        answer, headers = await self.services.http.call(
            f"{record.endpoint_url}/generate", mapping.generate_request(text, params), backend_name(record)
        )
        response = mapping.native_generate_response(answer)
        count_tokens(request, header_count(headers, "x-prompt-tokens"), response["generatedTokens"])
        return json_response(response)

    async def generate_stream(self, request: web.Request) -> web.StreamResponse:
        """POST /v1/generateStream."""
        req, record = await self._request(request, ModelType.TEXTGEN)
        if not record.streaming:
            raise ServeError(
                400, f"model {record.model_name!r} does not stream", param="modelName", code="no_streaming"
            )
        if serves_openai(record):
            return await self.vllm.generate_stream(request, req, record)
        text = mapping.native_text(req.text)
        params = mapping.native_tgi_parameters(req.model_kwargs, record.default_model_kwargs)
        backend_label = backend_name(record)
        body = mapping.generate_request(text, params, stream=True)
        async with self.services.http.stream(f"{record.endpoint_url}/generate_stream", body, backend_label) as upstream:
            return await relay(request, self._events(request, upstream, backend_label), done=False)

    async def _events(
        self, request: web.Request, upstream: aiohttp.ClientResponse, backend_label: str
    ) -> AsyncIterator[bytes]:
        counted = usage_of(request)
        async for event in self.services.http.events(upstream, backend_label):
            tgi = mapping.stream_response(backend_event(event.data, backend_label))
            counted.produced()  # one event per token; the last one's details have the exact figures
            if tgi.details is not None:
                counted.tokens(tgi.details.input_length, tgi.details.generated_tokens)
            yield sse.encode(mapping.native_stream_event(tgi))

    async def embeddings(self, request: web.Request) -> web.Response:
        """POST /v1/embeddings."""
        req, record = await self._request(request, ModelType.EMBEDDING)
        texts = mapping.native_texts(req.text)
        vectors, tokens = await self.services.embed(record, texts, req.model_kwargs)
        count_tokens(request, prompt=tokens)
        return json_response({"embeddings": vectors})
