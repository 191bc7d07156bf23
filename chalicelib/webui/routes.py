"""GET /ui/config (public): the OIDC settings the chat UI signs in with.

They are the authorizer's own settings (AUTHORITY, CLIENT_ID), so the UI always asks the identity provider for
exactly the tokens the API accepts. Nothing here is secret: a PKCE client has no client secret.
"""

from __future__ import annotations

from chalicelib.apidocs.operations import ApiBlueprint, Reply

webui_bp = ApiBlueprint(__name__)

OIDC_SCOPE = "openid profile email"


@webui_bp.operation("/ui/config", "GET", responses={200: "chalicelib.webui.models:UiConfig"}, tag="ui")
def ui_config() -> Reply:
    """Where the UI's single sign-on goes: `authority` and `clientId` are null when only API keys are used."""
    from chalicelib.settings import get_settings  # pydantic-settings loads on first use, not at cold start
    from chalicelib.webui.models import UiConfig

    settings = get_settings()
    sso = bool(settings.authority and settings.client_id)
    body = UiConfig(
        authority=settings.authority if sso else None,
        client_id=settings.client_id if sso else None,
        scope=OIDC_SCOPE,
    )
    return Reply(body, headers={"Cache-Control": "no-store"})
