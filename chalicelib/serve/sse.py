"""Server-sent events (the `text/event-stream` format of the WHATWG HTML spec), encoding and incremental parsing.

LISA writes `data: {json}\\n\\n` per event and ends OpenAI streams with `data: [DONE]\\n\\n`. The parser accepts
anything a conforming server sends: `\\n`, `\\r\\n` or `\\r` line ends, optional space after the colon, multi-line
data, `event:`/`id:` fields and `:` comment lines; events may be split across network chunks anywhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from chalicelib import bounded_json

CONTENT_TYPE = "text/event-stream"
DONE = b"data: [DONE]\n\n"
DONE_DATA = "[DONE]"

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def encode(payload: Any) -> bytes:
    """One event whose data is `payload` as compact JSON."""
    return b"data: " + _dumps(payload).encode() + b"\n\n"


def encode_raw(data: str | bytes) -> bytes:
    """One event whose data is `data` verbatim (must not contain a line break)."""
    raw = data.encode() if isinstance(data, str) else data
    return b"data: " + raw + b"\n\n"


@dataclass(frozen=True, slots=True)
class Event:
    """One parsed server-sent event."""

    data: str
    event: str | None = None
    id: str | None = None

    def json(self) -> Any:
        """The data parsed as bounded JSON (ValueError if it is not)."""
        return bounded_json.loads(self.data, "the event")


class SSEDecoder:
    """Feed bytes as they arrive; get back the events completed so far."""

    __slots__ = ("_buffer", "_data", "_event", "_id", "_pending_cr")

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None
        self._pending_cr = False

    def feed(self, chunk: bytes) -> list[Event]:
        """Events completed by `chunk` (possibly none)."""
        if self._pending_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]  # the \n of a \r\n split across chunks
        self._pending_cr = chunk.endswith(b"\r")
        buffer = self._buffer + chunk
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buffer.split(b"\n")
        self._buffer = lines.pop()
        events: list[Event] = []
        for line in lines:
            event = self._line(line.decode("utf-8", errors="replace"))
            if event is not None:
                events.append(event)
        return events

    def close(self) -> list[Event]:
        """Events left when the stream ends (a final event without its blank line is still delivered)."""
        events = self.feed(b"\n\n") if self._buffer or self._data else []
        self._buffer = b""
        return events

    def _line(self, line: str) -> Event | None:
        if not line:
            if not self._data:
                self._event = None
                return None
            event = Event("\n".join(self._data), self._event, self._id)
            self._data, self._event = [], None
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            self._id = value
        return None


def iter_events(chunks: Iterable[bytes]) -> Iterator[Event]:
    """Events from an iterable of byte chunks (e.g. `httpx.Response.iter_bytes()`)."""
    decoder = SSEDecoder()
    for chunk in chunks:
        yield from decoder.feed(chunk)
    yield from decoder.close()
