"""The fake OIDC issuer the browser login runs against insists on PKCE S256, so a UI that stopped sending it (or
sent the plain method, or a wrong verifier) fails its login test instead of passing unnoticed."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from testkit.oidc_issuer import OidcIssuer

REDIRECT = "http://127.0.0.1:9/callback"


@pytest.fixture(scope="module")
def idp() -> Iterator[OidcIssuer]:
    with OidcIssuer(client_id="lisa-webui") as issuer:
        yield issuer


def _authorize(idp: OidcIssuer, **pkce: str) -> httpx.Response:
    params = {"response_type": "code", "client_id": idp.client_id, "redirect_uri": REDIRECT, "state": "s", **pkce}
    return httpx.get(idp.url("/authorize"), params=params, timeout=10)


def _token(idp: OidcIssuer, code: str, **extra: str) -> httpx.Response:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "client_id": idp.client_id}
    return httpx.post(idp.url("/token"), data={**form, **extra}, timeout=10)


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "pkce",
    [
        {},
        {"code_challenge": _pkce()[1]},  # no method: plain by default, refused
        {"code_challenge": "x" * 43, "code_challenge_method": "plain"},
        {"code_challenge_method": "S256"},
    ],
)
def test_an_authorization_request_without_pkce_s256_is_refused(idp: OidcIssuer, pkce: dict[str, str]) -> None:
    reply = _authorize(idp, **pkce)
    assert reply.status_code == 400
    assert reply.json()["error"] == "invalid_request"


def test_the_code_needs_the_matching_verifier(idp: OidcIssuer) -> None:
    verifier, challenge = _pkce()
    for wrong in ({}, {"code_verifier": ""}, {"code_verifier": secrets.token_urlsafe(48)}):
        location = _authorize(idp, code_challenge=challenge, code_challenge_method="S256").headers["location"]
        code = parse_qs(urlsplit(location).query)["code"][0]
        refused = _token(idp, code, **wrong)
        assert (refused.status_code, refused.json()["error"]) == (400, "invalid_grant")
    location = _authorize(idp, code_challenge=challenge, code_challenge_method="S256").headers["location"]
    code = parse_qs(urlsplit(location).query)["code"][0]
    tokens = _token(idp, code, code_verifier=verifier)
    assert tokens.status_code == 200, tokens.text
    assert tokens.json()["id_token"]
