"""The OpenAI-protocol backend: models served by vLLM (`ecs.textgen.vllm`).

The OpenAI and LISA-native handlers validate the request and resolve the model as for every model, then hand a
vLLM model's request here (`serves_openai`). OpenAI requests are forwarded to vLLM's own OpenAI server with the
served name and the model's defaults (`chalicelib.serve.mapping.vllm`); answers and stream chunks come back as vLLM
sent them with LISA's id and model name, relayed chunk by chunk. LISA-native requests become /v1/completions calls
answered in the TGI shapes lisapy reads.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from chalicelib.config import InferenceContainer
from chalicelib.serve import mapping, sse
from chalicelib.serve.errors import ServeError
from chalicelib.serve.mapping import vllm
from router.accounting import count_tokens
from router.http import json_response
from router.services import Services, backend_event, backend_name, relay

if TYPE_CHECKING:
    import aiohttp
    from aiohttp import web

    from chalicelib.contracts.native import NativeRequest
    from chalicelib.contracts.openai import ChatCompletionRequest, CompletionRequest, EngineCompletion
    from chalicelib.registry.models import ModelRecord


def serves_openai(record: ModelRecord) -> bool:
    """Whether the model's engine speaks the OpenAI protocol (vLLM), so this module serves it."""
    return record.inference_container is InferenceContainer.VLLM


def served_name(record: ModelRecord) -> str:
    """The name the engine answers to: the model's name (`--served-model-name`, as runner and gpu_stack start it)."""
    return record.model_name


def _check_streaming(record: ModelRecord, param: str) -> None:
    if not record.streaming:
        raise ServeError(400, f"model {record.model_name!r} does not stream", param=param, code="no_streaming")


class VllmApi:
    """The handlers' vLLM half: forwarding, relaying, and the native API on /v1/completions."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def chat_completions(
        self,
        request: web.Request,
        req: ChatCompletionRequest,
        record: ModelRecord,
        extra: dict[str, Any] | None = None,
    ) -> web.StreamResponse:
        """POST /v1/openai/chat/completions (after validation and RAG); `extra`: fields to add to the answer."""
        body = vllm.chat_body(req, served_name(record), record.default_model_kwargs)
        return await self._forward(request, record, "/v1/chat/completions", body, "chatcmpl", req, extra or {})

    async def completions(
        self, request: web.Request, req: CompletionRequest, record: ModelRecord
    ) -> web.StreamResponse:
        """POST /v1/openai/completions (after validation)."""
        body = vllm.completion_body(req, served_name(record), record.default_model_kwargs)
        return await self._forward(request, record, "/v1/completions", body, "cmpl", req, {})

    async def _forward(
        self,
        request: web.Request,
        record: ModelRecord,
        path: str,
        body: dict[str, Any],
        id_prefix: str,
        req: ChatCompletionRequest | CompletionRequest,
        extra: dict[str, Any],
    ) -> web.StreamResponse:
        url, label = f"{record.endpoint_url}{path}", backend_name(record)
        completion_id = mapping.new_id(id_prefix)
        if not req.stream:
            raw, _ = await self.services.http.call(url, body, label)
            _count(request, vllm.read_answer(raw, label))
            completion = vllm.openai_answer(raw, completion_id, record.model_name)
            completion.update(extra)
            return json_response(completion)
        _check_streaming(record, "stream")
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        async with self.services.http.stream(url, body, label) as upstream:
            chunks = self._chunks(request, upstream, label, completion_id, record.model_name, include_usage, extra)
            return await relay(request, chunks, done=True)

    async def _chunks(
        self,
        request: web.Request,
        upstream: aiohttp.ClientResponse,
        label: str,
        completion_id: str,
        model: str,
        include_usage: bool,
        extra: dict[str, Any],
    ) -> AsyncIterator[bytes]:
        """vLLM's chunks as they come, as LISA's; the usage chunk only if the client asked (always counted).

        The router asks vLLM for the running usage on every chunk (so a stream cut short counts what it produced);
        the client sees OpenAI's shape: `usage` null on the other chunks when it asked for usage, absent otherwise."""
        created = int(time.time())
        async for raw, chunk in self._engine_chunks(upstream, label):
            _count(request, chunk)
            if not chunk.choices:  # the usage chunk the router always asks for
                if not include_usage:
                    continue
            elif include_usage:
                raw["usage"] = None
            else:
                raw.pop("usage", None)
            payload = vllm.openai_chunk(raw, completion_id, model, created)
            if extra:  # the augmenter's response fields ride on the first chunk
                payload.update(extra)
                extra = {}
            yield sse.encode(payload)

    async def _engine_chunks(
        self, upstream: aiohttp.ClientResponse, label: str
    ) -> AsyncIterator[tuple[dict[str, Any], EngineCompletion]]:
        """The engine's chunks (raw and read) up to its `[DONE]`; a stream that ends without one is a 502."""
        async for event in self.services.http.events(upstream, label):
            if event.data == sse.DONE_DATA:
                return
            raw = backend_event(event.data, label)
            yield raw, vllm.read_answer(raw, label)
        raise ServeError(502, f"{label} ended the stream before it was complete", code="backend_error")

    # -- LISA-native ---------------------------------------------------------------------------------------------
    async def generate(self, request: web.Request, req: NativeRequest, record: ModelRecord) -> web.Response:
        """POST /v1/generate (after validation)."""
        text = mapping.native_text(req.text)
        kwargs = vllm.native_kwargs(req.model_kwargs, record.default_model_kwargs)
        body = vllm.native_body(text, kwargs, served_name(record), stream=False)
        label = backend_name(record)
        raw, _ = await self.services.http.call(f"{record.endpoint_url}/v1/completions", body, label)
        answer = vllm.read_answer(raw, label)
        _count(request, answer)
        response = vllm.native_generate(answer, text if kwargs.return_full_text else "")
        return json_response(response)

    async def generate_stream(
        self, request: web.Request, req: NativeRequest, record: ModelRecord
    ) -> web.StreamResponse:
        """POST /v1/generateStream (after validation): one event per chunk vLLM sends (one per token)."""
        text = mapping.native_text(req.text)
        kwargs = vllm.native_kwargs(req.model_kwargs, record.default_model_kwargs)
        body = vllm.native_body(text, kwargs, served_name(record), stream=True)
        label = backend_name(record)
        async with self.services.http.stream(f"{record.endpoint_url}/v1/completions", body, label) as upstream:
            return await relay(request, self._native_events(request, upstream, label), done=False)

    async def _native_events(
        self, request: web.Request, upstream: aiohttp.ClientResponse, label: str
    ) -> AsyncIterator[bytes]:
        async for _, chunk in self._engine_chunks(upstream, label):
            _count(request, chunk)
            event = vllm.native_event(chunk)
            if event is not None:
                yield sse.encode(event)


def _count(request: web.Request, answer: EngineCompletion) -> None:
    """Record the usage vLLM reports (an answer's, or a stream chunk's running figures)."""
    if answer.usage is not None:
        count_tokens(request, answer.usage.prompt_tokens, answer.usage.completion_tokens)
