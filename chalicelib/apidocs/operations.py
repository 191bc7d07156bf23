"""Operations: what a route accepts and answers, declared where the route is registered.

    @sessions_bp.operation("/{sessionId}", "PUT", body="chalicelib.sessions.models:SessionPut",
                           responses={200: SESSION, 201: SESSION}, errors=(404, 409, 413))
    def put_session(sessionId: str) -> Reply: ...

Models are named `"module:Class"` and imported on first use, so declaring them costs no cold start. The route's
view returns a model instance (or a `Reply` naming the status when several statuses answer the same model); the
wrapper checks it is the declared model for that status and serializes it, so what a route answers is what the
document says. `ApiBlueprint.body` / `.query` parse the request with the declared models (a 400 naming the field).
The same `Operation` describes the data plane's routes (`chalicelib.serve.routes`), which the router serves.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

from chalice.app import Blueprint, Response

from chalicelib.errors import LisaError

if TYPE_CHECKING:
    from pydantic import BaseModel

    M = TypeVar("M", bound=BaseModel)

SPEC_ATTRIBUTE = "__lisa_operation__"
JSON_HEADERS = {"Content-Type": "application/json"}
PUBLIC = "public"  # the serialization-context key of `Reply.public`


def model(ref: str) -> type[BaseModel]:
    """The model class a `"module:Class"` reference names."""
    module, _, name = ref.partition(":")
    found = getattr(importlib.import_module(module), name, None)
    if not isinstance(found, type):
        raise LookupError(f"no model {ref!r}")
    return found


@dataclass(frozen=True)
class Link:
    """An OpenAPI link from a success response to another operation: `parameters` map the target's parameter
    names to runtime expressions (`$response.body#/tokenId`, `$request.path.sessionId`)."""

    operation_id: str
    parameters: Mapping[str, str]


@dataclass(frozen=True)
class Operation:
    """One operation of the public API. `responses`: success status → model; `errors`: the error statuses its
    handler answers (the gateway's refusals are added by the document); `stream`: the model of each SSE event
    when the operation can answer `text/event-stream`."""

    operation_id: str
    summary: str
    responses: Mapping[int, str]
    body: str | None = None
    body_required: bool = True
    query: str | None = None
    errors: tuple[int, ...] = ()
    stream: str | None = None
    links: Mapping[str, Link] = field(default_factory=dict)
    description: str = ""
    tag: str = ""

    def respond(self, result: Any) -> Response:
        """The declared answer for a view's result: a model of one declared status, or a `Reply`."""
        reply = result if isinstance(result, Reply) else Reply(result)
        status = reply.status or self._status_of(reply.body)
        declared = self.responses.get(status)
        if declared is None or type(reply.body) is not model(declared):
            raise TypeError(f"{self.operation_id} answered {type(reply.body).__name__} with {status}")
        body = reply.body.model_dump(mode="json", by_alias=True, context={PUBLIC: reply.public})
        return Response(body=body, status_code=status, headers={**JSON_HEADERS, **reply.headers})

    def _status_of(self, result: Any) -> int:
        for status, ref in self.responses.items():
            if type(result) is model(ref):
                return status
        raise TypeError(f"{self.operation_id} answered {type(result).__name__}, which it does not declare")


@dataclass(frozen=True)
class Reply:
    """A view's answer with an explicit status (None: the declared status of its model) and extra headers.
    `public`: serialize for a caller who is not an administrator (models drop what only admins may see, by
    reading `PUBLIC` in their serialization context: see `chalicelib.registry.models.ModelRecord`)."""

    body: BaseModel
    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    public: bool = False


_current: ContextVar[Operation | None] = ContextVar("lisa_operation", default=None)


def first_line(text: str | None) -> str:
    """A docstring's first line: the operation's summary."""
    return (text or "").strip().split("\n", 1)[0].strip()


class ApiBlueprint(Blueprint):
    """A Blueprint whose routes are declared operations (module docstring)."""

    def operation(
        self,
        path: str,
        method: str,
        *,
        responses: Mapping[int, str],
        operation_id: str | None = None,
        authorizer: Any = None,
        body: str | None = None,
        body_required: bool = True,
        query: str | None = None,
        errors: tuple[int, ...] = (),
        links: Mapping[str, Link] | None = None,
        tag: str = "",
    ) -> Callable[[Callable[..., Any]], Callable[..., Response]]:
        """Register a route as a declared operation: its view answers only the declared models (module docstring)."""

        def register(view: Callable[..., Any]) -> Callable[..., Response]:
            doc = (view.__doc__ or "").strip()
            spec = Operation(
                operation_id=operation_id or _camel(view.__name__),
                summary=first_line(doc) or view.__name__.replace("_", " "),
                description=doc.split("\n", 1)[1].strip() if "\n" in doc else "",
                responses=dict(responses),
                body=body,
                body_required=body_required,
                query=query,
                errors=tuple(errors),
                links=dict(links or {}),
                tag=tag,
            )

            @wraps(view)
            def handler(*args: Any, **kwargs: Any) -> Response:
                token = _current.set(spec)
                try:
                    return spec.respond(view(*args, **kwargs))
                except LisaError as error:
                    if error.status == 500:  # a bug, not a refusal: Chalice logs it and answers its generic 500
                        raise
                    return error_response(error)
                finally:
                    _current.reset(token)

            setattr(handler, SPEC_ATTRIBUTE, spec)
            options: dict[str, Any] = {"methods": [method]}
            if authorizer is not None:
                options["authorizer"] = authorizer
            self.route(path, **options)(handler)
            return handler

        return register

    def body(self, wanted: type[M], *, default: bytes | None = None) -> M:
        """The request body parsed into the operation's declared body model (`default` when the body is empty)."""
        from chalicelib.validation import parse_request

        self._declared("body", wanted)
        return parse_request(wanted, self.current_request, default or b"null")

    def query(self, wanted: type[M]) -> M:
        """The query string parsed into the operation's declared query model (a 400 naming the parameter)."""
        from chalicelib.validation import parse_data

        self._declared("query", wanted)
        return parse_data(wanted, dict(self.current_request.query_params or {}))

    @staticmethod
    def _declared(what: str, wanted: type[BaseModel]) -> None:
        spec = _current.get()
        ref = getattr(spec, what, None) if spec else None
        if spec is None or ref is None or model(ref) is not wanted:
            raise TypeError(f"{wanted.__name__} is not the declared {what} of this operation")


# Chalice names its errors' `Code` after the ChaliceViewError class (`NotFoundError`); these are the names the
# control plane has always answered for each status, kept so the wire stays as it was.
_CHALICE_CODES = {
    400: "BadRequestError",
    401: "UnauthorizedError",
    403: "ForbiddenError",
    404: "NotFoundError",
    409: "ConflictError",
    413: "PayloadTooLargeError",
    422: "UnprocessableEntityError",
    429: "TooManyRequestsError",
    502: "BadGatewayError",
    503: "ServiceUnavailableError",
    504: "GatewayTimeoutError",
}


def error_response(error: LisaError) -> Response:
    """The control plane's one serializer of a refusal: Chalice's error shape, `{"Code", "Message"}` (ChaliceError)."""
    from chalicelib.apidocs.models import ChaliceError

    code = _CHALICE_CODES.get(error.status, type(error).__name__)
    body = ChaliceError.model_validate({"Code": code, "Message": error.message})
    return Response(body=body.model_dump(by_alias=True), status_code=error.status)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
