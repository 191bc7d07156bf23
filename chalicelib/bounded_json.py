"""Untrusted JSON (request bodies, pagination tokens, backend answers) parsed once, bounded, for every LISA server.

Python's json accepts what the code after it cannot handle: nesting deep enough to exhaust the recursion limit (in
json itself, in pydantic, in a serializer: RecursionError) and lone UTF-16 surrogates (`"\\ud800"`), which are not
Unicode text and fail when the string is encoded to be sent on (UnicodeEncodeError). `loads` refuses both, naming
the field they sit in, with `InvalidJson` (a ValueError), which each server answers in its own error shape.

Both checks cost nothing for ordinary bodies: the nesting scan runs only when the text holds more than MAX_DEPTH
brackets, the surrogate walk only when it holds a `\\uD800`-`\\uDFFF` escape (a valid pair decodes to one code
point and passes).
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 64  # arrays and objects inside each other; DynamoDB stops at 32, JSON schemas of tools stay far inside

# A JSON string (optionally an object key: followed by a colon) or a bracket; strings are skipped whole, so
# brackets inside them do not count. The unrolled form keeps the regex engine in tight loops on long strings.
_SCAN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"(\s*:)?|[\[\]{}]')
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class InvalidJson(ValueError):
    """Text that is not acceptable JSON; `field` names where (a dotted path), None for the text as a whole."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def loads(raw: bytes | str, what: str = "request body", max_depth: int = MAX_DEPTH) -> Any:
    """`raw` (UTF-8) parsed as JSON, or InvalidJson: not UTF-8, not JSON, nested deeper than `max_depth`, or a
    string holding a lone surrogate. `what` names the text in messages ("request body", "nextToken")."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")  # a str from a framework: literal surrogates fail below
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidJson(f"{what} is not valid UTF-8 text (byte {error.start})") from None
    _check_depth(text, what, max_depth)
    try:
        data = json.loads(text)
    except ValueError as error:
        raise InvalidJson(f"{what} is not valid JSON: {error}") from None
    except RecursionError:  # only when the caller's own stack is already deep
        raise InvalidJson(f"{what} is nested too deeply") from None
    if _SURROGATE_ESCAPE.search(text):
        _check_strings(data, what)
    return data


def _check_depth(text: str, what: str, max_depth: int) -> None:
    if text.count("[") + text.count("{") <= max_depth:
        return
    depth = 0
    top_key: str | None = None
    for match in _SCAN.finditer(text):
        piece = match.group()
        if piece in "[{":
            depth += 1
            if depth > max_depth:
                reason = f"nested too deeply (more than {max_depth} levels of arrays and objects)"
                raise InvalidJson(f"{top_key}: {reason}" if top_key else f"{what} is {reason}", top_key)
        elif piece in "]}":
            depth -= 1
        elif match.group(1) is not None and depth == 1:
            top_key = _key(piece[: match.start(1) - match.start()])


def _key(quoted: str) -> str | None:
    try:
        key = json.loads(quoted)
    except ValueError:
        return None
    return key if isinstance(key, str) and not _LONE_SURROGATE.search(key) else None


def _check_strings(data: Any, what: str) -> None:
    """Find the first string (key or value) with a lone surrogate; raise naming its path."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            _refuse_surrogate(value, path, what)
        elif isinstance(value, dict):
            for key, item in reversed(value.items()):
                _refuse_surrogate(key, path, what, "has a key that ")
                stack.append((f"{path}.{key}" if path else key, item))
        elif isinstance(value, list):
            stack.extend((f"{path}.{i}" if path else str(i), item) for i, item in reversed(list(enumerate(value))))


def _refuse_surrogate(text: str, path: str, what: str, subject: str = "") -> None:
    found = _LONE_SURROGATE.search(text)
    if found is None:
        return
    reason = f"{subject}contains a lone UTF-16 surrogate (\\u{ord(found.group()):04x}), which is not Unicode text"
    raise InvalidJson(f"{path}: {reason}" if path else f"{what} {reason}", path or None)
