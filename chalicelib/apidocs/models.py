"""Error bodies of the control plane, and the document's own shape (what GET /openapi.json answers)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class GatewayError(BaseModel):
    """What the gateway answers itself, before any handler (as API Gateway words its refusals): no route (404),
    a refused credential (401), ambiguous credentials (400), the authorizer cannot check now (503), a body over
    the limit (413), headers over the limits (431)."""

    model_config = ConfigDict(extra="forbid")

    message: str


class ChaliceError(BaseModel):
    """What a control-plane handler answers for a request it refuses (Chalice's error shape)."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(alias="Code", description="the error's name, e.g. BadRequestError")
    message: str = Field(alias="Message")


class OpenApiDocument(BaseModel):
    """An OpenAPI 3.1 document."""

    model_config = ConfigDict(extra="allow")

    openapi: Literal["3.1.0"]
    info: dict[str, Any]
    paths: dict[str, Any]
    components: dict[str, Any]
