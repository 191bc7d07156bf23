"""The OpenAPI 3.1 document of LISA's public API, from the route tables and the pydantic models.

The control plane's operations come from the Chalice app's own route table (each view carries its `Operation`,
see `operations`), the data plane's from `chalicelib.serve.routes.DATA_PLANE` (which the router serves). Request
bodies and query parameters are the models' validation schemas, responses their serialization schemas, so the
document says what the code accepts and answers. Every operation also lists the refusals that can reach it before
its handler: in the LISA shape (`{"message"}`, `apidocs.models.GatewayError`) on the control plane and for the
HTTP parser's 431, in OpenAI's shape under `/v1/` (the router answers those itself).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic.json_schema import JsonSchemaMode, models_json_schema

from chalicelib.apidocs.operations import SPEC_ATTRIBUTE, Operation, first_line, model

if TYPE_CHECKING:
    from chalice.app import Chalice

    from chalicelib.serve.routes import DataPlaneRoute

OPENAPI_PATH = "/openapi.json"
_REF = "#/components/schemas/{model}"
_AUTH: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "an API token (`lisa_...`) or an OIDC JWT"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "Api-Key", "description": "an API token"},
}
_GATEWAY, _CHALICE, _OPENAI = (
    "chalicelib.apidocs.models:GatewayError",
    "chalicelib.apidocs.models:ChaliceError",
    "chalicelib.contracts.openai:ErrorResponse",
)
# Refusals before a handler: the gateway's on the control plane (with the authorizer's when the route has one);
# under /v1/ the router's own (the HTTP parser's 431 is the front door's, in the gateway's shape).
_CONTROL_GATEWAY = {404, 413, 431}
_AUTHORIZER = {400, 401, 503}
_DATA_GATEWAY = {400, 401, 403, 404, 405, 413, 431}
_REASONS = {
    400: "bad request",
    401: "no valid credential",
    403: "not allowed",
    404: "not found",
    405: "method not allowed",
    409: "conflict",
    413: "body too large",
    422: "invalid value",
    429: "rate limited or the model is overloaded",
    431: "request headers too large",
    502: "the model backend failed",
    503: "unavailable now",
    504: "the model backend timed out",
}
Plane = Literal["control", "data"]
# pydantic's schema of JsonValue is `{}`; the document says what that means.
ANY_JSON = {
    "description": "any JSON value",
    "type": ["object", "array", "string", "number", "integer", "boolean", "null"],
}


@dataclass(frozen=True)
class _Entry:
    path: str
    method: str
    operation: Operation
    authorized: bool
    plane: Plane


def control_plane(app: Chalice) -> list[_Entry]:
    """Every route of the Chalice app; a route without a declared operation is a bug (ValueError)."""
    entries = []
    for path, methods in app.routes.items():
        for method, route in methods.items():
            spec = getattr(route.view_function, SPEC_ATTRIBUTE, None)
            if not isinstance(spec, Operation):
                raise ValueError(f"{method} {path} declares no operation (register it with ApiBlueprint.operation)")
            entries.append(_Entry(path, method, spec, route.authorizer is not None, "control"))
    return entries


def data_plane(routes: Iterable[DataPlaneRoute]) -> list[_Entry]:
    """The document entries of the data plane's routes (served by the router, not by Chalice)."""
    return [_Entry(r.path, r.method, r.operation, True, "data") for r in routes]


def _refs(entries: Sequence[_Entry]) -> list[tuple[str, JsonSchemaMode]]:
    wanted: dict[tuple[str, JsonSchemaMode], None] = {}
    for entry in entries:
        op = entry.operation
        for ref in (op.body, op.query):
            if ref:
                wanted[(ref, "validation")] = None
        for ref in (*op.responses.values(), op.stream, _GATEWAY, _CHALICE, _OPENAI):
            if ref:
                wanted[(ref, "serialization")] = None
    return list(wanted)


def build(app: Chalice, data: Iterable[DataPlaneRoute], *, version: str = "1.0.0") -> dict[str, Any]:
    """The whole document."""
    entries = [*control_plane(app), *data_plane(data)]
    refs = _refs(entries)
    keyed = [((ref, mode), model(ref), mode) for ref, mode in refs]
    by_key, definitions = models_json_schema([(cls, mode) for _, cls, mode in keyed], ref_template=_REF)
    schemas: dict[tuple[str, JsonSchemaMode], dict[str, Any]] = {key: by_key[(cls, mode)] for key, cls, mode in keyed}
    components = {name: schema or ANY_JSON for name, schema in definitions.get("$defs", {}).items()}
    paths: dict[str, dict[str, Any]] = {}
    for entry in sorted(entries, key=lambda e: (e.path, e.method)):
        paths.setdefault(entry.path, {})[entry.method.lower()] = _operation(entry, schemas, components)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "LISA API",
            "version": version,
            "summary": "Self-hosted LLM serving: OpenAI-compatible and LISA-native inference, model registry, API"
            " tokens, chat sessions and RAG",
        },
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": SECURITY_SCHEMES},
        "tags": [{"name": name} for name in sorted({e.operation.tag for e in entries if e.operation.tag})],
    }


def _operation(
    entry: _Entry, schemas: dict[tuple[str, JsonSchemaMode], dict[str, Any]], components: dict[str, Any]
) -> dict[str, Any]:
    op = entry.operation
    out: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary}
    if op.description:
        out["description"] = op.description
    if op.tag:
        out["tags"] = [op.tag]
    out["security"] = _AUTH if entry.authorized else []
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
        for name in re.findall(r"{(\w+)}", entry.path)
    ]
    if op.query:
        parameters += _query_parameters(schemas[(op.query, "validation")], components)
    if parameters:
        out["parameters"] = parameters
    if op.body:
        out["requestBody"] = {
            "required": op.body_required,
            "content": {"application/json": {"schema": schemas[(op.body, "validation")]}},
        }
    responses: dict[str, Any] = {}
    for status, ref in sorted(op.responses.items()):
        responses[str(status)] = {
            "description": first_line(model(ref).__doc__) or "success",
            "content": {"application/json": {"schema": schemas[(ref, "serialization")]}},
        }
    if op.stream:
        stream = {
            "schema": {"type": "string", "description": "server-sent events: `data: <event JSON>` per event"},
            "x-event-schema": schemas[(op.stream, "serialization")],
        }
        ok = responses.setdefault("200", {"description": "the server-sent event stream", "content": {}})
        ok["content"]["text/event-stream"] = stream
    if op.links:
        first = str(min(op.responses))
        responses[first]["links"] = {
            name: {"operationId": link.operation_id, "parameters": dict(link.parameters)}
            for name, link in op.links.items()
        }
    for status in sorted(_error_statuses(entry)):
        responses[str(status)] = {
            "description": _REASONS.get(status, "error"),
            "content": {"application/json": {"schema": _error_schema(entry.plane, status, schemas)}},
        }
    out["responses"] = responses
    return out


def _error_statuses(entry: _Entry) -> set[int]:
    if entry.plane == "data":
        return _DATA_GATEWAY | set(entry.operation.errors)
    return _CONTROL_GATEWAY | (_AUTHORIZER if entry.authorized else set()) | set(entry.operation.errors)


def _error_schema(
    plane: Plane, status: int, schemas: dict[tuple[str, JsonSchemaMode], dict[str, Any]]
) -> dict[str, Any]:
    gateway, chalice = schemas[(_GATEWAY, "serialization")], schemas[(_CHALICE, "serialization")]
    if status == 431 or (plane == "control" and status in (401, 413)):
        return gateway
    if plane == "data":
        return schemas[(_OPENAI, "serialization")]
    if status in _CONTROL_GATEWAY | _AUTHORIZER:  # the gateway's or the handler's
        return {"anyOf": [chalice, gateway]}
    return chalice


def _query_parameters(ref_schema: dict[str, Any], components: dict[str, Any]) -> list[dict[str, Any]]:
    name = ref_schema["$ref"].rsplit("/", 1)[1]
    schema = components[name]
    required = set(schema.get("required", ()))
    parameters = []
    for field, field_schema in schema.get("properties", {}).items():
        parameter: dict[str, Any] = {
            "name": field,
            "in": "query",
            "required": field in required,
            "schema": field_schema,
        }
        if field_schema.get("type") == "array":
            parameter |= {"style": "form", "explode": True}
        parameters.append(parameter)
    return parameters
