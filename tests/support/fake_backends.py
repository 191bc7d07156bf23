"""A scriptable stand-in for TGI / TEI / instructor backends, speaking their wire formats, for error-path tests.

Real model workers (tests/support/workers.py) are used for the acceptance tests; this one exists for what real
workers cannot be made to do on demand: be slow, fail mid-stream, stall, drop the connection, answer an error,
and report whether the caller hung up (so tests can check that cancellation reaches the backend).

Every request is recorded in `requests` as (path, json body). `mode` selects the behaviour (see `Mode`).
Generation is deterministic: the answer to a prompt is the words `tok0 tok1 ...` (`tokens` of them).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

Mode = Literal[
    "ok",
    "slow",  # sleep `delay` seconds before answering anything
    "error",  # answer `error_status` with a TGI error body
    "fail_midstream",  # streams: send `fail_after` events, then a TGI error event, then end
    "drop_midstream",  # streams: send `fail_after` events, then drop the connection
    "stall_midstream",  # streams: send `fail_after` events, then go silent for `delay` seconds
    "not_object",  # answer 200 with JSON that is neither an object nor a list (a string)
    "drop",  # read the request, then close the connection without answering
]


@dataclass
class FakeBackend:
    mode: Mode = "ok"
    tokens: int = 5
    delay: float = 5.0
    token_interval: float = 0.0
    fail_after: int = 2
    error_status: int = 422
    error_message: str = "Input validation error: `inputs` must have less than 2048 tokens"
    dims: int = 4
    requests: list[tuple[str, Any]] = field(default_factory=list)
    disconnected: threading.Event = field(default_factory=threading.Event)
    finished_streams: int = 0

    def reset(self) -> None:
        self.mode, self.tokens, self.delay, self.token_interval, self.fail_after = "ok", 5, 5.0, 0.0, 2
        self.requests.clear()
        self.disconnected.clear()
        self.finished_streams = 0

    # -- helpers -------------------------------------------------------------------------------------------------
    async def _before(self, request: web.Request) -> tuple[Any, web.Response | None]:
        raw = await request.read()
        body = json.loads(raw) if raw else None
        self.requests.append((request.path, body))
        if self.mode == "slow":
            try:
                await asyncio.sleep(self.delay)
            except asyncio.CancelledError:  # the caller hung up while we were "generating"
                self.disconnected.set()
                raise
        if self.mode == "error":
            payload = {"error": self.error_message, "error_type": "validation"}
            return body, web.json_response(payload, status=self.error_status)
        if self.mode == "not_object":
            return body, web.json_response("not an object")
        if self.mode == "drop":
            assert request.transport is not None
            request.transport.close()
            raise asyncio.CancelledError
        return body, None

    def _words(self, count: int) -> list[str]:
        return [f"tok{i}" if i == 0 else f" tok{i}" for i in range(count)]

    def _max_tokens(self, value: Any) -> int:
        return int(value) if isinstance(value, int) and value > 0 else self.tokens

    async def _stream(self, request: web.Request, events: list[bytes], done: bytes | None) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            for i, event in enumerate(events):
                if self.mode in ("fail_midstream", "drop_midstream", "stall_midstream") and i == self.fail_after:
                    if self.mode == "fail_midstream":
                        error = {"error": "CUDA out of memory (simulated)", "error_type": "generation"}
                        await response.write(b"data:" + json.dumps(error).encode() + b"\n\n")
                        await response.write_eof()
                        return response
                    if self.mode == "drop_midstream":
                        assert request.transport is not None
                        request.transport.abort()
                        return response
                    await asyncio.sleep(self.delay)
                await response.write(event)
                if self.token_interval:
                    await asyncio.sleep(self.token_interval)
            if done is not None:
                await response.write(done)
            await response.write_eof()
            self.finished_streams += 1
        except (ConnectionResetError, asyncio.CancelledError):
            self.disconnected.set()
            raise
        return response

    # -- TGI -----------------------------------------------------------------------------------------------------
    async def generate(self, request: web.Request) -> web.Response:
        body, refused = await self._before(request)
        if refused is not None:
            return refused
        params = body.get("parameters") or {}
        count = self._max_tokens(params.get("max_new_tokens"))
        words = self._words(count)
        reason = "length" if params.get("max_new_tokens") else "eos_token"
        tokens = [{"id": i, "text": w, "logprob": -0.5, "special": False} for i, w in enumerate(words)]
        details: dict[str, Any] = {
            "finish_reason": reason,
            "generated_tokens": count,
            "seed": params.get("seed"),
            "prefill": [],
            "tokens": tokens,
        }
        if params.get("top_n_tokens"):
            details["top_tokens"] = [[t, {**t, "text": "alt", "logprob": -2.0}] for t in tokens]
        text = "".join(words)
        if params.get("return_full_text"):
            text = body["inputs"] + text
        headers = {"x-prompt-tokens": str(len(body["inputs"].split())), "x-generated-tokens": str(count)}
        return web.json_response({"generated_text": text, "details": details}, headers=headers)

    async def generate_stream(self, request: web.Request) -> web.StreamResponse:
        body, refused = await self._before(request)
        if refused is not None:
            return refused
        params = body.get("parameters") or {}
        count = self._max_tokens(params.get("max_new_tokens"))
        words = self._words(count)
        events = []
        for i, word in enumerate(words):
            last = i == len(words) - 1
            event: dict[str, Any] = {
                "index": i,
                "token": {"id": i, "text": word, "logprob": -0.5, "special": False},
                "generated_text": "".join(words) if last else None,
                "details": {
                    "finish_reason": "length",
                    "generated_tokens": count,
                    "seed": None,
                    "input_length": len(body["inputs"].split()),
                }
                if last
                else None,
            }
            if params.get("top_n_tokens"):
                event["top_tokens"] = [event["token"]]
            events.append(b"data:" + json.dumps(event).encode() + b"\n\n")
        return await self._stream(request, events, None)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body, refused = await self._before(request)
        if refused is not None:
            return refused
        count = self._max_tokens(body.get("max_tokens"))
        words = self._words(count)
        last_user = next((m.get("content") for m in reversed(body["messages"]) if m["role"] == "user"), "")
        usage = {"prompt_tokens": 7, "completion_tokens": count, "total_tokens": 7 + count}
        base = {"id": "", "created": int(time.time()), "model": "fake/tgi", "system_fingerprint": "fake"}
        if not body.get("stream"):
            message = {"role": "assistant", "content": f"echo: {last_user}"}
            choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "eos_token"}
            return web.json_response({**base, "object": "chat.completion", "choices": [choice], "usage": usage})
        events = []
        for i, word in enumerate(words):
            reason = "length" if i == len(words) - 1 else None
            choice = {"index": 0, "delta": {"role": "assistant", "content": word}, "logprobs": None}
            chunk = {**base, "object": "chat.completion.chunk", "choices": [{**choice, "finish_reason": reason}]}
            events.append(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        if (body.get("stream_options") or {}).get("include_usage"):
            chunk = {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}
            events.append(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        return await self._stream(request, events, b"data: [DONE]\n\n")

    # -- TEI / instructor ----------------------------------------------------------------------------------------
    def _vector(self, text: str) -> list[float]:
        return [float(len(text) + i) for i in range(self.dims)]

    async def embed(self, request: web.Request) -> web.Response:
        body, refused = await self._before(request)
        if refused is not None:
            return refused
        inputs = body["inputs"]
        texts = [inputs] if isinstance(inputs, str) else inputs
        tokens = sum(len(t.split()) for t in texts)
        return web.json_response([self._vector(t) for t in texts], headers={"x-compute-tokens": str(tokens)})

    async def predictions(self, request: web.Request) -> web.Response:
        body, refused = await self._before(request)
        if refused is not None:
            return refused
        texts = [body["text"]] if isinstance(body["text"], str) else body["text"]
        return web.json_response([self._vector(body["instruction"] + t) for t in texts])

    async def info(self, _: web.Request) -> web.Response:
        return web.json_response({"model_id": "fake/model", "max_input_tokens": 2048, "max_total_tokens": 4096})

    async def health(self, _: web.Request) -> web.Response:
        return web.Response()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/info", self.info)
        app.router.add_get("/health", self.health)
        app.router.add_post("/generate", self.generate)
        app.router.add_post("/generate_stream", self.generate_stream)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/embed", self.embed)
        app.router.add_post("/predictions/model", self.predictions)
        return app
