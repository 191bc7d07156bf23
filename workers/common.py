"""What the TGI and TEI workers share: torch threading, JSON errors, request parsing, bounded tokenization off the
event loop, admission, serving."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, ParamSpec, TypeVar

from aiohttp import web
from aws_lambda_powertools import Logger
from pydantic import BaseModel, ValidationError

from chalicelib.bounded_json import InvalidJson, loads
from chalicelib.contracts.tgi import TgiError
from chalicelib.errors import LisaError, TooManyRequests

ModelT = TypeVar("ModelT", bound=BaseModel)
P = ParamSpec("P")
R = TypeVar("R")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def get_logger(service: str) -> Logger:
    """Structured JSON logs on stderr, level from LOG_LEVEL (INFO by default)."""
    return Logger(service=service, level=os.environ.get("LOG_LEVEL", "INFO"))


def configure_torch(threads: int | None = None) -> int:
    """Intra-op threads: `threads`, else LISA_WORKER_THREADS, else min(2, cores); one inter-op thread."""
    import torch  # loaded by the worker that serves, not by `--help` nor by what only imports this module

    wanted = threads or int(os.environ.get("LISA_WORKER_THREADS", "0")) or min(2, os.cpu_count() or 1)
    torch.set_num_threads(max(1, wanted))
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)  # only allowed once, before any parallel work
    return int(torch.get_num_threads())


def error_response(error: LisaError) -> web.Response:
    """`error` as TGI's and TEI's error body: the one serializer of every error the workers answer.

    Its status and type come from the instance, which may override its class's: one worker imitates servers that
    answer the same fault differently (TGI: 422 `validation`; TEI: 413 `Validation`, 400 `Empty`)."""
    return web.json_response(dump(TgiError(error=error.message, error_type=error.error_type)), status=error.status)


def dump(model: BaseModel) -> Any:
    """A response model as the JSON value it stands for: the fields the worker set (and set to None), no others.

    What a worker leaves unset is what the server it imitates leaves out (OpenAI's `tool_calls`, TEI's
    `completion_tokens`), and so are the fields the contract omits when None (`contracts.base.omitted_when_none`).
    """
    return model.model_dump(exclude_unset=True)


def env_int(*names: str) -> int | None:
    """The first of the environment variables `names` that is set and not empty, as an integer."""
    for name in names:
        value = os.environ.get(name)
        if value:
            return int(value)
    return None


def describe_validation_error(error: ValidationError) -> str:
    """`field.path: reason` for the first few problems pydantic found."""
    parts = []
    for item in error.errors()[:3]:
        where = ".".join(str(p) for p in item.get("loc", ())) or "body"
        parts.append(f"`{where}`: {item.get('msg', 'invalid')}")
    return "; ".join(parts)


async def parse_json(
    request: web.Request,
    model: type[ModelT],
    *,
    status: int = 422,
    error_type: str = "validation",
    prefix: str = "",
) -> ModelT:
    """The request body (bounded: chalicelib.bounded_json) validated as `model`, or a LisaError naming the field."""
    raw = await request.read()
    try:
        payload: Any = loads(raw) if raw else None
    except InvalidJson as error:
        raise LisaError(f"{prefix}{error.message}", status=status, error_type=error_type) from None
    if not isinstance(payload, dict):
        raise LisaError(f"{prefix}request body must be a JSON object", status=status, error_type=error_type)
    try:
        return model.model_validate(payload)
    except ValidationError as error:
        raise LisaError(f"{prefix}{describe_validation_error(error)}", status=status, error_type=error_type) from None


# -- tokenization: bounded, and never on the event loop or the engine's thread -----------------------------------
CUT_MARGIN = 16  # tokens next to a cut in the text that may differ from the whole text's tokens there
_FIRST_CHARS_PER_TOKEN = 6  # the first part tried; English BPE averages ~4.5 characters per token
_tokenizing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenize")


def bounded_part(text: str, limit: int, count: Callable[[str], int], keep: Literal["head", "tail"] = "head") -> str:
    """The head (or tail) of `text` that decides its first (last) `limit` tokens, so that a huge input costs
    tokenizing a little more than `limit` tokens' worth of text, not all of it.

    Parts of 6 characters per token, then 4x longer, are tokenized (`count`) until one holds more than
    `limit + CUT_MARGIN` tokens: that part is returned (tokenized alone, its tokens away from the cut are the whole
    text's). `text` itself is returned when no shorter part holds that many (it must be tokenized whole)."""
    size = (limit + CUT_MARGIN + 1) * _FIRST_CHARS_PER_TOKEN
    while size < len(text):
        part = text[:size] if keep == "head" else text[-size:]
        if count(part) > limit + CUT_MARGIN:
            return part
        size *= 4
    return text


def too_long(limit: int, given: int | None) -> str:
    """TGI's and TEI's words for an input over the limit; `given` None: only a part of it was counted."""
    return f"`inputs` must have less than {limit} tokens. Given: {f'more than {limit}' if given is None else given}"


async def off_loop(function: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Run tokenization (and what validates its result) on the worker's one tokenizing thread.

    Never on the event loop, which streams every response, nor on the engine's thread, which generates for every
    sequence: a long input stalls neither. One thread, as TGI's one validation worker: calls queue behind each
    other, which `bounded_part` keeps short, and tokenizer settings (truncation) never change under a running call.
    """
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_tokenizing, functools.partial(function, *args, **kwargs))


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A LisaError → its JSON answer; an unexpected exception → a JSON 500 (logged), never an HTML page."""
    try:
        return await handler(request)
    except LisaError as error:
        return error_response(error)
    except web.HTTPException as error:
        if error.status >= 400 and error.content_type != "application/json":
            return error_response(LisaError(error.reason, status=error.status, error_type="http"))
        raise
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception as error:
        request.app["logger"].exception("request failed", extra={"path": request.path})
        return error_response(LisaError(f"internal error: {error}", error_type="generation"))


class Admission:
    """At most `limit` requests in flight (queued or running); beyond that callers get 429 like TGI/TEI."""

    def __init__(self, limit: int, message: str = "Model is overloaded", error_type: str = "overloaded") -> None:
        self.limit = limit
        self.in_flight = 0
        self._message = message
        self._error_type = error_type

    def __enter__(self) -> Admission:
        if self.in_flight >= self.limit:
            raise TooManyRequests(self._message, error_type=self._error_type)
        self.in_flight += 1
        return self

    def __exit__(self, *_: object) -> None:
        self.in_flight -= 1


def serve(app: web.Application, host: str, port: int, on_stop: Callable[[], None] | None = None) -> None:
    """Serve until SIGTERM/SIGINT. A client that disconnects cancels its handler (so its work stops)."""

    async def main() -> None:
        runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port, backlog=512).start()
        app["logger"].info("ready", extra={"host": host, "port": port})
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        app["logger"].info("stopping")
        if on_stop is not None:
            on_stop()
        await runner.cleanup()

    asyncio.run(main())
