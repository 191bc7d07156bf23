"""LISA-native `modelKwargs` per provider (the backends' own names), over the model's `defaultModelKwargs`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from chalicelib.contracts.native import InstructorModelKwargs, TeiModelKwargs, TgiModelKwargs
from chalicelib.contracts.tgi import TgiParameters
from chalicelib.serve.mapping.validation import validate
from chalicelib.serve.mapping.wire import body, unsendable


def _known(defaults: Mapping[str, Any] | None, model: type[BaseModel]) -> dict[str, Any]:
    return {k: v for k, v in (defaults or {}).items() if k in model.model_fields}


def native_tgi_parameters(model_kwargs: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """TGI `parameters` for native `modelKwargs` (TGI names), over the model's defaults; 422 naming the kwarg."""
    kwargs = validate(TgiModelKwargs, {**_known(defaults, TgiModelKwargs), **model_kwargs}, "modelKwargs")
    greedy = kwargs.temperature == 0  # temperature 0 means greedy, as in LISA v1
    try:
        params = TgiParameters(
            max_new_tokens=kwargs.max_new_tokens,
            top_k=kwargs.top_k,
            top_p=kwargs.top_p,
            typical_p=kwargs.typical_p,
            temperature=None if greedy else kwargs.temperature,
            repetition_penalty=kwargs.repetition_penalty,
            frequency_penalty=kwargs.frequency_penalty,
            return_full_text=kwargs.return_full_text,
            truncate=kwargs.truncate,
            stop=kwargs.stop_sequences,
            seed=kwargs.seed,
            do_sample=False if greedy else kwargs.do_sample,
            details=True,
        )
    except ValidationError as error:
        raise unsendable(error) from None
    if kwargs.watermark:  # sent only when asked for (TGI's default is off)
        params.watermark = True
    return body(params)


def tei_kwargs(model_kwargs: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> TeiModelKwargs:
    """Validated TEI `modelKwargs` over the model's defaults."""
    return validate(TeiModelKwargs, {**_known(defaults, TeiModelKwargs), **model_kwargs}, "modelKwargs")


def instructor_kwargs(
    model_kwargs: Mapping[str, Any], defaults: Mapping[str, Any] | None = None
) -> InstructorModelKwargs:
    """Validated instructor `modelKwargs` over the model's defaults."""
    return validate(InstructorModelKwargs, {**_known(defaults, InstructorModelKwargs), **model_kwargs}, "modelKwargs")


_KWARGS_MODELS: dict[str, type[BaseModel]] = {
    "ecs.textgen.tgi": TgiModelKwargs,
    "ecs.embedding.tei": TeiModelKwargs,
    "ecs.embedding.instructor": InstructorModelKwargs,
}


def default_model_kwargs(provider: str, defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The complete `modelKwargs` a model runs with when a request sends none (for describeModel)."""
    model = _KWARGS_MODELS.get(provider, TgiModelKwargs)
    try:
        return model.model_validate(_known(defaults, model)).model_dump()
    except ValidationError:
        return model().model_dump()
