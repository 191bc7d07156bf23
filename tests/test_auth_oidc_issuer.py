"""The test OIDC issuer's browser login (authorization code + PKCE) yields JWTs LISA's authorizer accepts."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from chalicelib.auth.authorizer import Authorizer
from chalicelib.auth.jwt_verifier import JwtVerifier
from chalicelib.auth.routes import lisa_authorizer
from testkit.oidc_issuer import OidcIssuer

REDIRECT = "http://127.0.0.1:9/callback"


@pytest.fixture
def idp() -> Iterator[OidcIssuer]:
    with OidcIssuer(client_id="lisa-ui", path="/realms/lisa") as issuer:
        yield issuer


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize(client: httpx.Client, idp: OidcIssuer, challenge: str, **extra: str) -> dict[str, list[str]]:
    metadata = client.get(idp.url("/.well-known/openid-configuration")).json()
    reply = client.get(
        metadata["authorization_endpoint"],
        params={
            "response_type": "code",
            "client_id": idp.client_id,
            "redirect_uri": REDIRECT,
            "scope": "openid profile",
            "state": "st4te",
            "nonce": "n0nce",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            **extra,
        },
    )
    assert reply.status_code == 302
    location = reply.headers["location"]
    assert location.startswith(REDIRECT)
    return parse_qs(urlsplit(location).query)


def test_pkce_login_gives_tokens_the_authorizer_accepts(idp: OidcIssuer) -> None:
    idp.login_as("ada", groups=["admins", "users"], email="ada@example.com")
    verifier, challenge = pkce()
    with httpx.Client(timeout=10) as client:
        query = authorize(client, idp, challenge)
        assert query["state"] == ["st4te"]
        form = {"grant_type": "authorization_code", "code": query["code"][0], "redirect_uri": REDIRECT}
        tokens = client.post(idp.url("/token"), data={**form, "client_id": "lisa-ui", "code_verifier": verifier})
        assert tokens.status_code == 200
        body = tokens.json()
        # The code is single use.
        again = client.post(idp.url("/token"), data={**form, "code_verifier": verifier})
        assert again.status_code == 400
        info = client.get(idp.url("/userinfo"), headers={"Authorization": f"Bearer {body['access_token']}"})
        assert info.json()["email"] == "ada@example.com"
        refreshed = client.post(
            idp.url("/token"), data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}
        )
        assert refreshed.status_code == 200

    authorizer = Authorizer(None, JwtVerifier(idp.issuer, "lisa-ui", admin_group="admins"))
    for token in (body["id_token"], body["access_token"], refreshed.json()["id_token"]):
        principal = authorizer.authorize_headers({"Authorization": f"Bearer {token}"})
        assert principal.username == "ada"
        assert principal.is_admin
    assert idp.issuer.endswith("/realms/lisa")


def test_pkce_verifier_must_match(idp: OidcIssuer) -> None:
    _, challenge = pkce()
    with httpx.Client(timeout=10) as client:
        query = authorize(client, idp, challenge)
        reply = client.post(
            idp.url("/token"),
            data={
                "grant_type": "authorization_code",
                "code": query["code"][0],
                "redirect_uri": REDIRECT,
                "code_verifier": "not-the-verifier",
            },
        )
        assert reply.status_code == 400
        assert reply.json()["error"] == "invalid_grant"
        wrong_client = client.get(idp.url("/authorize"), params={"client_id": "other", "redirect_uri": REDIRECT})
        assert wrong_client.status_code == 400


def test_deny_messages_are_safe_for_a_json_template(idp: OidcIssuer, monkeypatch: pytest.MonkeyPatch) -> None:
    """An attacker-chosen kid must not break the gateway's JSON response template or bloat the message."""
    from chalicelib import aws

    hostile = idp.mint(kid='x"}\\' + "k" * 500)
    event = {"type": "TOKEN", "methodArn": "arn:x", "authorizationToken": f"Bearer {hostile}"}
    monkeypatch.setenv("LISA_AUTHORITY", idp.issuer)
    monkeypatch.setenv("LISA_CLIENT_ID", idp.client_id)
    aws.reset()
    try:
        message = lisa_authorizer(event, None)["context"]["message"]
    finally:
        monkeypatch.undo()
        aws.reset()
    assert "unknown key" in message
    assert '"' not in message
    assert "\\" not in message
    assert len(message) <= 300
