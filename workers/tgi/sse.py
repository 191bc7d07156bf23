"""The one server-sent-events loop of the TGI worker's streaming routes (/generate_stream, chat, completions)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from aiohttp import web
from pydantic import BaseModel

from chalicelib.contracts.tgi import TgiError
from chalicelib.serve.streams import merge
from workers.common import dump
from workers.engine_io import GenerationFailed, GenerationStream, TokenEvent


@dataclass(frozen=True)
class SseStyle:
    """How a route writes its events: TGI writes `data:{json}`; the OpenAI routes `data: {json}`, then `[DONE]`."""

    prefix: bytes
    done: bytes | None

    def event(self, payload: BaseModel) -> bytes:
        """One event holding `payload`, as compact JSON."""
        text = json.dumps(dump(payload), ensure_ascii=False, separators=(",", ":"))
        return self.prefix + text.encode() + b"\n\n"


TGI_STYLE = SseStyle(b"data:", None)
OPENAI_STYLE = SseStyle(b"data: ", b"data: [DONE]\n\n")

Render = Callable[[int, TokenEvent], Iterable[BaseModel]]


async def stream_events(
    request: web.Request,
    streams: list[GenerationStream],
    render: Render,
    style: SseStyle,
    closing: Callable[[], Iterable[BaseModel]] | None = None,
) -> web.StreamResponse:
    """Write the events `render` makes of each token of `streams` (tagged with the stream's index), then those of
    `closing`. A failed generation ends the stream with an error event; a client that goes away stops its
    generations, as does the end of the stream."""
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    try:
        async for index, event in merge([aiter(stream) for stream in streams]):
            for payload in render(index, event):
                await response.write(style.event(payload))
        for payload in closing() if closing is not None else ():
            await response.write(style.event(payload))
    except GenerationFailed as error:
        await response.write(style.event(TgiError(error=str(error), error_type="generation")))
    except ConnectionResetError:
        return response  # the client went away; its generations are cancelled below
    finally:
        for stream in streams:
            stream.cancel()
    if style.done is not None:
        await response.write(style.done)
    await response.write_eof()
    return response
