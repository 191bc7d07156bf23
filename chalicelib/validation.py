"""Edge validation for Chalice routes: request bodies and query parameters parsed by pydantic into clear 400s."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from chalice.app import BadRequestError
from pydantic import BaseModel, ValidationError

from chalicelib.config import format_validation_error

M = TypeVar("M", bound=BaseModel)


def parse_body(model: type[M], raw_body: bytes | None) -> M:
    """Parse a JSON request body into `model`, or raise a 400 naming each bad field."""
    try:
        data: Any = json.loads(raw_body or b"null")
    except (ValueError, UnicodeDecodeError) as error:
        raise BadRequestError(f"request body is not valid JSON: {error}") from None
    except RecursionError:
        raise BadRequestError("request body is nested too deeply") from None
    if not isinstance(data, dict):
        raise BadRequestError("request body must be a JSON object")
    return parse_data(model, data)


def parse_data(model: type[M], data: Any) -> M:
    """Validate `data` (a dict from a body or query string) into `model`, or raise a 400."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise BadRequestError(format_validation_error(error).replace("\n", "; ")) from None
