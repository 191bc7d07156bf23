"""A CPU worker speaking text-generation-inference's HTTP API (the subset LISA uses, wire-compatible).

`python -m workers.tgi --model-dir DIR --model-id ORG/NAME --port P [--host 127.0.0.1]`

Routes: `GET /info`, `GET /health`, `GET /metrics`, `POST /generate`, `POST /generate_stream`, `POST /` (TGI's
compat route: what HF's `text_generation.Client` calls), `POST /v1/chat/completions` (the Messages API, rendered
with the tokenizer's chat template), `POST /v1/completions`, `GET /v1/models`, `POST /tokenize`.
Limits come from the same environment variables TGI's launcher reads (MAX_CONCURRENT_REQUESTS, MAX_INPUT_TOKENS or
MAX_INPUT_LENGTH, MAX_TOTAL_TOKENS, MAX_BEST_OF, MAX_STOP_SEQUENCES, MAX_TOP_N_TOKENS, MAX_BATCH_SIZE,
MAX_BATCH_TOTAL_TOKENS, MAX_BATCH_PREFILL_TOKENS, MAX_CLIENT_BATCH_SIZE), or from the matching flags.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import web

from chalicelib.contracts.tgi import (
    TgiChatMessage,
    TgiChatRequest,
    TgiCompletionRequest,
    TgiGenerateRequest,
    TgiParameters,
    TgiTokenizeRequest,
)
from chalicelib.serve.streams import merge
from workers.common import (
    Admission,
    HTTPError,
    bounded_part,
    configure_torch,
    error_middleware,
    get_logger,
    off_loop,
    parse_json,
    serve,
    too_long,
)

if TYPE_CHECKING:  # torch and transformers load only when the worker starts, not for `--help`
    from aws_lambda_powertools import Logger

    from workers.generation import (
        Final,
        GenerationEngine,
        GenerationRequest,
        SamplingParams,
        TokenInfo,
    )

VERSION = "3.3.4"  # the TGI release whose API this worker follows
ROUTER = "lisa-cpu-worker"
SYSTEM_FINGERPRINT = f"{VERSION}-lisa-cpu"
_PREFIX = "Input validation error: "
DEFAULT_MAX_NEW_TOKENS = 100  # TGI's default for /generate and /v1/chat/completions; /v1/completions: the budget


# -- configuration --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Limits:
    max_concurrent_requests: int = 128
    max_input_tokens: int = 4095
    max_total_tokens: int = 4096
    max_best_of: int = 2
    max_stop_sequences: int = 4
    max_top_n_tokens: int = 5
    max_client_batch_size: int = 4
    max_batch_size: int = 32
    max_batch_total_tokens: int = 32768
    max_batch_prefill_tokens: int = 4096


def _env_int(*names: str) -> int | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return int(value)
    return None


# -- validation (TGI's rules and messages) ----------------------------------------------------------------------
def _invalid(message: str) -> HTTPError:
    return HTTPError(422, _PREFIX + message, "validation")


@dataclass(frozen=True)
class Prepared:
    """A validated request ready for the engine, plus what the response needs."""

    request: GenerationRequest
    inputs: str
    best_of: int
    details: bool
    return_full_text: bool


class TGIService:
    """Validation, the engine, and the HTTP handlers for one loaded model."""

    def __init__(self, engine: GenerationEngine, model_id: str, limits: Limits, dtype: str, logger: Logger) -> None:
        from workers import generation

        self.g = generation
        self.engine = engine
        self.tokenizer = engine.tokenizer
        self.model_id = model_id
        self.limits = limits
        self.dtype = dtype
        self.logger = logger
        self.admission = Admission(limits.max_concurrent_requests)

    # ---------------------------------------------------------------------------------------------------------
    def sampling(
        self,
        *,
        do_sample: bool,
        temperature: float | None,
        top_k: int | None,
        top_p: float | None,
        typical_p: float | None,
        repetition_penalty: float | None,
        frequency_penalty: float | None,
        presence_penalty: float | None,
        seed: int | None,
        top_n_tokens: int | None,
    ) -> SamplingParams:
        if temperature is not None and temperature <= 0:
            raise _invalid("`temperature` must be strictly positive")
        if repetition_penalty is not None and repetition_penalty <= 0:
            raise _invalid("`repetition_penalty` must be strictly positive")
        for name, value in (("frequency_penalty", frequency_penalty), ("presence_penalty", presence_penalty)):
            if value is not None and not -2.0 <= value <= 2.0:
                raise _invalid(f"`{name}` must be >= -2.0 and <= 2.0")
        if top_k is not None and top_k <= 0:
            raise _invalid("`top_k` must be strictly positive")
        if top_p is not None and not 0.0 < top_p <= 1.0:
            raise _invalid("`top_p` must be > 0.0 and < 1.0")
        if typical_p is not None and not 0.0 < typical_p <= 1.0:
            raise _invalid("`typical_p` must be > 0.0 and < 1.0")
        if seed is not None and seed < 0:
            raise _invalid("`seed` must be positive")
        top_n = top_n_tokens or 0
        if not 0 <= top_n <= self.limits.max_top_n_tokens:
            raise _invalid(f"`top_n_tokens` must be >= 0 and <= {self.limits.max_top_n_tokens}. Given: {top_n}")
        return self.g.SamplingParams(
            do_sample=do_sample,
            temperature=temperature,
            top_k=top_k,
            top_p=None if top_p == 1.0 else top_p,
            typical_p=None if typical_p == 1.0 else typical_p,
            repetition_penalty=repetition_penalty,
            frequency_penalty=frequency_penalty,
            presence_penalty=presence_penalty,
            seed=seed,
            top_n_tokens=top_n,
        )

    def encode(self, text: str, *, add_special_tokens: bool = True, truncate: int | None = None) -> list[int]:
        """Token ids of `text` within the input limit (TGI's rules and messages); a huge text is refused, or
        truncated, after tokenizing only the part that decides (`bounded_part`). Call it off the loop (`off_loop`)."""
        if not text:
            raise _invalid("`inputs` cannot be empty")
        limit = self.limits.max_input_tokens
        if truncate is not None:
            if not 0 < truncate <= limit:
                raise _invalid(f"`truncate` must be strictly positive and less than {limit}. Given: {truncate}")
            tail = bounded_part(text, truncate, self._count, keep="tail")
            return self._ids(tail, add_special_tokens)[-truncate:]
        part = bounded_part(text, limit, self._count)
        if part is not text:
            raise _invalid(too_long(limit, None))
        ids = self._ids(text, add_special_tokens)
        if len(ids) > limit:
            raise _invalid(too_long(limit, len(ids)))
        return ids

    def _ids(self, text: str, add_special_tokens: bool) -> list[int]:
        ids: list[int] = self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"]
        return ids

    def _count(self, text: str) -> int:
        return len(self._ids(text, False))

    def request(
        self,
        ids: list[int],
        params: SamplingParams,
        max_new_tokens: int | None,
        stop: list[str],
        prefill_details: bool = False,
    ) -> GenerationRequest:
        if max_new_tokens is None:
            max_new_tokens = self.limits.max_total_tokens - len(ids)
        if max_new_tokens <= 0:
            raise _invalid("`max_new_tokens` must be strictly positive")
        if len(ids) + max_new_tokens > self.limits.max_total_tokens:
            raise _invalid(
                f"`inputs` tokens + `max_new_tokens` must be <= {self.limits.max_total_tokens}. "
                f"Given: {len(ids)} `inputs` tokens and {max_new_tokens} `max_new_tokens`"
            )
        if len(stop) > self.limits.max_stop_sequences:
            raise _invalid(f"`stop` supports up to {self.limits.max_stop_sequences} stop sequences. Given: {len(stop)}")
        if any(not s for s in stop):
            raise _invalid("`stop` sequences cannot be empty")
        return self.g.GenerationRequest(
            input_ids=tuple(ids),
            params=params,
            max_new_tokens=max_new_tokens,
            stop_sequences=tuple(stop),
            prefill_details=prefill_details,
        )

    def prepare_generate(self, body: TgiGenerateRequest, *, stream: bool) -> Prepared:
        p = body.parameters or TgiParameters()
        if p.watermark:
            raise _invalid("`watermark` is not supported by this worker")
        if p.grammar is not None:
            raise _invalid("`grammar` is not supported by this worker")
        best_of = p.best_of if p.best_of is not None else 1
        if not 0 < best_of <= self.limits.max_best_of:
            raise _invalid(f"`best_of` must be > 0 and <= {self.limits.max_best_of}. Given: {best_of}")
        params = self.sampling(
            do_sample=p.do_sample,
            temperature=p.temperature,
            top_k=p.top_k,
            top_p=p.top_p,
            typical_p=p.typical_p,
            repetition_penalty=p.repetition_penalty,
            frequency_penalty=p.frequency_penalty,
            presence_penalty=None,
            seed=p.seed,
            top_n_tokens=p.top_n_tokens,
        )
        if best_of > 1:
            if stream:
                raise _invalid("`best_of` != 1 is not allowed for this endpoint")
            if p.seed is not None:
                raise _invalid("`seed` must not be set when `best_of` > 1")
            if not params.sampling:
                raise _invalid("you must use sampling when `best_of` is > 1")
        ids = self.encode(body.inputs, truncate=p.truncate)
        max_new_tokens = p.max_new_tokens if p.max_new_tokens is not None else DEFAULT_MAX_NEW_TOKENS
        request = self.request(ids, params, max_new_tokens, p.stop, p.decoder_input_details)
        return Prepared(request, body.inputs, best_of, p.details, bool(p.return_full_text))

    def render_chat(self, messages: list[TgiChatMessage]) -> str:
        rendered: list[dict[str, str]] = []
        for index, message in enumerate(messages):
            if isinstance(message.content, list):
                texts = []
                for part in message.content:
                    if part.type != "text" or part.text is None:
                        raise _invalid(f"`messages.{index}.content`: only text parts are supported, got {part.type!r}")
                    texts.append(part.text)
                content = "".join(texts)
            else:
                content = message.content or ""
            rendered.append({"role": message.role, "content": content})
        try:
            text = str(self.tokenizer.apply_chat_template(rendered, tokenize=False, add_generation_prompt=True))
        except Exception as error:  # jinja raises for conversations the template refuses (roles, order...)
            raise HTTPError(422, f"Template error: {error}", "template_error") from None
        return text

    def prepare_openai(
        self,
        *,
        prompt: str,
        add_special_tokens: bool,
        temperature: float | None,
        top_p: float | None,
        seed: int | None,
        max_tokens: int | None,
        stop: str | list[str] | None,
        frequency_penalty: float | None,
        presence_penalty: float | None,
        repetition_penalty: float | None,
        n: int | None,
        top_logprobs: int | None = None,
    ) -> GenerationRequest:
        if n not in (None, 1):
            raise _invalid("`n` > 1 is not supported by this worker")
        do_sample = temperature is None or temperature != 0.0  # OpenAI semantics as TGI applies them: 0 → greedy
        params = self.sampling(
            do_sample=do_sample,
            temperature=None if temperature == 0.0 else temperature,
            top_k=None,
            top_p=top_p,
            typical_p=None,
            repetition_penalty=repetition_penalty,
            frequency_penalty=frequency_penalty,
            presence_penalty=presence_penalty,
            seed=seed,
            top_n_tokens=top_logprobs,
        )
        stops = [stop] if isinstance(stop, str) else list(stop or [])
        ids = self.encode(prompt, add_special_tokens=add_special_tokens)
        return self.request(ids, params, max_tokens, stops)

    def prepare_chat(self, body: TgiChatRequest) -> GenerationRequest:
        """The chat rendered with the model's template and tokenized (off the loop: the template sees every text)."""
        return self.prepare_openai(
            prompt=self.render_chat(body.messages),
            add_special_tokens=False,  # the template already wrote every special token
            temperature=body.temperature,
            top_p=body.top_p,
            seed=body.seed,
            # TGI's Messages API: unset max_tokens → 100; repetition_penalty = presence_penalty + 2 (multiplicative,
            # no additive presence penalty)
            max_tokens=DEFAULT_MAX_NEW_TOKENS if body.max_tokens is None else body.max_tokens,
            stop=body.stop,
            frequency_penalty=body.frequency_penalty,
            presence_penalty=None,
            repetition_penalty=None if body.presence_penalty is None else body.presence_penalty + 2.0,
            n=body.n,
            top_logprobs=(body.top_logprobs or 0) if body.logprobs else None,
        )

    def prepare_completions(self, body: TgiCompletionRequest, prompts: list[str]) -> list[GenerationRequest]:
        """Each prompt validated and tokenized (off the loop)."""
        return [
            self.prepare_openai(
                prompt=prompt,
                add_special_tokens=True,
                temperature=body.temperature,
                top_p=body.top_p,
                seed=body.seed,
                max_tokens=body.max_tokens,
                stop=body.stop,
                frequency_penalty=body.frequency_penalty,
                presence_penalty=body.presence_penalty,
                repetition_penalty=body.repetition_penalty,
                n=body.n,
            )
            for prompt in prompts
        ]

    # -- handlers ----------------------------------------------------------------------------------------------
    async def info(self, _: web.Request) -> web.Response:
        return web.json_response(
            {
                "model_id": self.model_id,
                "model_sha": None,
                "model_dtype": f"torch.{self.dtype}",
                "model_device_type": "cpu",
                "model_pipeline_tag": "text-generation",
                "max_concurrent_requests": self.limits.max_concurrent_requests,
                "max_best_of": self.limits.max_best_of,
                "max_stop_sequences": self.limits.max_stop_sequences,
                "max_input_tokens": self.limits.max_input_tokens,
                "max_total_tokens": self.limits.max_total_tokens,
                "validation_workers": 1,
                "max_client_batch_size": self.limits.max_client_batch_size,
                "max_batch_total_tokens": self.limits.max_batch_total_tokens,
                "max_batch_size": self.limits.max_batch_size,
                "router": ROUTER,
                "version": VERSION,
                "sha": None,
                "docker_label": None,
            }
        )

    async def health(self, _: web.Request) -> web.Response:
        if not self.engine.alive:
            raise HTTPError(503, "generation engine is not running", "unhealthy")
        return web.Response(status=200)

    async def metrics(self, _: web.Request) -> web.Response:
        s = self.engine.stats
        lines = [
            ("tgi_request_count", s.requests),
            ("tgi_request_success", s.succeeded),
            ("tgi_request_failure", s.failed),
            ("tgi_request_cancelled", s.cancelled),
            ("tgi_request_generated_tokens_total", s.generated_tokens),
            ("tgi_request_input_tokens_total", s.prompt_tokens),
            ("tgi_batch_current_size", s.batch_size),
            ("tgi_queue_size", s.queue_size),
            ("tgi_batch_decode_steps_total", s.steps),
            ("tgi_requests_in_flight", self.admission.in_flight),
        ]
        body = "".join(f"{name} {value}\n" for name, value in lines)
        return web.Response(text=body, content_type="text/plain")

    async def models(self, _: web.Request) -> web.Response:
        model = {"id": self.model_id, "object": "model", "created": 0, "owned_by": self.model_id}
        return web.json_response({"object": "list", "data": [model]})

    async def tokenize(self, request: web.Request) -> web.Response:
        body = await parse_json(request, TgiTokenizeRequest, prefix=_PREFIX)
        # any length, as TGI's /tokenize: on a pool thread, so neither the loop nor the validation thread waits
        encoded = await asyncio.to_thread(
            self.tokenizer, body.inputs, add_special_tokens=body.add_special_tokens, return_offsets_mapping=True
        )
        tokens = [
            {"id": token, "text": body.inputs[start:stop], "start": start, "stop": stop}
            for token, (start, stop) in zip(encoded["input_ids"], encoded["offset_mapping"], strict=True)
        ]
        return web.json_response(tokens)

    async def compat(self, request: web.Request) -> web.StreamResponse:
        body = await parse_json(request, TgiGenerateRequest, prefix=_PREFIX)
        if body.stream:
            return await self._generate_stream(request, body)
        payload, headers = await self._generate(body)
        return web.json_response([payload], headers=headers)  # TGI's compat route answers a list

    async def generate(self, request: web.Request) -> web.Response:
        payload, headers = await self._generate(await parse_json(request, TgiGenerateRequest, prefix=_PREFIX))
        return web.json_response(payload, headers=headers)

    async def generate_stream(self, request: web.Request) -> web.StreamResponse:
        return await self._generate_stream(request, await parse_json(request, TgiGenerateRequest, prefix=_PREFIX))

    async def _generate(self, body: TgiGenerateRequest) -> tuple[dict[str, Any], dict[str, str]]:
        started = time.monotonic()
        prepared = await off_loop(self.prepare_generate, body, stream=False)
        with self.admission:
            finals = await asyncio.gather(*(self._run(prepared.request) for _ in range(prepared.best_of)))
        finals.sort(key=lambda f: sum(t.logprob or 0.0 for t in f.tokens), reverse=True)
        best, others = finals[0], finals[1:]
        payload: dict[str, Any] = {"generated_text": self._text(prepared, best)}
        if prepared.details:
            details = _details(best)
            if prepared.best_of > 1:
                details["best_of_sequences"] = [
                    {"generated_text": self._text(prepared, f), **_details(f)} for f in others
                ]
            payload["details"] = details
        self._log("generate", best)
        return payload, _timing_headers(best, started)

    async def _run(self, request: GenerationRequest) -> Final:
        stream = self.engine.submit(request)
        try:
            _, final = await stream.result()
        except self.g.GenerationFailed as error:
            raise HTTPError(500, str(error), "generation") from None
        finally:
            stream.cancel()
        return final

    async def _generate_stream(self, request: web.Request, body: TgiGenerateRequest) -> web.StreamResponse:
        prepared = await off_loop(self.prepare_generate, body, stream=True)
        with self.admission:
            stream = self.engine.submit(prepared.request)
            response = await _open_sse(request)
            try:
                async for event in stream:
                    payload: dict[str, Any] = {"index": event.index, "token": _token(event.token)}
                    if event.top_tokens is not None:
                        payload["top_tokens"] = [_token(t) for t in event.top_tokens]
                    final = event.final
                    payload["generated_text"] = self._text(prepared, final) if final else None
                    payload["details"] = (
                        {
                            "finish_reason": final.finish_reason,
                            "generated_tokens": final.generated_tokens,
                            "seed": final.seed,
                            "input_length": final.input_length,
                        }
                        if final
                        else None
                    )
                    await response.write(_sse(payload))
                    if final:
                        self._log("generate_stream", final)
            except self.g.GenerationFailed as error:
                await response.write(_sse({"error": str(error), "error_type": "generation"}))
            except ConnectionResetError:
                return response  # the client went away; its generation is cancelled below
            finally:
                stream.cancel()
            await response.write_eof()
            return response

    def _text(self, prepared: Prepared, final: Final) -> str:
        text = final.generated_text
        return prepared.inputs + text if prepared.return_full_text else text

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await parse_json(request, TgiChatRequest, prefix=_PREFIX)
        if body.tools or (body.tool_choice not in (None, "none", "auto")):
            raise _invalid("`tools` are not supported by this worker")
        if body.response_format is not None and body.response_format != {"type": "text"}:
            raise _invalid("`response_format` is not supported by this worker")
        if body.logit_bias:
            raise _invalid("`logit_bias` is not supported by this worker")
        generation = await off_loop(self.prepare_chat, body)
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        with self.admission:
            if body.stream:
                return await self._chat_stream(request, generation, bool(body.logprobs), include_usage)
            final = await self._run(generation)
        self._log("chat", final)
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": final.generated_text},
            "logprobs": _chat_logprobs(final.tokens, final.top_tokens) if body.logprobs else None,
            "finish_reason": _openai_reason(final.finish_reason),
        }
        return web.json_response(
            {
                "id": _completion_id(),
                "object": "chat.completion",
                "created": int(time.time()),
                "model": self.model_id,
                "system_fingerprint": SYSTEM_FINGERPRINT,
                "choices": [choice],
                "usage": _usage(final),
            }
        )

    async def _chat_stream(
        self, request: web.Request, generation: GenerationRequest, logprobs: bool, include_usage: bool
    ) -> web.StreamResponse:
        stream = self.engine.submit(generation)
        response = await _open_sse(request)
        completion_id, created = _completion_id(), int(time.time())
        try:
            async for event in stream:
                final = event.final
                token = event.token
                chunk = {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": self.model_id,
                    "system_fingerprint": SYSTEM_FINGERPRINT,
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"role": "assistant", "content": "" if token.special else token.text},
                            "logprobs": _chat_logprobs([token], [event.top_tokens or []]) if logprobs else None,
                            "finish_reason": _openai_reason(final.finish_reason) if final else None,
                        }
                    ],
                    "usage": None,
                }
                await response.write(_sse(chunk, space=True))
                if final:
                    self._log("chat_stream", final)
                    if include_usage:
                        usage_chunk = {**chunk, "choices": [], "usage": _usage(final)}
                        await response.write(_sse(usage_chunk, space=True))
        except self.g.GenerationFailed as error:
            await response.write(_sse({"error": str(error), "error_type": "generation"}, space=True))
        except ConnectionResetError:
            return response
        finally:
            stream.cancel()
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def completions(self, request: web.Request) -> web.StreamResponse:
        body = await parse_json(request, TgiCompletionRequest, prefix=_PREFIX)
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        if not 0 < len(prompts) <= self.limits.max_client_batch_size:
            raise _invalid(
                f"`prompt` must hold between 1 and {self.limits.max_client_batch_size} prompts. Given: {len(prompts)}"
            )
        requests = await off_loop(self.prepare_completions, body, prompts)
        with self.admission:
            if body.stream:
                include_usage = bool(body.stream_options and body.stream_options.include_usage)
                return await self._completions_stream(request, requests, include_usage)
            finals = await asyncio.gather(*(self._run(r) for r in requests))
        choices = [
            {
                "index": index,
                "text": (prompts[index] if body.echo else "") + final.generated_text,
                "logprobs": None,
                "finish_reason": _openai_reason(final.finish_reason),
            }
            for index, final in enumerate(finals)
        ]
        prompt_tokens = sum(f.input_length for f in finals)
        completion_tokens = sum(f.generated_tokens for f in finals)
        return web.json_response(
            {
                "id": _completion_id("cmpl"),
                "object": "text_completion",
                "created": int(time.time()),
                "model": self.model_id,
                "system_fingerprint": SYSTEM_FINGERPRINT,
                "choices": choices,
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }
        )

    async def _completions_stream(
        self, request: web.Request, requests: list[GenerationRequest], include_usage: bool
    ) -> web.StreamResponse:
        streams = [self.engine.submit(r) for r in requests]
        response = await _open_sse(request)
        completion_id, created = _completion_id("cmpl"), int(time.time())
        prompt_tokens = completion_tokens = 0
        try:
            async for index, event in merge(streams):
                final = event.final
                chunk = {
                    "id": completion_id,
                    "object": "text_completion",
                    "created": created,
                    "model": self.model_id,
                    "system_fingerprint": SYSTEM_FINGERPRINT,
                    "choices": [
                        {
                            "index": index,
                            "text": "" if event.token.special else event.token.text,
                            "logprobs": None,
                            "finish_reason": _openai_reason(final.finish_reason) if final else None,
                        }
                    ],
                }
                if final:
                    prompt_tokens += final.input_length
                    completion_tokens += final.generated_tokens
                await response.write(_sse(chunk, space=True))
            if include_usage:
                usage = {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                }
                await response.write(_sse({**chunk, "choices": [], "usage": usage}, space=True))
        except self.g.GenerationFailed as error:
            await response.write(_sse({"error": str(error), "error_type": "generation"}, space=True))
        except ConnectionResetError:
            return response
        finally:
            for stream in streams:
                stream.cancel()
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    def _log(self, route: str, final: Final) -> None:
        self.logger.info(
            "success",
            extra={
                "route": route,
                "input_tokens": final.input_length,
                "generated_tokens": final.generated_tokens,
                "finish_reason": final.finish_reason,
                "queue_ms": round(final.queue_time * 1000, 1),
                "inference_ms": round(final.inference_time * 1000, 1),
            },
        )


# -- response helpers -------------------------------------------------------------------------------------------
def _token(token: TokenInfo) -> dict[str, Any]:
    return {"id": token.id, "text": token.text, "logprob": token.logprob, "special": token.special}


def _details(final: Final) -> dict[str, Any]:
    details: dict[str, Any] = {
        "finish_reason": final.finish_reason,
        "generated_tokens": final.generated_tokens,
        "seed": final.seed,
        "prefill": [{"id": t.id, "text": t.text, "logprob": t.logprob} for t in final.prefill],
        "tokens": [_token(t) for t in final.tokens],
    }
    if final.top_tokens is not None:
        details["top_tokens"] = [[_token(t) for t in step] for step in final.top_tokens]
    return details


def _usage(final: Final) -> dict[str, int]:
    return {
        "prompt_tokens": final.input_length,
        "completion_tokens": final.generated_tokens,
        "total_tokens": final.input_length + final.generated_tokens,
    }


def _chat_logprobs(tokens: list[TokenInfo], top_tokens: list[list[TokenInfo]] | None) -> dict[str, Any]:
    tops = top_tokens or [[] for _ in tokens]
    return {
        "content": [
            {
                "token": t.text,
                "logprob": t.logprob,
                "top_logprobs": [{"token": c.text, "logprob": c.logprob} for c in top],
            }
            for t, top in zip(tokens, tops, strict=False)
        ]
    }


def _openai_reason(reason: str) -> Literal["length", "stop"]:
    return "length" if reason == "length" else "stop"


def _completion_id(prefix: str = "chatcmpl") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def _timing_headers(final: Final, started: float) -> dict[str, str]:
    total = time.monotonic() - started
    per_token = final.inference_time / max(final.generated_tokens, 1)
    return {
        "x-compute-type": "cpu",
        "x-total-time": str(round(total * 1000)),
        "x-queue-time": str(round(final.queue_time * 1000)),
        "x-inference-time": str(round(final.inference_time * 1000)),
        "x-time-per-token": str(round(per_token * 1000)),
        "x-prompt-tokens": str(final.input_length),
        "x-generated-tokens": str(final.generated_tokens),
    }


def _dumps(payload: Any) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def _sse(payload: dict[str, Any], *, space: bool = False) -> bytes:
    """One server-sent event: `data:{json}` as TGI writes it (`data: {json}` for the OpenAI routes)."""
    return f"data:{' ' if space else ''}{_dumps(payload)}\n\n".encode()


async def _open_sse(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    return response


# -- application --------------------------------------------------------------------------------------------------
def create_app(service: TGIService) -> web.Application:
    app = web.Application(middlewares=[error_middleware], client_max_size=16 * 1024 * 1024)
    app["logger"] = service.logger
    app.router.add_get("/info", service.info)
    app.router.add_get("/health", service.health)
    app.router.add_get("/metrics", service.metrics)
    app.router.add_get("/v1/models", service.models)
    app.router.add_post("/", service.compat)
    app.router.add_post("/generate", service.generate)
    app.router.add_post("/generate_stream", service.generate_stream)
    app.router.add_post("/v1/chat/completions", service.chat)
    app.router.add_post("/v1/completions", service.completions)
    app.router.add_post("/tokenize", service.tokenize)
    return app


def _limits(args: argparse.Namespace, max_positions: int) -> Limits:
    total = args.max_total_tokens or _env_int("MAX_TOTAL_TOKENS") or min(max_positions, 4096)
    max_input = args.max_input_tokens or _env_int("MAX_INPUT_TOKENS", "MAX_INPUT_LENGTH") or total - 1
    if max_input >= total:
        raise SystemExit(f"max input tokens ({max_input}) must be < max total tokens ({total})")
    defaults = Limits()

    def pick(flag: int | None, env: str, default: int) -> int:
        return flag or _env_int(env) or default

    return Limits(
        max_concurrent_requests=pick(
            args.max_concurrent_requests, "MAX_CONCURRENT_REQUESTS", defaults.max_concurrent_requests
        ),
        max_input_tokens=max_input,
        max_total_tokens=total,
        max_best_of=pick(args.max_best_of, "MAX_BEST_OF", defaults.max_best_of),
        max_stop_sequences=pick(args.max_stop_sequences, "MAX_STOP_SEQUENCES", defaults.max_stop_sequences),
        max_top_n_tokens=pick(args.max_top_n_tokens, "MAX_TOP_N_TOKENS", defaults.max_top_n_tokens),
        max_client_batch_size=pick(None, "MAX_CLIENT_BATCH_SIZE", defaults.max_client_batch_size),
        max_batch_size=pick(args.max_batch_size, "MAX_BATCH_SIZE", defaults.max_batch_size),
        max_batch_total_tokens=pick(
            args.max_batch_total_tokens, "MAX_BATCH_TOTAL_TOKENS", max(defaults.max_batch_total_tokens, total)
        ),
        max_batch_prefill_tokens=pick(
            args.max_batch_prefill_tokens, "MAX_BATCH_PREFILL_TOKENS", max(defaults.max_batch_prefill_tokens, max_input)
        ),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m workers.tgi", description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True, help="HF folder: safetensors, config, tokenizer")
    parser.add_argument("--model-id", required=True, help="ORG/NAME reported in /info and responses")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default=os.environ.get("DTYPE", "float32"))
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: min(2, cores))")
    for flag in (
        "max-concurrent-requests",
        "max-input-tokens",
        "max-total-tokens",
        "max-best-of",
        "max-stop-sequences",
        "max-top-n-tokens",
        "max-batch-size",
        "max-batch-total-tokens",
        "max-batch-prefill-tokens",
    ):
        parser.add_argument(f"--{flag}", type=int, default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    logger = get_logger("tgi-worker")
    threads = configure_torch(args.threads)

    from workers.generation import GenerationEngine

    started = time.monotonic()
    engine = GenerationEngine.load(args.model_dir, dtype=args.dtype, logger=logger)
    limits = _limits(args, int(getattr(engine.model.config, "max_position_embeddings", 4096)))
    engine.max_batch_size = limits.max_batch_size
    engine.max_batch_total_tokens = limits.max_batch_total_tokens
    engine.max_batch_prefill_tokens = limits.max_batch_prefill_tokens
    engine.start()
    logger.info(
        "model loaded",
        extra={"model_id": args.model_id, "seconds": round(time.monotonic() - started, 2), "threads": threads},
    )
    service = TGIService(engine, args.model_id, limits, args.dtype, logger)
    serve(create_app(service), args.host, args.port, on_stop=engine.stop)


if __name__ == "__main__":
    main()
