"""Untrusted JSON (request bodies, pagination tokens, backend answers) parsed once, bounded, for every LISA server.

Python's json accepts what the code after it cannot handle: nesting deep enough to exhaust the recursion limit (in
json itself, in pydantic, in a serializer: RecursionError) and lone UTF-16 surrogates (`"\\ud800"`), which are not
Unicode text and fail when the string is encoded to be sent on (UnicodeEncodeError). `loads` refuses both, naming
the field they sit in, with `InvalidJson` (a ValueError), which each server answers in its own error shape.

Both checks cost nothing for ordinary bodies: the walk over the parsed value runs only when the text holds more than
MAX_DEPTH brackets or a `\\uD800`-`\\uDFFF` escape (a valid pair decodes to one code point and passes), and it visits
the parsed containers and their items (the characters of strings only when looking for a surrogate).
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
_CONTAINERS: frozenset[type] = frozenset({dict, list})  # json.loads makes exactly these types, no subclasses
_WITH_STRINGS: frozenset[type] = frozenset({dict, list, str})


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
    try:
        data = json.loads(text)
    except ValueError as error:
        raise InvalidJson(f"{what} is not valid JSON: {error}") from None
    except RecursionError:  # json stops cleanly at the interpreter's recursion limit; name the field, slowly
        raise _too_deep(what, max_depth, _deepest_top_key(text, max_depth)) from None
    deep = text.count("[") + text.count("{") > max_depth
    strings = _SURROGATE_ESCAPE.search(text) is not None
    if deep or strings:
        _walk(data, what, max_depth if deep else None, strings)
    return data


def _too_deep(what: str, max_depth: int, field: str | None) -> InvalidJson:
    reason = f"nested too deeply (more than {max_depth} levels of arrays and objects)"
    return InvalidJson(f"{field}: {reason}" if field else f"{what} is {reason}", field)


def _walk(data: Any, what: str, max_depth: int | None, strings: bool) -> None:
    """Depth (unless `max_depth` is None) and, with `strings`, lone surrogates, iteratively; raise naming the first
    offender."""
    kinds = _WITH_STRINGS if strings else _CONTAINERS
    stack: list[tuple[str, Any, int]] = [("", data, 1)]
    while stack:
        path, value, depth = stack.pop()
        if isinstance(value, str):
            _refuse_surrogate(value, path, what)
            continue
        if max_depth is not None and depth > max_depth:
            raise _too_deep(what, max_depth, path.split(".", 1)[0] or None)
        if isinstance(value, dict):
            for key, item in reversed(value.items()):
                if strings:
                    _refuse_surrogate(key, path, what, "has a key that ")
                if type(item) in kinds:
                    stack.append((f"{path}.{key}" if path else key, item, depth + 1))
        elif isinstance(value, list) and not kinds.isdisjoint(map(type, value)):  # skips scalar runs at C speed
            for index in range(len(value) - 1, -1, -1):
                item = value[index]
                if type(item) in kinds:
                    stack.append((f"{path}.{index}" if path else str(index), item, depth + 1))


def _deepest_top_key(text: str, max_depth: int) -> str | None:
    """The top-level key under which `text` nests deeper than `max_depth` (strings skipped), if there is one."""
    depth = 0
    top_key: str | None = None
    for match in _SCAN.finditer(text):
        piece = match.group()
        if piece in "[{":
            depth += 1
            if depth > max_depth:
                return top_key
        elif piece in "]}":
            depth -= 1
        elif match.group(1) is not None and depth == 1:
            top_key = _key(piece[: match.start(1) - match.start()])
    return None


def _key(quoted: str) -> str | None:
    try:
        key = json.loads(quoted)
    except ValueError:
        return None
    return key if isinstance(key, str) and not _LONE_SURROGATE.search(key) else None


def _refuse_surrogate(text: str, path: str, what: str, subject: str = "") -> None:
    found = _LONE_SURROGATE.search(text)
    if found is None:
        return
    reason = f"{subject}contains a lone UTF-16 surrogate (\\u{ord(found.group()):04x}), which is not Unicode text"
    raise InvalidJson(f"{path}: {reason}" if path else f"{what} {reason}", path or None)
