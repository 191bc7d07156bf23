"""GET /ui/config (public): the OIDC settings the chat UI signs in with.

They are the authorizer's own settings (AUTHORITY, CLIENT_ID), so the UI always asks the identity provider for
exactly the tokens the API accepts. Nothing here is secret: a PKCE client has no client secret.
"""

from __future__ import annotations

from chalice.app import Blueprint, Response

webui_bp = Blueprint(__name__)

OIDC_SCOPE = "openid profile email"


@webui_bp.route("/ui/config", methods=["GET"])
def ui_config() -> Response:
    """Where the UI's single sign-on goes: `authority` and `clientId` are null when only API keys are used."""
    from chalicelib.settings import get_settings  # pydantic-settings loads on first use, not at cold start

    settings = get_settings()
    sso = bool(settings.authority and settings.client_id)
    body = {
        "authority": settings.authority if sso else None,
        "clientId": settings.client_id if sso else None,
        "scope": OIDC_SCOPE,
    }
    return Response(body=body, status_code=200, headers={"Cache-Control": "no-store"})
