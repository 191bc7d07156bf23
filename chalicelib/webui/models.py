"""The body of GET /ui/config."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class UiConfig(BaseModel):
    """Where the UI's single sign-on goes: `authority` and `clientId` are null when only API keys are used."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, alias_generator=to_camel)

    authority: str | None = Field(description="the OIDC issuer")
    client_id: str | None = Field(description="the UI's OIDC client (a PKCE client: no secret)")
    scope: str
