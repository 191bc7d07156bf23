"""API tokens: the DynamoDB store (moto server) and the Authorizer's decisions and cache over it."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pytest

from chalicelib import aws
from chalicelib.auth.authorizer import Authorizer, get_authorizer
from chalicelib.auth.errors import AuthError
from chalicelib.auth.principal import Principal
from chalicelib.auth.routes import lisa_authorizer
from chalicelib.auth.tokens import UNCHANGED, TokenNotFoundError, TokenStore
from chalicelib.settings import get_settings


@pytest.fixture
def store(aws_env: str) -> TokenStore:
    return TokenStore()


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def refused(authorizer: Authorizer, headers: dict[str, str]) -> AuthError:
    with pytest.raises(AuthError) as caught:
        authorizer.authorize_headers(headers)
    return caught.value


def test_store_keeps_only_the_hash(store: TokenStore) -> None:
    token, record = store.create("alice", groups=["a", "b"], is_admin=True, description="ci", created_by="root")
    assert token.startswith("lisa_")
    assert len(token) >= 40
    items = aws.table(get_settings().tokens_table).scan()["Items"]
    assert len(items) == 1
    assert items[0]["tokenHash"] == hashlib.sha256(token.encode()).hexdigest()
    assert token not in repr(items)
    assert store.get_by_token(token) == record
    assert record.groups == ("a", "b")
    assert record.is_admin
    assert record.created_by == "root"
    assert store.get_by_token(token + "x") is None
    assert store.get_by_token("") is None


def test_tokens_are_unique(store: TokenStore) -> None:
    created = [store.create("alice") for _ in range(5)]
    assert len({token for token, _ in created}) == 5
    assert len({record.token_id for _, record in created}) == 5


def test_list_update_revoke(store: TokenStore) -> None:
    _, first = store.create("alice", description="one")
    token, second = store.create("bob", expiration=int(time.time()) + 100)
    oldest_first = sorted([first, second], key=lambda r: (r.created_at, r.token_id))  # same second: by id
    assert [r.token_id for r in store.list()] == [r.token_id for r in oldest_first]
    assert [r.username for r in store.list(username="bob")] == ["bob"]
    assert all(r.token_hash is None for r in store.list())  # never even read

    updated = store.update(second.token_id, description="renamed")
    assert updated.description == "renamed"
    assert updated.token_expiration == second.token_expiration
    assert updated.updated_at is not None
    updated = store.update(second.token_id, expiration=None, description=UNCHANGED)
    assert updated.token_expiration is None
    assert updated.description == "renamed"
    assert store.get(second.token_id).token_expiration is None

    revoked = store.revoke(second.token_id)
    assert revoked.token_id == second.token_id
    assert store.get_by_token(token) is None
    with pytest.raises(TokenNotFoundError):
        store.revoke(second.token_id)
    with pytest.raises(TokenNotFoundError):
        store.update(second.token_id, description="x")
    with pytest.raises(TokenNotFoundError):
        store.get("")
    assert [r.token_id for r in store.list()] == [first.token_id]


def test_list_pages_through_many_tokens(store: TokenStore) -> None:
    for i in range(30):
        store.create(f"user{i}", description="d" * 1000)
    assert len(store.list()) == 30


@pytest.mark.parametrize("header", ["Api-Key", "api-key", "API-KEY"])
def test_api_token_via_api_key(store: TokenStore, header: str) -> None:
    token, record = store.create("alice", groups=["g"])
    principal = Authorizer(store, None).authorize_headers({header: token})
    assert principal == Principal(
        username="alice", groups=("g",), is_admin=False, via="token", token_id=record.token_id
    )


def test_api_token_via_bearer(store: TokenStore) -> None:
    token, _ = store.create("root", is_admin=True)
    principal = Authorizer(store, None).authorize_headers({"Authorization": f"Bearer {token}"})
    assert principal.username == "root"
    assert principal.is_admin
    assert principal.via == "token"


def test_api_key_wins_over_authorization(store: TokenStore) -> None:
    token, _ = store.create("alice")
    principal = Authorizer(store, None).authorize_headers({"Api-Key": token, "Authorization": "Basic xyz"})
    assert principal.username == "alice"


def test_unknown_and_expired_tokens_are_refused(store: TokenStore) -> None:
    token, _ = store.create("alice", expiration=int(time.time()) - 1)
    authorizer = Authorizer(store, None)
    error = refused(authorizer, {"Api-Key": token})
    assert error.status == 401
    assert error.message == "API token has expired"
    error = refused(authorizer, {"Api-Key": "lisa_not-a-real-token"})
    assert error.status == 401
    assert error.message == "invalid API token"


def test_revocation_takes_effect_after_the_cache_ttl(store: TokenStore) -> None:
    clock = Clock()
    authorizer = Authorizer(store, None, cache_ttl_seconds=30, clock=clock)
    token, record = store.create("alice")
    assert authorizer.authorize_headers({"Api-Key": token}).username == "alice"
    store.revoke(record.token_id)
    clock.now += 29
    assert authorizer.authorize_headers({"Api-Key": token}).username == "alice"  # cached (the documented bound)
    clock.now += 2
    assert refused(authorizer, {"Api-Key": token}).message == "invalid API token"


def test_ttl_zero_means_every_call_checks_the_store(store: TokenStore) -> None:
    authorizer = Authorizer(store, None, cache_ttl_seconds=0)
    token, record = store.create("alice")
    assert authorizer.authorize_headers({"Api-Key": token}).username == "alice"
    store.revoke(record.token_id)
    assert refused(authorizer, {"Api-Key": token}).status == 401


def test_forget_and_clear_cache_apply_a_revocation_at_once(store: TokenStore) -> None:
    authorizer = Authorizer(store, None, cache_ttl_seconds=60)
    token, record = store.create("alice")
    other, other_record = store.create("bob")
    authorizer.authorize_headers({"Api-Key": token})
    authorizer.authorize_headers({"Api-Key": other})
    revoked = store.revoke(record.token_id)
    authorizer.forget(revoked.token_hash)
    assert refused(authorizer, {"Api-Key": token}).status == 401
    store.revoke(other_record.token_id)
    assert authorizer.authorize_headers({"Api-Key": other}).username == "bob"
    authorizer.clear_cache()
    assert refused(authorizer, {"Api-Key": other}).status == 401


def test_cached_decision_never_outlives_the_token_expiration(store: TokenStore) -> None:
    clock = Clock()
    authorizer = Authorizer(store, None, cache_ttl_seconds=30, clock=clock)
    token, _ = store.create("alice", expiration=int(clock.now) + 10)
    assert authorizer.authorize_headers({"Api-Key": token}).username == "alice"
    clock.now += 11
    assert refused(authorizer, {"Api-Key": token}).message == "API token has expired"


def test_cache_hit_does_no_io_and_store_outage_is_a_503(store: TokenStore) -> None:
    clock = Clock()
    authorizer = Authorizer(store, None, cache_ttl_seconds=30, clock=clock)
    token, record = store.create("alice")
    assert authorizer.authorize_cached({"Api-Key": token}) is None
    authorizer.authorize_headers({"Api-Key": token})
    aws.client("dynamodb").delete_table(TableName=store.table_name)  # the store is gone
    assert authorizer.authorize_headers({"Api-Key": token}).username == "alice"
    cached = authorizer.authorize_cached({"Api-Key": token})
    assert cached == Principal("alice", (), False, "token", token_id=record.token_id)
    clock.now += 31
    error = refused(authorizer, {"Api-Key": token})
    assert error.status == 503
    assert "try again later" in error.message
    assert authorizer.authorize_cached({"Api-Key": token}) is None  # a 503 is not cached


def test_refusals_are_cached_briefly(store: TokenStore) -> None:
    clock = Clock()
    authorizer = Authorizer(store, None, cache_ttl_seconds=30, clock=clock)
    refused(authorizer, {"Api-Key": "lisa_unknown"})
    with pytest.raises(AuthError, match="invalid API token"):
        authorizer.authorize_cached({"Api-Key": "lisa_unknown"})
    clock.now += 6
    assert authorizer.authorize_cached({"Api-Key": "lisa_unknown"}) is None


def test_cache_is_bounded(store: TokenStore) -> None:
    authorizer = Authorizer(store, None, max_cache_entries=8)
    token, _ = store.create("alice")
    for i in range(30):
        refused(authorizer, {"Api-Key": f"lisa_bad{i}"})
    assert authorizer.authorize_headers({"Api-Key": token}).username == "alice"
    assert len(authorizer._cache) <= 8


def test_get_authorizer_follows_the_settings(aws_env: str) -> None:
    first = get_authorizer()
    assert get_authorizer() is first
    aws.reset()
    assert get_authorizer() is not first


# ---- the Chalice authorizer function, called as Lambda would with each event shape ----------------------------
ARN = "arn:aws:execute-api:us-east-1:123456789012:abcdef/dev/GET/tokens"


def _allowed(result: dict[str, Any]) -> bool:
    statement = result["policyDocument"]["Statement"][0]
    return bool(statement["Effect"] == "Allow")


def test_lambda_authorizer_with_token_and_request_events(store: TokenStore) -> None:
    token, record = store.create("alice", groups=["g"], is_admin=True)
    token_event = {"type": "TOKEN", "authorizationToken": f"Bearer {token}", "methodArn": ARN}
    request_event = {"type": "REQUEST", "methodArn": ARN, "headers": {"Host": "x", "Api-Key": token}}
    for event in (token_event, request_event):
        result = lisa_authorizer(event, None)
        assert _allowed(result)
        assert result["principalId"] == "alice"
        expected = Principal("alice", ("g",), True, "token", token_id=record.token_id)
        assert Principal.from_context(result["context"]) == expected


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"type": "REQUEST", "methodArn": ARN, "headers": {}}, "missing credentials"),
        ({"type": "REQUEST", "methodArn": ARN, "headers": None}, "missing credentials"),
        ({"type": "TOKEN", "methodArn": ARN, "authorizationToken": "Bearer lisa_nope"}, "invalid API token"),
        ({"type": "TOKEN", "methodArn": ARN, "authorizationToken": "garbage"}, "must be 'Bearer <token>'"),
        ({"type": "REQUEST", "methodArn": ARN, "headers": {"api-key": "lisa_nope"}}, "invalid API token"),
    ],
)
def test_lambda_authorizer_denies_with_a_message(store: TokenStore, event: dict[str, Any], message: str) -> None:
    result = lisa_authorizer(event, None)
    assert result["policyDocument"]["Statement"][0]["Effect"] == "Deny"
    assert message in result["context"]["message"]


def test_principal_context_round_trip() -> None:
    principal = Principal("a b", ("x", "y z"), True, "jwt")
    context = {**principal.to_context(), "principalId": "a b"}
    assert all(isinstance(v, str) for v in principal.to_context().values())
    assert Principal.from_context(context) == principal
    via_token = Principal("c", (), False, "token", token_expiration=9, token_id="tid-1")
    assert Principal.from_context(via_token.to_context()) == via_token
    assert Principal.from_context({"username": "u", "isAdmin": True, "groups": ["g"]}).is_admin
