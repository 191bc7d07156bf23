"""The TGI worker's HTTP handlers over one loaded model: parse with the contracts, validate, run, answer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from aiohttp import web
from pydantic import BaseModel

from chalicelib.contracts.openai import ModelList, ModelObject
from chalicelib.contracts.tgi import (
    TgiChatRequest,
    TgiCompletionRequest,
    TgiGenerateRequest,
    TgiGenerateResponse,
    TgiInfo,
    TgiTokenizedToken,
    TgiTokenizeRequest,
)
from chalicelib.errors import LisaError, ServiceUnavailable
from workers.common import Admission, dump, off_loop, parse_json
from workers.engine_io import GenerationFailed, GenerationRequest, GenerationResult, TokenEvent
from workers.tgi import responses
from workers.tgi.limits import Limits
from workers.tgi.sse import OPENAI_STYLE, TGI_STYLE, stream_events
from workers.tgi.validation import PREFIX, RequestValidator

if TYPE_CHECKING:  # torch and transformers load only when the worker starts, not for `--help`
    from aws_lambda_powertools import Logger

    from workers.generation import GenerationEngine

ROUTER = "lisa-cpu-worker"


class TGIService:
    """The handlers of every route, sharing one engine, one validator and one admission limit."""

    def __init__(self, engine: GenerationEngine, model_id: str, limits: Limits, dtype: str, logger: Logger) -> None:
        self.engine = engine
        self.tokenizer = engine.tokenizer
        self.validator = RequestValidator(engine.tokenizer, limits)
        self.model_id = model_id
        self.limits = limits
        self.dtype = dtype
        self.logger = logger
        self.admission = Admission(limits.max_concurrent_requests)

    async def info(self, _: web.Request) -> web.Response:
        """GET /info."""
        limits = self.limits
        info = TgiInfo(
            model_id=self.model_id,
            model_sha=None,
            model_dtype=f"torch.{self.dtype}",
            model_device_type="cpu",
            model_pipeline_tag="text-generation",
            max_concurrent_requests=limits.max_concurrent_requests,
            max_best_of=limits.max_best_of,
            max_stop_sequences=limits.max_stop_sequences,
            max_input_tokens=limits.max_input_tokens,
            max_total_tokens=limits.max_total_tokens,
            validation_workers=1,
            max_client_batch_size=limits.max_client_batch_size,
            max_batch_total_tokens=limits.max_batch_total_tokens,
            max_batch_size=limits.max_batch_size,
            router=ROUTER,
            version=responses.VERSION,
            sha=None,
            docker_label=None,
        )
        return web.json_response(dump(info))

    async def health(self, _: web.Request) -> web.Response:
        """GET /health: 200 while the engine's thread runs."""
        if not self.engine.alive:
            raise ServiceUnavailable("generation engine is not running", error_type="unhealthy")
        return web.Response(status=200)

    async def metrics(self, _: web.Request) -> web.Response:
        """GET /metrics: the engine's counters in Prometheus' text format (TGI's metric names)."""
        stats = self.engine.stats
        lines = [
            ("tgi_request_count", stats.requests),
            ("tgi_request_success", stats.succeeded),
            ("tgi_request_failure", stats.failed),
            ("tgi_request_cancelled", stats.cancelled),
            ("tgi_request_generated_tokens_total", stats.generated_tokens),
            ("tgi_request_input_tokens_total", stats.prompt_tokens),
            ("tgi_batch_current_size", stats.batch_size),
            ("tgi_queue_size", stats.queue_size),
            ("tgi_batch_decode_steps_total", stats.steps),
            ("tgi_requests_in_flight", self.admission.in_flight),
        ]
        body = "".join(f"{name} {value}\n" for name, value in lines)
        return web.Response(text=body, content_type="text/plain")

    async def models(self, _: web.Request) -> web.Response:
        """GET /v1/models: the one model served."""
        model = ModelObject(id=self.model_id, object="model", created=0, owned_by=self.model_id)
        return web.json_response(dump(ModelList(object="list", data=[model])))

    async def tokenize(self, request: web.Request) -> web.Response:
        """POST /tokenize: token ids with the span of the input each covers."""
        body = await parse_json(request, TgiTokenizeRequest, prefix=PREFIX)
        # any length, as TGI's /tokenize: on a pool thread, so neither the loop nor the validation thread waits
        encoded = await asyncio.to_thread(
            self.tokenizer, body.inputs, add_special_tokens=body.add_special_tokens, return_offsets_mapping=True
        )
        tokens = [
            dump(TgiTokenizedToken(id=token, text=body.inputs[start:stop], start=start, stop=stop))
            for token, (start, stop) in zip(encoded["input_ids"], encoded["offset_mapping"], strict=True)
        ]
        return web.json_response(tokens)

    # -- TGI's generate routes ---------------------------------------------------------------------------------
    async def compat(self, request: web.Request) -> web.StreamResponse:
        """POST /: /generate_stream when `stream` is set, else /generate's answer in a list (as TGI)."""
        body = await parse_json(request, TgiGenerateRequest, prefix=PREFIX)
        if body.stream:
            return await self._generate_stream(request, body)
        answer, headers = await self._generate(body)
        return web.json_response([dump(answer)], headers=headers)

    async def generate(self, request: web.Request) -> web.Response:
        """POST /generate."""
        answer, headers = await self._generate(await parse_json(request, TgiGenerateRequest, prefix=PREFIX))
        return web.json_response(dump(answer), headers=headers)

    async def generate_stream(self, request: web.Request) -> web.StreamResponse:
        """POST /generate_stream."""
        return await self._generate_stream(request, await parse_json(request, TgiGenerateRequest, prefix=PREFIX))

    async def _generate(self, body: TgiGenerateRequest) -> tuple[TgiGenerateResponse, dict[str, str]]:
        started = time.monotonic()
        prepared = await off_loop(self.validator.prepare_generate, body, stream=False)
        with self.admission:
            results = await asyncio.gather(*(self._run(prepared.request) for _ in range(prepared.best_of)))
        results.sort(key=lambda result: sum(t.logprob or 0.0 for t in result.tokens), reverse=True)
        best, others = results[0], results[1:]
        details = None
        if prepared.details:
            losers = [responses.best_of_sequence(prepared.text(r), r) for r in others] if prepared.best_of > 1 else None
            details = responses.details(best, losers)
        answer = TgiGenerateResponse(generated_text=prepared.text(best), details=details)
        self._log("generate", best)
        return answer, responses.timing_headers(best, started)

    async def _run(self, request: GenerationRequest) -> GenerationResult:
        stream = self.engine.submit(request)
        try:
            _, result = await stream.result()
        except GenerationFailed as error:
            raise LisaError(str(error), error_type="generation") from None
        finally:
            stream.cancel()
        return result

    async def _generate_stream(self, request: web.Request, body: TgiGenerateRequest) -> web.StreamResponse:
        prepared = await off_loop(self.validator.prepare_generate, body, stream=True)

        def render(_: int, event: TokenEvent) -> Iterable[BaseModel]:
            yield responses.stream_event(event, prepared.text(event.final) if event.final else None)
            if event.final:
                self._log("generate_stream", event.final)

        with self.admission:
            stream = self.engine.submit(prepared.request)
            return await stream_events(request, [stream], render, TGI_STYLE)

    # -- OpenAI-compatible routes ------------------------------------------------------------------------------
    async def chat(self, request: web.Request) -> web.StreamResponse:
        """POST /v1/chat/completions (TGI's Messages API)."""
        body = await parse_json(request, TgiChatRequest, prefix=PREFIX)
        generation = await off_loop(self.validator.prepare_chat, body)
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        logprobs = bool(body.logprobs)
        with self.admission:
            if body.stream:
                return await self._chat_stream(request, generation, logprobs, include_usage)
            result = await self._run(generation)
        self._log("chat", result)
        return web.json_response(dump(responses.chat_completion(self.model_id, result, logprobs=logprobs)))

    async def _chat_stream(
        self, request: web.Request, generation: GenerationRequest, logprobs: bool, include_usage: bool
    ) -> web.StreamResponse:
        stream = self.engine.submit(generation)
        header = responses.stream_header(self.model_id)

        def render(_: int, event: TokenEvent) -> Iterable[BaseModel]:
            yield responses.chat_chunk(header, [responses.chat_chunk_choice(event, logprobs=logprobs)])
            if event.final:
                self._log("chat_stream", event.final)
                if include_usage:
                    yield responses.chat_chunk(header, [], responses.result_usage(event.final))

        return await stream_events(request, [stream], render, OPENAI_STYLE)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        """POST /v1/completions: one choice per prompt, generated concurrently."""
        body = await parse_json(request, TgiCompletionRequest, prefix=PREFIX)
        prompts = self.validator.prompts(body)
        generations = await off_loop(self.validator.prepare_completions, body, prompts)
        with self.admission:
            if body.stream:
                include_usage = bool(body.stream_options and body.stream_options.include_usage)
                return await self._completions_stream(request, generations, include_usage)
            results = await asyncio.gather(*(self._run(generation) for generation in generations))
        choices = [
            responses.completion_choice(
                index, (prompts[index] if body.echo else "") + result.generated_text, result.finish_reason
            )
            for index, result in enumerate(results)
        ]
        usage = responses.usage(sum(r.input_length for r in results), sum(r.generated_tokens for r in results))
        header = responses.stream_header(self.model_id, "cmpl")
        return web.json_response(dump(responses.completion(header, choices, usage)))

    async def _completions_stream(
        self, request: web.Request, generations: list[GenerationRequest], include_usage: bool
    ) -> web.StreamResponse:
        streams = [self.engine.submit(generation) for generation in generations]
        header = responses.stream_header(self.model_id, "cmpl")
        prompt_tokens = completion_tokens = 0

        def render(index: int, event: TokenEvent) -> Iterable[BaseModel]:
            nonlocal prompt_tokens, completion_tokens
            text = "" if event.token.special else event.token.text
            reason = event.final.finish_reason if event.final else None
            if event.final:
                prompt_tokens += event.final.input_length
                completion_tokens += event.final.generated_tokens
            yield responses.completion(header, [responses.completion_choice(index, text, reason)])

        def closing() -> Iterable[BaseModel]:
            if include_usage:
                yield responses.completion(header, [], responses.usage(prompt_tokens, completion_tokens))

        return await stream_events(request, streams, render, OPENAI_STYLE, closing)

    def _log(self, route: str, result: GenerationResult) -> None:
        self.logger.info(
            "success",
            extra={
                "route": route,
                "input_tokens": result.input_length,
                "generated_tokens": result.generated_tokens,
                "finish_reason": result.finish_reason,
                "queue_ms": round(result.queue_time * 1000, 1),
                "inference_ms": round(result.inference_time * 1000, 1),
            },
        )
