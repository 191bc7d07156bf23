"""A CPU worker speaking text-embeddings-inference's HTTP API, and optionally the instructor container protocol.

`python -m workers.tei --model-dir DIR --model-id ORG/NAME --port P [--host 127.0.0.1] [--protocol tei|instructor]`

TEI routes: `GET /info`, `GET /health`, `GET /metrics`, `POST /embed`, `POST /v1/embeddings` (OpenAI-compatible).
With `--protocol instructor` the same worker also answers `POST /predictions/model` with
`{"instruction": "...", "text": "..." | [...]}` → a JSON list of vectors, and `GET /ping` (TorchServe's health).
The instruction conditions the encoding but is left out of the pooled tokens, as INSTRUCTOR models do.
Limits come from TEI's environment variables (MAX_CONCURRENT_REQUESTS, MAX_BATCH_TOKENS, MAX_BATCH_REQUESTS,
MAX_CLIENT_BATCH_SIZE, AUTO_TRUNCATE) or the matching flags.
"""

from __future__ import annotations

import argparse
import base64
import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from chalicelib.contracts.instructor import InstructorError, InstructorHealth, InstructorRequest, InstructorResponse
from chalicelib.contracts.openai import EmbeddingData, EmbeddingResponse, Usage
from chalicelib.contracts.tei import TeiEmbedRequest, TeiEmbedResponse, TeiInfo, TeiOpenAIEmbedRequest
from chalicelib.errors import BadRequest, LisaError, PayloadTooLarge, ServiceUnavailable, Unprocessable
from workers.common import (
    Admission,
    configure_torch,
    dump,
    env_int,
    error_middleware,
    get_logger,
    off_loop,
    parse_json,
    serve,
)

if TYPE_CHECKING:  # torch and transformers load only when the worker starts, not for `--help`
    from aws_lambda_powertools import Logger

    from workers.embedding import EmbeddingBatcher

VERSION = "1.8.0"  # the TEI release whose API this worker follows
INSTRUCTOR_MAX_BATCH = 1024  # the instructor container had no client batch limit; keep a sane ceiling


@dataclass(frozen=True)
class Limits:
    """TEI's limits: per request (client batch, auto-truncation) and per forward pass (batch tokens, requests)."""

    max_concurrent_requests: int = 512
    max_batch_tokens: int = 16384
    max_batch_requests: int | None = None
    max_client_batch_size: int = 32
    auto_truncate: bool = False


def _validation(message: str) -> PayloadTooLarge:
    return PayloadTooLarge(f"Input validation error: {message}", error_type="Validation")


def _empty() -> BadRequest:
    return BadRequest("Input validation error: `inputs` cannot be empty", error_type="Empty")


class TEIService:
    """Validation and handlers over one `EmbeddingBatcher`."""

    def __init__(self, batcher: EmbeddingBatcher, model_id: str, limits: Limits, logger: Logger) -> None:
        self.batcher = batcher
        self.model = batcher.model
        self.model_id = model_id
        self.limits = limits
        self.logger = logger
        self.admission = Admission(limits.max_concurrent_requests, "Model is overloaded", "Overloaded")

    def _texts(self, inputs: str | list[str], limit: int | None = None) -> list[str]:
        texts = [inputs] if isinstance(inputs, str) else inputs
        if not texts or any(not text for text in texts):
            raise _empty()
        limit = limit or self.limits.max_client_batch_size
        if len(texts) > limit:
            raise _validation(f"batch size {len(texts)} > maximum allowed batch size {limit}")
        return texts

    def _dimensions(self, dimensions: int | None) -> None:
        if dimensions is not None and dimensions != self.model.dimensions:
            raise Unprocessable(
                f"`dimensions` must be {self.model.dimensions} for this model (it is not a Matryoshka model)",
                error_type="Validation",
            )

    async def _embed(
        self,
        texts: list[str],
        *,
        normalize: bool,
        truncate: bool | None,
        direction: str = "right",
        prefix: str = "",
        pool_prefix: bool = True,
    ) -> tuple[list[list[float]], int]:
        from workers.embedding import InputTooLong  # torch: loaded by the serving worker only, not for `--help`

        try:
            items = await off_loop(
                self.model.encode,
                texts,
                truncate=self.limits.auto_truncate if truncate is None else truncate,
                direction=direction.lower(),
                prefix=prefix,
                pool_prefix=pool_prefix,
            )
        except InputTooLong as error:
            raise _validation(str(error)) from None
        with self.admission:
            vectors = await self.batcher.embed(items, normalize=normalize)
        return vectors, sum(len(item.ids) for item in items)

    # -- TEI ---------------------------------------------------------------------------------------------------
    async def info(self, _: web.Request) -> web.Response:
        """GET /info."""
        info = TeiInfo(
            model_id=self.model_id,
            model_sha=None,
            model_dtype=self.model.dtype,
            served_model_name=self.model_id,
            model_type={"embedding": {"pooling": self.model.pooling}},
            max_concurrent_requests=self.limits.max_concurrent_requests,
            max_input_length=self.model.max_input_length,
            max_batch_tokens=self.limits.max_batch_tokens,
            max_batch_requests=self.limits.max_batch_requests,
            max_client_batch_size=self.limits.max_client_batch_size,
            auto_truncate=self.limits.auto_truncate,
            tokenization_workers=1,
            version=VERSION,
            sha=None,
            docker_label=None,
        )
        return web.json_response(dump(info))

    async def health(self, _: web.Request) -> web.Response:
        """GET /health: 200 while the batching thread runs."""
        if not self.batcher.alive:
            raise ServiceUnavailable("embedding backend is not running", error_type="Unhealthy")
        return web.Response(status=200)

    async def metrics(self, _: web.Request) -> web.Response:
        """GET /metrics: the batcher's counters in Prometheus' text format (TEI's metric names)."""
        stats = self.batcher.stats
        lines = [
            ("te_request_count", stats.requests),
            ("te_request_inputs_total", stats.inputs),
            ("te_batch_count", stats.batches),
            ("te_batch_tokens_total", stats.tokens),
            ("te_request_failure", stats.failures),
            ("te_requests_in_flight", self.admission.in_flight),
        ]
        return web.Response(text="".join(f"{n} {v}\n" for n, v in lines), content_type="text/plain")

    async def embed(self, request: web.Request) -> web.Response:
        """POST /embed: one vector per input, optionally with a named prompt of the model."""
        started = time.monotonic()
        body = await parse_json(request, TeiEmbedRequest, error_type="Validation")
        texts = self._texts(body.inputs)
        self._dimensions(body.dimensions)
        prefix = ""
        if body.prompt_name is not None:
            if body.prompt_name not in self.model.prompts:
                known = ", ".join(sorted(self.model.prompts)) or "none"
                raise Unprocessable(
                    f"`prompt_name` {body.prompt_name!r} is not a prompt of this model (known: {known})",
                    error_type="Validation",
                )
            prefix = self.model.prompts[body.prompt_name]
        vectors, tokens = await self._embed(
            texts,
            normalize=body.normalize,
            truncate=body.truncate,
            direction=body.truncation_direction,
            prefix=prefix,
            pool_prefix=self.model.include_prompt,
        )
        return web.json_response(dump(TeiEmbedResponse(vectors)), headers=_headers(started, tokens, len(texts)))

    async def openai_embeddings(self, request: web.Request) -> web.Response:
        """POST /v1/embeddings: TEI's OpenAI-compatible route (always normalized)."""
        body = await parse_json(request, TeiOpenAIEmbedRequest, error_type="Validation")
        texts = self._texts(body.input)
        self._dimensions(body.dimensions)
        vectors, tokens = await self._embed(texts, normalize=True, truncate=None)
        data = [
            EmbeddingData(object="embedding", embedding=_encode(vector, body.encoding_format), index=index)
            for index, vector in enumerate(vectors)
        ]
        usage = Usage(prompt_tokens=tokens, total_tokens=tokens)  # TEI writes no `completion_tokens`
        return web.json_response(dump(EmbeddingResponse(object="list", data=data, model=self.model_id, usage=usage)))

    # -- instructor (TorchServe-style container) ------------------------------------------------------------------
    async def ping(self, _: web.Request) -> web.Response:
        """GET /ping: TorchServe's health check."""
        if not self.batcher.alive:
            return web.json_response(dump(InstructorHealth(status="Unhealthy")), status=503)
        return web.json_response(dump(InstructorHealth(status="Healthy")))

    async def predictions(self, request: web.Request) -> web.Response:
        """POST /predictions/model: the instructor protocol; errors in TorchServe's body."""
        try:
            body = await parse_json(request, InstructorRequest, status=400, error_type="BadRequest")
            texts = self._texts(body.text, INSTRUCTOR_MAX_BATCH)
            vectors, _ = await self._embed(
                texts, normalize=True, truncate=None, prefix=body.instruction, pool_prefix=False
            )
        except LisaError as error:  # TorchServe's error shape
            answer = InstructorError(code=error.status, type=error.error_type, message=error.message)
            return web.json_response(dump(answer), status=error.status)
        return web.json_response(dump(InstructorResponse(vectors)))


def _encode(vector: list[float], encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector


def _headers(started: float, tokens: int, inputs: int) -> dict[str, str]:
    return {
        "x-compute-type": "cpu",
        "x-compute-time": str(round((time.monotonic() - started) * 1000)),
        "x-compute-tokens": str(tokens),
        "x-compute-characters": str(inputs),
    }


def create_app(service: TEIService, *, instructor: bool) -> web.Application:
    """TEI's routes (and the instructor protocol's), with errors answered in TEI's error body."""
    app = web.Application(middlewares=[error_middleware], client_max_size=16 * 1024 * 1024)
    app["logger"] = service.logger
    app.router.add_get("/info", service.info)
    app.router.add_get("/health", service.health)
    app.router.add_get("/metrics", service.metrics)
    app.router.add_post("/embed", service.embed)
    app.router.add_post("/v1/embeddings", service.openai_embeddings)
    if instructor:
        app.router.add_get("/ping", service.ping)
        app.router.add_post("/predictions/model", service.predictions)
    return app


def main(argv: list[str] | None = None) -> None:
    """`python -m workers.tei`: load the model, start the batcher, serve until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m workers.tei", description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True, help="sentence-transformers folder")
    parser.add_argument("--model-id", required=True, help="ORG/NAME reported in /info and responses")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--protocol", choices=("tei", "instructor"), default="tei")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default=os.environ.get("DTYPE", "float32"))
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: min(2, cores))")
    parser.add_argument("--max-concurrent-requests", type=int, default=None)
    parser.add_argument("--max-batch-tokens", type=int, default=None)
    parser.add_argument("--max-batch-requests", type=int, default=None)
    parser.add_argument("--max-client-batch-size", type=int, default=None)
    parser.add_argument("--auto-truncate", action="store_true", default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    logger = get_logger("tei-worker")
    threads = configure_torch(args.threads)
    defaults = Limits()
    auto_truncate = args.auto_truncate
    if auto_truncate is None:
        auto_truncate = os.environ.get("AUTO_TRUNCATE", "false").lower() in ("1", "true", "yes")
    limits = Limits(
        max_concurrent_requests=args.max_concurrent_requests
        or env_int("MAX_CONCURRENT_REQUESTS")
        or defaults.max_concurrent_requests,
        max_batch_tokens=args.max_batch_tokens or env_int("MAX_BATCH_TOKENS") or defaults.max_batch_tokens,
        max_batch_requests=args.max_batch_requests or env_int("MAX_BATCH_REQUESTS"),
        max_client_batch_size=args.max_client_batch_size
        or env_int("MAX_CLIENT_BATCH_SIZE")
        or defaults.max_client_batch_size,
        auto_truncate=auto_truncate,
    )

    from workers.embedding import EmbeddingBatcher, EmbeddingModel  # torch and transformers: only once serving

    started = time.monotonic()
    model = EmbeddingModel(args.model_dir, dtype=args.dtype)
    batcher = EmbeddingBatcher(
        model, logger=logger, max_batch_tokens=limits.max_batch_tokens, max_batch_requests=limits.max_batch_requests
    )
    batcher.start()
    logger.info(
        "model loaded",
        extra={"model_id": args.model_id, "seconds": round(time.monotonic() - started, 2), "threads": threads},
    )
    service = TEIService(batcher, args.model_id, limits, logger)
    serve(create_app(service, instructor=args.protocol == "instructor"), args.host, args.port, on_stop=batcher.stop)


if __name__ == "__main__":
    main()
