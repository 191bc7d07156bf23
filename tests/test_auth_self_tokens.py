"""Users' own API tokens (/me/tokens) over real HTTP: the control plane and the router on one loopback port (as
`make run` serves them), moto for DynamoDB, a real OIDC issuer for signed-in users, `lisa tokens --url` for the CLI.

The policy is cut down for the tests (default 7 days, at most 30, 3 live tokens per user) through the same
environment variables config.yaml's `authConfig.apiTokens` sets in a deployment.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from typer.testing import CliRunner

from chalicelib import aws
from chalicelib.auth.authorizer import get_authorizer
from chalicelib.auth.tokens import TokenStore
from chalicelib.config import ConfigError, parse_config
from chalicelib.settings import Settings
from cli.main import app as cli_app
from testkit.oidc_issuer import OidcIssuer
from tests.support.control_plane import control_plane_url

DAY = 24 * 3600
POLICY = {"LISA_TOKEN_DEFAULT_LIFETIME_DAYS": "7", "LISA_TOKEN_MAX_LIFETIME_DAYS": "30", "LISA_TOKEN_MAX_PER_USER": "3"}


@pytest.fixture(scope="module")
def idp() -> Iterator[OidcIssuer]:
    with OidcIssuer(client_id="lisa-ui") as issuer:
        yield issuer


@pytest.fixture(scope="module")
def url(moto_server: str, idp: OidcIssuer) -> Iterator[str]:
    values = {"LISA_AUTHORITY": idp.issuer, "LISA_CLIENT_ID": idp.client_id, "LISA_ADMIN_GROUP": "admins", **POLICY}
    with pytest.MonkeyPatch.context() as env:
        for key, value in values.items():
            env.setenv(key, value)
        aws.reset()
        with control_plane_url(workers=8, data_plane=True) as base:
            yield base
    aws.reset()


@pytest.fixture
def api(aws_env: str, url: str) -> str:
    """The stack's URL, with an empty tokens table and no cached decisions."""
    get_authorizer().clear_cache()
    return url


def call(url: str, method: str, path: str, credential: str, body: Any = None) -> requests.Response:
    return requests.request(
        method, url + path, headers={"Authorization": f"Bearer {credential}"}, json=body, timeout=60
    )


def message(response: requests.Response) -> str:
    body = response.json()
    return str(body.get("Message") or body.get("message"))


def test_a_users_token_acts_as_the_user_on_both_planes_until_revoked(api: str, idp: OidcIssuer) -> None:
    jwt = idp.mint(username="alice", groups=["users", "team-a"])
    before = time.time()
    created = call(api, "POST", "/me/tokens", jwt, {"description": "laptop"})
    assert created.status_code == 201, created.text
    body = created.json()
    token = body["token"]
    assert token.startswith("lisa_")
    assert (body["username"], body["groups"], body["isAdmin"], body["createdBy"]) == (
        "alice",
        ["users", "team-a"],
        False,
        "alice",
    )
    assert before + 7 * DAY - 5 <= body["tokenExpiration"] <= time.time() + 7 * DAY  # the default lifetime

    models = call(api, "GET", "/v1/openai/models", token)
    assert models.status_code == 200, models.text
    assert models.json()["object"] == "list"
    listed = call(api, "GET", "/me/tokens", jwt).json()["tokens"]
    assert [t["tokenId"] for t in listed] == [body["tokenId"]]
    assert token not in json.dumps(listed)
    assert "tokenHash" not in json.dumps(listed)
    assert call(api, "GET", "/me/tokens", token).json()["tokens"] == listed  # the token sees the same user's tokens
    assert call(api, "GET", "/tokens", token).status_code == 403  # and is no admin

    revoked = call(api, "DELETE", f"/me/tokens/{body['tokenId']}", jwt)
    assert revoked.status_code == 200
    assert revoked.json()["revoked"] is True
    after = call(api, "GET", "/v1/openai/models", token)
    assert after.status_code == 401
    assert "invalid API token" in after.text
    assert call(api, "GET", "/me/tokens", jwt).json()["tokens"] == []


def test_a_token_never_outlives_the_maximum_nor_the_token_it_was_made_with(api: str, idp: OidcIssuer) -> None:
    jwt = idp.mint(username="alice", groups=["users"])
    now = int(time.time())
    for body, field in [
        ({"expiresIn": 30 * DAY + 1}, "expiresIn"),
        ({"tokenExpiration": now + 31 * DAY}, "tokenExpiration"),
    ]:
        refused = call(api, "POST", "/me/tokens", jwt, body)
        assert refused.status_code == 400, body
        assert message(refused).startswith(f"{field}: at most")
        assert "30 days" in message(refused)
    for lifetime in (60, DAY, 30 * DAY):
        created = call(api, "POST", "/me/tokens", jwt, {"expiresIn": lifetime})
        assert created.status_code == 201
        assert created.json()["tokenExpiration"] <= time.time() + lifetime
        call(api, "DELETE", f"/me/tokens/{created.json()['tokenId']}", jwt)
    assert call(api, "POST", "/me/tokens", jwt, {"tokenExpiration": None}).json()["tokenExpiration"] is not None

    # A token that expires in an hour cannot mint one that lives longer: by default it gets the hour, no more.
    short, record = TokenStore().create("bob", groups=["users"], expiration=now + 3600)
    default = call(api, "POST", "/me/tokens", short)
    assert default.status_code == 201
    assert default.json()["tokenExpiration"] == record.token_expiration
    longer = call(api, "POST", "/me/tokens", short, {"expiresIn": 7200})
    assert longer.status_code == 400
    assert "expiresIn" in message(longer)
    assert "expiry of the API token" in message(longer)


def test_a_token_carries_only_the_callers_groups(api: str, idp: OidcIssuer) -> None:
    jwt = idp.mint(username="alice", groups=["users"])
    for body, field in [
        ({"groups": ["admins"]}, "groups"),
        ({"isAdmin": True}, "isAdmin"),
        ({"username": "root"}, "username"),
    ]:
        refused = call(api, "POST", "/me/tokens", jwt, body)
        assert refused.status_code == 400, body
        assert field in message(refused)
    token = call(api, "POST", "/me/tokens", jwt).json()["token"]
    principal = get_authorizer().authorize_headers({"Api-Key": token})
    assert (principal.username, principal.groups, principal.is_admin) == ("alice", ("users",), False)
    # A token made with that token has the same groups again, never more.
    child = call(api, "POST", "/me/tokens", token).json()
    assert (child["groups"], child["isAdmin"]) == (["users"], False)
    admin = call(api, "POST", "/me/tokens", idp.mint(username="ada", groups=["admins"])).json()
    assert (admin["groups"], admin["isAdmin"]) == (["admins"], True)  # an admin's own token is an admin's


def test_the_n_plus_first_live_token_is_refused_even_when_racing(api: str, idp: OidcIssuer) -> None:
    jwt = idp.mint(username="alice", groups=["users"])
    ids = [call(api, "POST", "/me/tokens", jwt).json()["tokenId"] for _ in range(3)]
    refused = call(api, "POST", "/me/tokens", jwt)
    assert refused.status_code == 409
    assert "maxPerUser" in message(refused)
    assert "3 unexpired" in message(refused)
    store = TokenStore()
    store.update(ids[0], expiration=int(time.time()) - 1)  # an expired token no longer counts
    assert call(api, "POST", "/me/tokens", jwt).status_code == 201
    assert call(api, "POST", "/me/tokens", jwt).status_code == 409
    call(api, "DELETE", f"/me/tokens/{ids[1]}", jwt)  # neither does a revoked one
    assert call(api, "POST", "/me/tokens", jwt).status_code == 201

    racer = idp.mint(username="bob", groups=["users"])
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: call(api, "POST", "/me/tokens", racer).status_code, range(8)))
    assert set(statuses) <= {201, 409}
    assert statuses.count(201) <= 3
    assert store.count_live("bob") == statuses.count(201)


def test_users_see_and_revoke_only_their_own_admins_everything(api: str, idp: OidcIssuer) -> None:
    alice, bob = idp.mint(username="alice", groups=["users"]), idp.mint(username="bob", groups=["users"])
    admin = idp.mint(username="ada", groups=["admins"])
    bobs = call(api, "POST", "/me/tokens", bob).json()
    alices = call(api, "POST", "/me/tokens", alice).json()

    stolen = call(api, "DELETE", f"/me/tokens/{bobs['tokenId']}", alice)
    unknown = call(api, "DELETE", "/me/tokens/0123456789abcdef", alice)
    assert (stolen.status_code, unknown.status_code) == (404, 404)
    assert message(stolen) == f"no API token with tokenId {bobs['tokenId']!r}"  # says no more than for an unknown id
    assert [t["tokenId"] for t in call(api, "GET", "/me/tokens", alice).json()["tokens"]] == [alices["tokenId"]]
    assert call(api, "GET", "/tokens?username=bob", alice).status_code == 403
    assert call(api, "DELETE", f"/tokens/{bobs['tokenId']}", alice).status_code == 403
    assert call(api, "GET", "/v1/openai/models", bobs["token"]).status_code == 200  # bob's token still works

    everyone = {t["tokenId"] for t in call(api, "GET", "/tokens", admin).json()["tokens"]}
    assert everyone == {bobs["tokenId"], alices["tokenId"]}
    assert call(api, "GET", "/me/tokens", admin).json()["tokens"] == []  # an admin's own list is its own
    assert call(api, "DELETE", f"/me/tokens/{bobs['tokenId']}", admin).status_code == 404
    assert call(api, "DELETE", f"/tokens/{bobs['tokenId']}", admin).status_code == 200
    assert call(api, "GET", "/v1/openai/models", bobs["token"]).status_code == 401


runner = CliRunner()


def lisa(url: str, key: str, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(cli_app, ["tokens", "--url", url, "--api-key", key, *args])
    return result.exit_code, result.stdout, result.stderr


def test_cli_over_http_for_a_user_and_an_admin(api: str) -> None:
    store = TokenStore()
    user_key, _ = store.create("alice", groups=["users"], expiration=int(time.time()) + 10 * DAY)
    admin_key, _ = store.create("root", is_admin=True)

    code, out, err = lisa(api, user_key, "create", "-d", "ci", "--json")
    assert code == 0, err
    mine = json.loads(out)
    assert (mine["username"], mine["groups"], mine["description"]) == ("alice", ["users"], "ci")
    assert "cannot be shown again" in err
    assert call(api, "GET", "/v1/openai/models", mine["token"]).status_code == 200
    code, out, err = lisa(api, user_key, "create", "--expires-in", str(40 * DAY))
    assert code == 2
    assert "expiresIn: at most" in err
    code, _, err = lisa(api, user_key, "create", "-g", "admins")
    assert code == 2
    assert "--username" in err

    code, out, _ = lisa(api, admin_key, "create", "-u", "carol", "-g", "ops", "--json")  # the admin route
    assert code == 0
    carols = json.loads(out)
    assert (carols["groups"], carols["tokenExpiration"]) == (["ops"], None)

    code, out, _ = lisa(api, user_key, "list", "--json")  # a non-admin's list is its own
    assert code == 0
    assert {t["username"] for t in json.loads(out)} == {"alice"}
    code, out, _ = lisa(api, admin_key, "list", "--json")
    assert {t["username"] for t in json.loads(out)} == {"alice", "root", "carol"}
    code, out, _ = lisa(api, admin_key, "list", "--mine", "--json")
    assert {t["username"] for t in json.loads(out)} == {"root"}

    code, _, err = lisa(api, user_key, "revoke", carols["tokenId"])
    assert code == 1
    assert f"no API token with tokenId {carols['tokenId']!r}" in err
    code, out, _ = lisa(api, user_key, "revoke", mine["tokenId"])
    assert code == 0
    assert "Revoked" in out
    code, out, _ = lisa(api, admin_key, "revoke", carols["tokenId"])  # an admin revokes anyone's
    assert code == 0
    assert "'carol'" in out
    assert {r.username for r in store.list()} == {"alice", "root"}


def test_cli_over_http_reports_refusals_and_missing_keys(api: str) -> None:
    code, _, err = lisa(api, "lisa_wrong", "list")
    assert code == 1
    assert "invalid API token" in err
    result = runner.invoke(cli_app, ["tokens", "--url", api, "list"], env={"LISA_API_KEY": ""})
    assert result.exit_code == 2
    assert "--api-key" in result.stderr


def test_the_config_bounds_reach_the_settings() -> None:
    base = {"deploymentName": "d", "s3BucketModels": "bucket-x"}
    tokens = {"defaultLifetimeDays": 14, "maxLifetimeDays": 30, "maxPerUser": 4}
    environment = parse_config({**base, "authConfig": {"apiTokens": tokens}}).auth_config.api_tokens.environment()
    with pytest.MonkeyPatch.context() as env:
        for key, value in environment.items():
            env.setenv(key, value)
        settings = Settings()
    assert (settings.token_default_lifetime_days, settings.token_max_lifetime_days, settings.token_max_per_user) == (
        14,
        30,
        4,
    )
    assert parse_config(base).auth_config.api_tokens.environment()["LISA_TOKEN_DEFAULT_LIFETIME_DAYS"] == "90"
    with pytest.raises(ConfigError, match="defaultLifetimeDays must not exceed maxLifetimeDays"):
        parse_config({**base, "authConfig": {"apiTokens": {"defaultLifetimeDays": 100, "maxLifetimeDays": 30}}})
    with pytest.raises(ConfigError, match=r"authConfig\.apiTokens\.maxPerUser"):
        parse_config({**base, "authConfig": {"apiTokens": {"maxPerUser": 0}}})
