"""The token admin API end to end through the Chalice app and its authorizer (moto server + a real OIDC issuer).

Two front doors: chalice's own test client (stock LocalGateway: TOKEN-style, needs an Authorization header) and
the runner's gateway (REQUEST-style, as deployed: Api-Key alone works, denials are 401 with the reason).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from chalice.local import LocalGatewayException
from chalice.test import Client

from app import app
from chalicelib import aws
from chalicelib.auth.tokens import TokenStore
from runner.chalice_gateway import make_gateway
from testkit.oidc_issuer import OidcIssuer


@pytest.fixture(scope="module")
def idp() -> Iterator[OidcIssuer]:
    with OidcIssuer(client_id="lisa-ui") as issuer:
        yield issuer


@pytest.fixture
def oidc_env(aws_env: str, idp: OidcIssuer) -> Iterator[None]:
    """Settings pointing at the test issuer, with `admins` as the admin group."""
    values = {"LISA_AUTHORITY": idp.issuer, "LISA_CLIENT_ID": idp.client_id, "LISA_ADMIN_GROUP": "admins"}
    with pytest.MonkeyPatch.context() as env:
        for key, value in values.items():
            env.setenv(key, value)
        aws.reset()
        yield
    aws.reset()


@dataclass
class Reply:
    status: int
    body: Any


class Api:
    """Requests through the runner's REQUEST-style gateway."""

    def __init__(self) -> None:
        self.gateway = make_gateway(app)

    def __call__(self, method: str, path: str, headers: dict[str, str] | None = None, body: Any = None) -> Reply:
        raw = body if isinstance(body, bytes) else (b"" if body is None else json.dumps(body).encode())
        all_headers = {"content-type": "application/json", **(headers or {})}
        try:
            response = self.gateway.handle_request(method, path, all_headers, raw)
        except LocalGatewayException as error:
            return Reply(error.CODE, json.loads(error.body or b"null"))
        return Reply(response["statusCode"], json.loads(response["body"]) if response["body"] else None)


@pytest.fixture
def api(oidc_env: None) -> Api:
    return Api()


@pytest.fixture
def admin_key(oidc_env: None) -> dict[str, str]:
    token, _ = TokenStore().create("root", is_admin=True, description="bootstrap admin")
    return {"Api-Key": token}


@pytest.fixture
def user_key(oidc_env: None) -> dict[str, str]:
    token, _ = TokenStore().create("mallory", groups=["users"])
    return {"Api-Key": token}


def error_message(reply: Reply) -> str:
    body = reply.body
    return str(body.get("message") or body.get("Message"))


def test_token_lifecycle_end_to_end(api: Api, admin_key: dict[str, str]) -> None:
    created = api("POST", "/tokens", admin_key, {"username": "bob", "groups": ["team"], "description": "laptop"})
    assert created.status == 201
    token = created.body["token"]
    token_id = created.body["tokenId"]
    assert token.startswith("lisa_")
    assert created.body["username"] == "bob"
    assert created.body["groups"] == ["team"]
    assert created.body["createdBy"] == "root"
    assert created.body["tokenExpiration"] is None

    # The new token works, through either header; it is not an admin.
    for headers in ({"Api-Key": token}, {"Authorization": f"Bearer {token}"}):
        reply = api("GET", "/tokens", headers)
        assert reply.status == 403
        assert "'bob' is not an administrator" in error_message(reply)

    listed = api("GET", "/tokens", admin_key)
    assert listed.status == 200
    assert {t["tokenId"] for t in listed.body["tokens"]} >= {token_id}
    text = json.dumps(listed.body)
    assert token not in text
    assert "tokenHash" not in text
    assert '"token"' not in text
    assert [t["username"] for t in api("GET", "/tokens?username=bob", admin_key).body["tokens"]] == ["bob"]

    expires = int(time.time()) + 3600
    updated = api("PUT", f"/tokens/{token_id}", admin_key, {"tokenExpiration": expires, "description": "new"})
    assert updated.status == 200
    assert updated.body["tokenExpiration"] == expires
    assert updated.body["description"] == "new"
    assert "token" not in updated.body
    relative = api("PUT", f"/tokens/{token_id}", admin_key, {"expiresIn": 60})
    assert abs(relative.body["tokenExpiration"] - (time.time() + 60)) < 30
    cleared = api("PUT", f"/tokens/{token_id}", admin_key, {"tokenExpiration": None})
    assert cleared.body["tokenExpiration"] is None
    assert cleared.body["description"] == "new"

    revoked = api("DELETE", f"/tokens/{token_id}", admin_key)
    assert revoked.status == 200
    assert revoked.body["revoked"] is True
    # Revoked through this process: refused at once (other processes: within the cache TTL).
    refused = api("GET", "/tokens", {"Api-Key": token})
    assert refused.status == 401
    assert refused.body == {"message": "invalid API token"}
    assert api("DELETE", f"/tokens/{token_id}", admin_key).status == 404
    assert token_id not in json.dumps(api("GET", "/tokens", admin_key).body)


def test_token_created_with_expiry_expires(api: Api, admin_key: dict[str, str]) -> None:
    created = api("POST", "/tokens", admin_key, {"username": "tmp", "expiresIn": 3600})
    assert abs(created.body["tokenExpiration"] - (time.time() + 3600)) < 30
    store = TokenStore()
    store.update(created.body["tokenId"], expiration=int(time.time()) - 1)  # as if an hour went by
    reply = api("GET", "/tokens", {"Api-Key": created.body["token"]})
    assert reply.status == 401
    assert reply.body == {"message": "API token has expired"}


def test_non_admin_is_forbidden_on_every_admin_route(api: Api, user_key: dict[str, str]) -> None:
    calls = [
        ("POST", "/tokens", {"username": "x"}),
        ("GET", "/tokens", None),
        ("PUT", "/tokens/abc", {"description": "x"}),
        ("DELETE", "/tokens/abc", None),
    ]
    for method, path, body in calls:
        reply = api(method, path, user_key, body)
        assert reply.status == 403, (method, path)
        assert "not an administrator" in error_message(reply)


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing credentials"),
        ({"Authorization": "Token abc"}, "must be 'Bearer <token>'"),
        ({"Authorization": "Bearer lisa_wrong"}, "invalid API token"),
        ({"Api-Key": "garbage"}, "invalid API token"),
        ({"Authorization": "Bearer a.b.c"}, "well-formed JWT"),
    ],
)
def test_bad_credentials_are_401_with_a_reason(api: Api, headers: dict[str, str], message: str) -> None:
    for method, path in (("GET", "/tokens"), ("DELETE", "/tokens/x"), ("POST", "/tokens")):
        reply = api(method, path, headers, {"username": "x"})
        assert reply.status == 401
        assert message in reply.body["message"]


def test_jwt_admin_and_non_admin(api: Api, idp: OidcIssuer) -> None:
    admin_jwt = {"Authorization": f"Bearer {idp.mint(username='ada', groups=['admins'])}"}
    created = api("POST", "/tokens", admin_jwt, {"username": "svc", "isAdmin": True})
    assert created.status == 201
    assert created.body["createdBy"] == "ada"
    assert created.body["isAdmin"] is True
    user_jwt = {"Authorization": f"Bearer {idp.mint(username='joe', groups=['users'])}"}
    assert api("GET", "/tokens", user_jwt).status == 403
    expired = {"Authorization": f"Bearer {idp.mint({'exp': int(time.time()) - 600}, groups=['admins'])}"}
    reply = api("GET", "/tokens", expired)
    assert reply.status == 401
    assert reply.body == {"message": "JWT has expired"}
    forged = {"Authorization": f"Bearer {idp.mint(alg='HS256', groups=['admins'])}"}
    assert api("GET", "/tokens", forged).status == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        ({}, "username"),
        ({"username": ""}, "username"),
        ({"username": " padded "}, "username"),
        ({"username": "x", "groups": "admins"}, "groups"),
        ({"username": "x", "isAdmin": "yes"}, "isAdmin"),
        ({"username": "x", "tokenExpiration": 1000}, "tokenExpiration"),
        (
            {"username": "x", "tokenExpiration": 10**40},
            "before the year 10000",
        ),  # would overflow DynamoDB's number type
        ({"username": "x", "expiresIn": -5}, "expiresIn"),
        ({"username": "x", "expiresIn": 60, "tokenExpiration": 9999999999}, "not both"),
        ({"username": "x", "token": "lisa_chosen"}, "token"),
        ({"username": "x", "description": "d" * 2000}, "description"),
    ],
)
def test_create_validation_names_the_field(api: Api, admin_key: dict[str, str], body: Any, field: str) -> None:
    reply = api("POST", "/tokens", admin_key, body)
    assert reply.status == 400
    assert field in error_message(reply)


def test_update_validation_and_unknown_ids(api: Api, admin_key: dict[str, str]) -> None:
    token_id = api("POST", "/tokens", admin_key, {"username": "bob"}).body["tokenId"]
    for body, field in [
        ({}, "nothing to update"),
        ({"tokenExpiration": 5}, "tokenExpiration"),
        ({"description": None}, "description"),
        ({"expiresIn": 10, "tokenExpiration": 9999999999}, "not both"),
        ({"tokenId": "other"}, "tokenId"),
    ]:
        reply = api("PUT", f"/tokens/{token_id}", admin_key, body)
        assert reply.status == 400, body
        assert field in error_message(reply)
    missing = api("PUT", "/tokens/does-not-exist", admin_key, {"description": "x"})
    assert missing.status == 404
    assert "does-not-exist" in error_message(missing)


def test_stock_chalice_test_client_with_bearer(oidc_env: None, idp: OidcIssuer) -> None:
    token, _ = TokenStore().create("root", is_admin=True)
    with Client(app) as client:
        ok = client.http.get("/tokens", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200
        assert "tokens" in ok.json_body
        jwt_ok = client.http.get("/tokens", headers={"Authorization": f"Bearer {idp.mint(groups=['admins'])}"})
        assert jwt_ok.status_code == 200
        # The stock gateway refuses without an Authorization header, and turns denials into 403s.
        assert client.http.get("/tokens").status_code == 401
        assert client.http.get("/tokens", headers={"Authorization": "Bearer lisa_nope"}).status_code == 403
        user = client.http.get("/tokens", headers={"Authorization": f"Bearer {idp.mint(groups=['users'])}"})
        assert user.status_code == 403
        assert "not an administrator" in user.json_body["Message"]


def test_refusals_a_gateway_cannot_word_keep_their_status_and_never_reach_a_handler(
    api: Api, admin_key: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deny always becomes API Gateway's 401; a credential sent twice (400) or one that cannot be checked now
    (503) passes the gateway without a principal and is answered by the app's middleware with its own status."""
    from chalicelib.auth.authorizer import get_authorizer
    from runner.chalice_gateway import RequestHeaders

    token = admin_key["Api-Key"]
    twice = RequestHeaders([("content-type", "application/json"), ("Api-Key", token), ("api-key", token)])
    response = api.gateway.handle_request("POST", "/tokens", twice, json.dumps({"username": "eve"}).encode())
    assert (response["statusCode"], json.loads(response["body"])) == (
        400,
        {"message": "ambiguous credentials: send the Api-Key header once"},
    )
    assert [t["username"] for t in api("GET", "/tokens", admin_key).body["tokens"]] == ["root"]  # eve never made

    get_authorizer().clear_cache()
    monkeypatch.setenv("LISA_TOKENS_TABLE", "no-such-table")  # the token store is unreachable
    aws.reset()
    reply = api("POST", "/tokens", admin_key, {"username": "eve"})
    assert (reply.status, reply.body) == (503, {"message": "cannot check the API token right now; try again later"})
