"""Edge validation for Chalice routes: request bodies and query parameters parsed by pydantic into clear 400s."""

from __future__ import annotations

import re
from typing import Annotated, Any, TypeVar

from chalice.app import BadRequestError, Request
from pydantic import BaseModel, BeforeValidator, ValidationError

from chalicelib.bounded_json import InvalidJson, loads
from chalicelib.config import format_validation_error
from chalicelib.errors import BadRequest

M = TypeVar("M", bound=BaseModel)
_DIGITS = re.compile("[0-9]{1,18}")


def parse_body(model: type[M], raw_body: bytes | str | None) -> M:
    """Parse a JSON request body (bounded: chalicelib.bounded_json) into `model`, or raise a 400 naming the field."""
    try:
        data: Any = loads(raw_body or b"null")
    except InvalidJson as error:
        raise BadRequestError(error.message) from None
    if not isinstance(data, dict):
        raise BadRequestError("request body must be a JSON object")
    return parse_data(model, data)


def parse_request(model: type[M], request: Request, empty: bytes = b"null") -> M:
    """`parse_body` of a Chalice request's body (`empty` stands in for none)."""
    try:
        raw = request.raw_body  # chalice encodes a str body itself; a lone surrogate in it fails there
    except UnicodeEncodeError:
        raise BadRequestError("request body is not valid UTF-8 text") from None
    return parse_body(model, raw or empty)


def parse_data(model: type[M], data: Any) -> M:
    """Validate `data` (a dict from a body or query string) into `model`, or raise a 400."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise BadRequestError(format_validation_error(error).replace("\n", "; ")) from None


def _ascii_integer(value: Any) -> Any:
    """Query values are text, and pydantic (like `int`) reads "1_0" as 10 and Arabic-Indic digits as numbers: in a
    query string only ASCII digits are an integer."""
    if isinstance(value, str) and not _DIGITS.fullmatch(value):
        raise ValueError(f"must be an integer in ASCII digits, got {value[:40]!r}")
    return value


def path_id(raw: str, pattern: re.Pattern[str], field: str, rule: str) -> str:
    """A path parameter that must match `pattern` (the id format its store writes), else a 400 naming it:
    `<field>: must be <rule>`; one rule for every route module, so their refusals read alike."""
    if not pattern.match(raw):
        raise BadRequest(f"{field}: must be {rule}", field=field)
    return raw


QueryInt = Annotated[int, BeforeValidator(_ascii_integer)]
"""An integer field of a query-string model."""
