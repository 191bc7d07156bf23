"""The OpenAI-compatible API: /v1/openai/models, /chat/completions, /completions, /embeddings.

Chat goes to TGI's Messages API (the model's own chat template renders the messages); completions go to TGI's
/generate(_stream), one request per prompt; embeddings go to TEI's /embed or an instructor container. Parameters are
mapped and refused by one policy, documented in `chalicelib.serve.mapping`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from chalicelib.config import ModelType
from chalicelib.contracts.openai import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from chalicelib.serve import mapping, sse
from chalicelib.serve.errors import ServeError
from chalicelib.serve.streams import merge
from router.accounting import count_tokens, usage_of
from router.http import json_response
from router.services import Services, augmented, backend_event, backend_name, first_error, header_count, relay
from router.vllm_api import VllmApi, serves_openai

if TYPE_CHECKING:
    import aiohttp

    from chalicelib.registry.models import ModelRecord


def _refuse_non_streaming(record: ModelRecord) -> None:
    if not record.streaming:
        raise ServeError(
            400, f"model {record.model_name!r} does not stream; send stream: false", param="stream", code="no_streaming"
        )


def _epoch(timestamp: str) -> int:
    try:
        return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0


class OpenAIApi:
    """Handlers of the OpenAI-compatible routes."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.vllm = VllmApi(services)

    async def models(self, request: web.Request) -> web.Response:
        """GET /v1/openai/models: the models that can be called now (text generation and embedding)."""
        await self.services.caller(request)
        data = [
            {
                "id": record.model_name,
                "object": "model",
                "created": _epoch(record.created_at),
                "owned_by": "lisa",
                "provider": record.provider,
                "model_type": record.model_type.value,
                "streaming": record.streaming,
            }
            for record in await self.services.catalog.records()
            if record.is_available
        ]
        return json_response({"object": "list", "data": data})

    # -- chat ----------------------------------------------------------------------------------------------------
    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        """POST /v1/openai/chat/completions."""
        principal = await self.services.caller(request)
        data = await self.services.body(request)
        req = mapping.validate(ChatCompletionRequest, data)
        record = await self.services.model(req.model, ModelType.TEXTGEN, request)
        extra: dict[str, Any] = {}
        if self.services.augment_chat is not None:
            req, extra = augmented(await self.services.augment_chat(principal, data, req, record))
        if serves_openai(record):
            return await self.vllm.chat_completions(request, req, record, extra)
        body = mapping.chat_request(req, record.default_model_kwargs)
        url = f"{record.endpoint_url}/v1/chat/completions"
        backend_label = backend_name(record)
        if not req.stream:
            answer, _ = await self.services.http.call(url, body, backend_label)
            if not isinstance(answer, dict):
                raise ServeError(502, f"{backend_label} answered an unexpected chat completion")
            completion = mapping.chat_completion(answer, mapping.new_id("chatcmpl"), record.model_name)
            completion.update(extra)
            reported = completion["usage"]
            count_tokens(request, reported.get("prompt_tokens"), reported.get("completion_tokens"))
            return json_response(completion)
        _refuse_non_streaming(record)
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        async with self.services.http.stream(url, body, backend_label) as upstream:
            events = self._chat_events(request, upstream, record, backend_label, include_usage, extra)
            return await relay(request, events, done=True)

    async def _chat_events(
        self,
        request: web.Request,
        upstream: aiohttp.ClientResponse,
        record: ModelRecord,
        backend_label: str,
        include_usage: bool,
        extra: dict[str, Any] | None = None,
    ) -> AsyncIterator[bytes]:
        completion_id, created, model = mapping.new_id("chatcmpl"), int(time.time()), record.model_name
        counted = usage_of(request)
        async for event in self.services.http.events(upstream, backend_label):
            if event.data == sse.DONE_DATA:
                break
            payload = mapping.chat_chunk(backend_event(event.data, backend_label), completion_id, model, created)
            if payload["choices"]:
                counted.produced()  # TGI sends one chunk per token; the usage it sends last has the exact figures
            usage = payload.get("usage")
            if usage is not None:
                counted.tokens(usage["prompt_tokens"], usage["completion_tokens"])
            if not payload["choices"] and not include_usage:  # the usage chunk TGI sends last
                continue
            if extra:  # the augmenter's response fields ride on the first chunk
                payload.update(extra)
                extra = None
            yield sse.encode(payload)

    # -- completions ---------------------------------------------------------------------------------------------
    async def completions(self, request: web.Request) -> web.StreamResponse:
        """POST /v1/openai/completions."""
        await self.services.caller(request)
        req = mapping.validate(CompletionRequest, await self.services.body(request))
        record = await self.services.model(req.model, ModelType.TEXTGEN, request)
        if serves_openai(record):
            return await self.vllm.completions(request, req, record)
        prompts = mapping.completion_prompts(req)
        params = mapping.generate_parameters(req, record.default_model_kwargs)
        backend_label = backend_name(record)
        if not req.stream:
            url = f"{record.endpoint_url}/generate"
            calls = [self.services.http.call(url, mapping.generate_request(p, params), backend_label) for p in prompts]
            results = await first_error(calls)
            answers = [mapping.generate_response(answer) for answer, _ in results]
            choices = [
                mapping.completion_choice(i, prompts[i], answer, req.echo, req.logprobs)
                for i, answer in enumerate(answers)
            ]
            prompt_tokens = sum(header_count(headers, "x-prompt-tokens") for _, headers in results)
            generated = sum(answer.details.generated_tokens if answer.details else 0 for answer in answers)
            count_tokens(request, prompt_tokens, generated)
            return json_response(
                {
                    "id": mapping.new_id("cmpl"),
                    "object": "text_completion",
                    "created": int(time.time()),
                    "model": record.model_name,
                    "choices": choices,
                    "usage": mapping.usage(prompt_tokens, generated),
                }
            )
        _refuse_non_streaming(record)
        url = f"{record.endpoint_url}/generate_stream"
        async with AsyncExitStack() as stack:
            upstreams = [
                await stack.enter_async_context(
                    self.services.http.stream(url, mapping.generate_request(p, params, stream=True), backend_label)
                )
                for p in prompts
            ]
            events = self._completion_events(request, req, record, prompts, upstreams, backend_label)
            return await relay(request, events, done=True)

    async def _completion_events(
        self,
        request: web.Request,
        req: CompletionRequest,
        record: ModelRecord,
        prompts: list[str],
        upstreams: list[aiohttp.ClientResponse],
        backend_label: str,
    ) -> AsyncIterator[bytes]:
        base: dict[str, Any] = {
            "id": mapping.new_id("cmpl"),
            "object": "text_completion",
            "created": int(time.time()),
            "model": record.model_name,
        }
        offsets = [0] * len(prompts)
        if req.echo:
            for index, prompt in enumerate(prompts):
                offsets[index] = len(prompt)
                choice = {"index": index, "text": prompt, "logprobs": None, "finish_reason": None}
                yield sse.encode({**base, "choices": [choice]})
        prompt_tokens = generated = 0
        counted = usage_of(request)
        streams = [self.services.http.events(upstream, backend_label) for upstream in upstreams]
        async for index, event in merge(streams):
            payload = mapping.stream_response(backend_event(event.data, backend_label))
            counted.produced()  # one event per token; the exact figures when every prompt has finished
            token = payload.token
            text = "" if token.special else token.text
            details = payload.details
            logprobs = None
            if req.logprobs is not None:
                tops = [payload.top_tokens or []] if req.logprobs else None
                shown = token.model_copy(update={"text": text})
                logprobs = mapping.completion_logprobs([shown], tops, offsets[index])
            offsets[index] += len(text)
            reason = None
            if details:
                reason = mapping.finish_reason(details.finish_reason)
                prompt_tokens += details.input_length or 0
                generated += details.generated_tokens
            choice = {"index": index, "text": text, "logprobs": logprobs, "finish_reason": reason}
            yield sse.encode({**base, "choices": [choice]})
        counted.tokens(prompt_tokens, generated)
        if req.stream_options and req.stream_options.include_usage:
            yield sse.encode({**base, "choices": [], "usage": mapping.usage(prompt_tokens, generated)})

    # -- embeddings ----------------------------------------------------------------------------------------------
    async def embeddings(self, request: web.Request) -> web.Response:
        """POST /v1/openai/embeddings."""
        await self.services.caller(request)
        req = mapping.validate(EmbeddingRequest, await self.services.body(request))
        record = await self.services.model(req.model, ModelType.EMBEDDING, request)
        texts = mapping.embedding_inputs(req)
        vectors, tokens = await self.services.embed(record, texts, {})
        count_tokens(request, prompt=tokens)
        return json_response(mapping.embeddings_response(vectors, record.model_name, req.encoding_format, tokens))
