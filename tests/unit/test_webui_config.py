"""GET /ui/config: public, and it hands the UI exactly the OIDC settings the authorizer verifies against."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from chalice.test import Client

from app import app
from chalicelib import aws


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for key in ("LISA_AUTHORITY", "AUTHORITY", "LISA_CLIENT_ID", "CLIENT_ID"):
        monkeypatch.delenv(key, raising=False)
    aws.reset()
    yield monkeypatch
    aws.reset()


def _config() -> dict[str, object]:
    with Client(app) as client:
        response = client.http.get("/ui/config")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    return dict(json.loads(response.body))


def test_without_an_issuer_only_api_keys_are_offered(settings_env: pytest.MonkeyPatch) -> None:
    assert _config() == {"authority": None, "clientId": None, "scope": "openid profile email"}


def test_with_an_issuer_the_ui_gets_the_authorizers_settings(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv("LISA_AUTHORITY", "https://idp.example.com/realm")
    settings_env.setenv("LISA_CLIENT_ID", "lisa-ui")
    aws.reset()
    assert _config() == {
        "authority": "https://idp.example.com/realm",
        "clientId": "lisa-ui",
        "scope": "openid profile email",
    }


def test_half_configured_sso_is_not_offered(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv("LISA_AUTHORITY", "https://idp.example.com")
    aws.reset()
    assert _config()["authority"] is None
