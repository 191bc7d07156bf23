"""The OpenAPI document: generated from the route tables and models, valid 3.1, complete, served without auth."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openapi_spec_validator import validate
from pydantic import BaseModel

from app import app
from chalicelib.apidocs.document import OPENAPI_PATH
from chalicelib.apidocs.operations import Operation, Reply
from chalicelib.serve.routes import DATA_PLANE
from router.app import create_app
from runner.chalice_gateway import make_gateway


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    """GET /openapi.json through the local gateway with no credential at all."""
    answer = make_gateway(app).handle_request(method="GET", path=OPENAPI_PATH, headers={}, body=None)
    assert answer["statusCode"] == 200
    body: dict[str, Any] = json.loads(answer["body"])
    return body


def _empty_schemas(value: Any, where: str = "") -> list[str]:
    found = []
    if isinstance(value, dict):
        if "schema" in value and value["schema"] == {}:
            found.append(where)
        for key, item in value.items():
            if key not in ("security", "links") and item == {} and where.endswith(("schemas", "properties")):
                found.append(f"{where}/{key}")
            found += _empty_schemas(item, f"{where}/{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _empty_schemas(item, f"{where}/{index}")
    return found


def test_the_document_is_valid_openapi_31_served_without_auth(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    validate(document)  # raises on any violation of the 3.1 schema (duplicate operation ids included)
    assert set(document["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    assert document["paths"][OPENAPI_PATH]["get"]["security"] == []


def test_every_route_of_both_planes_is_documented(document: dict[str, Any]) -> None:
    documented = {(path, method.upper()) for path, ops in document["paths"].items() for method in ops}
    chalice = {(path, method) for path, methods in app.routes.items() for method in methods}
    data = {(route.path, route.method) for route in DATA_PLANE}
    assert documented == chalice | data
    served = {(r.resource.canonical, r.method) for r in create_app().router.routes() if r.resource is not None}
    assert served - {("/health", "GET"), ("/health", "HEAD")} == data  # the router serves exactly the table


def test_responses_have_real_schemas_and_errors_their_plane_shape(document: dict[str, Any]) -> None:
    assert _empty_schemas(document) == []
    chat = document["paths"]["/v1/openai/chat/completions"]["post"]["responses"]
    assert chat["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ChatCompletion"}
    assert "text/event-stream" in chat["200"]["content"]
    assert chat["404"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}
    put = document["paths"]["/sessions/{sessionId}"]["put"]
    assert put["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/SessionPut"}
    assert put["responses"]["401"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/GatewayError"
    }
    assert put["responses"]["200"]["links"]["GetSession"]["operationId"] == "getSession"
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            assert "431" in op["responses"], (method, path)
            if op["security"]:
                assert "401" in op["responses"], (method, path)


class _Answer(BaseModel):
    value: int


class _Other(BaseModel):
    value: int


def test_an_operation_answers_only_its_declared_models() -> None:
    operation = Operation("op", "an operation", responses={200: f"{__name__}:_Answer"})
    assert operation.respond(_Answer(value=1)).status_code == 200
    with pytest.raises(TypeError, match="does not declare"):
        operation.respond(_Other(value=1))
    with pytest.raises(TypeError, match="with 201"):
        operation.respond(Reply(_Answer(value=1), 201))
