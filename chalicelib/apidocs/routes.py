"""GET /openapi.json (public): the OpenAPI 3.1 document of the whole API, built once per process."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from chalicelib.apidocs.document import OPENAPI_PATH
from chalicelib.apidocs.operations import ApiBlueprint, Reply

if TYPE_CHECKING:
    from chalicelib.apidocs.models import OpenApiDocument

apidocs_bp = ApiBlueprint(__name__)


@cache
def _document() -> OpenApiDocument:
    from chalicelib.apidocs.document import build
    from chalicelib.apidocs.models import OpenApiDocument
    from chalicelib.serve.routes import DATA_PLANE

    return OpenApiDocument.model_validate(build(apidocs_bp.current_app, DATA_PLANE))


@apidocs_bp.operation(
    OPENAPI_PATH,
    "GET",
    responses={200: "chalicelib.apidocs.models:OpenApiDocument"},
    operation_id="getOpenApi",
    tag="docs",
)
def openapi_document() -> Reply:
    """This document: every operation of the control plane and the data plane, with its request and response
    schemas."""
    return Reply(_document(), headers={"Cache-Control": "public, max-age=300"})
