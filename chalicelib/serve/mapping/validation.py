"""Edge validation: a request body as a bounded JSON object, then as a contract model, or a 4xx naming the field."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from chalicelib import bounded_json
from chalicelib.config import format_validation_error
from chalicelib.serve.errors import ServeError, invalid

M = TypeVar("M", bound=BaseModel)


def parse_json_object(raw: bytes | str | None) -> dict[str, Any]:
    """A request body as a JSON object (bounded: chalicelib.bounded_json), or a 400 saying what is wrong, naming the
    field where it can."""
    if not raw:
        raise invalid("request body is empty; send a JSON object", code="invalid_json")
    try:
        data = bounded_json.loads(raw)
    except bounded_json.InvalidJson as error:
        raise invalid(error.message, error.field, code="invalid_json") from None
    if not isinstance(data, dict):
        raise invalid("request body must be a JSON object", code="invalid_json")
    return data


def validate(model: type[M], data: Any, prefix: str = "") -> M:
    """`data` validated as `model`, or a 422 naming every bad field (`param` is the first)."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise validation_error(error, prefix) from None


def validation_error(error: ValidationError, prefix: str = "") -> ServeError:
    """A 422 for a pydantic error: `field.path: reason; ...`, `param` = the first field."""
    message = format_validation_error(error).replace("\n", "; ")
    first = error.errors()[0]["loc"] if error.errors() else ()
    param = ".".join(str(part) for part in first if not _is_union_tag(part)) or None
    if prefix:
        message = "; ".join(f"{prefix}.{part}" if not part.startswith("(") else part for part in message.split("; "))
        param = f"{prefix}.{param}" if param else prefix
    return ServeError(422, message, param=param, code="invalid_value")


_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "list", "dict", "none"})


def _is_union_tag(part: str | int) -> bool:
    """pydantic names the union member in an error's location (`content.str`); a `param` leaves it out."""
    return isinstance(part, str) and (part in _TYPE_TAGS or any(c in part for c in "[(-"))
