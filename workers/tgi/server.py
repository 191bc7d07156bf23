"""The TGI worker's application (routes → handlers) and command line: load the model, then serve."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from aiohttp import web

from workers.common import configure_torch, error_middleware, get_logger, serve
from workers.tgi.limits import LIMIT_FLAGS, limits_from
from workers.tgi.service import TGIService


def create_app(service: TGIService) -> web.Application:
    """TGI's routes, with errors answered in TGI's error body."""
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


def main(argv: list[str] | None = None) -> None:
    """`python -m workers.tgi`: load the model, warm the engine up, serve until SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m workers.tgi",
        description="A CPU worker speaking text-generation-inference's HTTP API (the subset LISA uses).",
    )
    parser.add_argument("--model-dir", type=Path, required=True, help="HF folder: safetensors, config, tokenizer")
    parser.add_argument("--model-id", required=True, help="ORG/NAME reported in /info and responses")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default=os.environ.get("DTYPE", "float32"))
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: min(2, cores))")
    for flag in LIMIT_FLAGS:
        parser.add_argument(f"--{flag}", type=int, default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    logger = get_logger("tgi-worker")
    threads = configure_torch(args.threads)

    from workers.generation import GenerationEngine  # torch and transformers: only once the worker serves

    started = time.monotonic()
    engine = GenerationEngine.load(args.model_dir, dtype=args.dtype, logger=logger)
    limits = limits_from(args, int(getattr(engine.model.config, "max_position_embeddings", 4096)))
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
