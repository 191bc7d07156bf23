"""TGI's wire models at the router's edge: the request bodies it builds, the answers it reads (HF's `text-generation`
client style: `Request(...)` out, `Response.model_validate(payload)` in; the models are `chalicelib.contracts.tgi`).
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from chalicelib.config import format_validation_error
from chalicelib.serve.errors import ServeError, invalid

M = TypeVar("M", bound=BaseModel)


def unsendable(error: ValidationError) -> ServeError:
    """A request model the policy's values did not fit. What the caller's contract left open (extra message fields)
    or a model's `defaultModelKwargs` (registry data) may hold a type TGI refuses: a 400 naming the field, as TGI's
    own refusal was, before anything is sent."""
    first = error.errors()[0]["loc"] if error.errors() else ()
    message = format_validation_error(error).replace("\n", "; ")
    return invalid(f"the request cannot be sent to TGI: {message}", ".".join(map(str, first)) or None)


def body(request: BaseModel) -> dict[str, Any]:
    """A request model as the JSON object to POST: the fields the policy gave a value, no others (TGI's defaults
    for the rest), so what is sent is what the policy decided (docs/serving.md)."""
    return request.model_dump(exclude_unset=True, exclude_none=True)


def read(model: type[M], payload: Any, what: str) -> M:
    """A backend's answer (parsed JSON, or already read) as `model`; an answer TGI's API does not define is a 502."""
    try:
        return model.model_validate(payload)
    except ValidationError as error:
        detail = format_validation_error(error).replace("\n", "; ")
        raise ServeError(502, f"the model backend answered {what} that TGI's API does not define: {detail}") from None
