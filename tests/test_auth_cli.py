"""`lisa tokens ...` through Typer's CliRunner against the moto server."""

from __future__ import annotations

import json
import time

import pytest
from typer.testing import CliRunner

from chalicelib.auth.authorizer import Authorizer
from chalicelib.auth.errors import AuthError
from chalicelib.auth.tokens import TokenStore
from cli.main import app

runner = CliRunner()


@pytest.fixture
def store(aws_env: str) -> TokenStore:
    return TokenStore()


def lisa(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["tokens", *args])
    return result.exit_code, result.stdout, result.stderr


def test_create_prints_the_token_once_and_it_works(store: TokenStore) -> None:
    code, out, err = lisa("create", "--username", "alice", "-g", "team", "-g", "ops", "--admin", "-d", "laptop")
    assert code == 0, err
    token = out.strip()
    assert token.startswith("lisa_")
    assert "cannot be shown again" in err
    principal = Authorizer(store, None).authorize_headers({"Api-Key": token})
    assert (principal.username, principal.groups, principal.is_admin) == ("alice", ("team", "ops"), True)
    (record,) = store.list()
    assert record.description == "laptop"
    assert record.created_by.startswith("cli")
    assert record.token_expiration is None


def test_create_with_expiry(store: TokenStore) -> None:
    code, out, _ = lisa("create", "-u", "bob", "--expires-in", "3600", "--json")
    assert code == 0
    created = json.loads(out)
    assert abs(created["tokenExpiration"] - (time.time() + 3600)) < 30
    at = int(time.time()) + 7200
    code, out, _ = lisa("create", "-u", "bob", "--expires-at", str(at), "--json")
    assert json.loads(out)["tokenExpiration"] == at


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create"], "--username"),
        (["create", "-u", "x", "--expires-in", "0"], "expiresIn"),
        (["create", "-u", "x", "--expires-at", "1000"], "in the future"),
        (["create", "-u", "x", "--expires-in", "5", "--expires-at", "9999999999"], "not both"),
        (["create", "-u", " "], "username"),
        (["update", "abc"], "nothing to update"),
        (["update", "abc", "--no-expiry", "--expires-in", "5"], "not both"),
    ],
)
def test_bad_options_exit_2_with_a_message(store: TokenStore, args: list[str], message: str) -> None:
    code, _, err = lisa(*args)
    assert code == 2
    assert message in err
    assert store.list() == []


def test_list_update_revoke(store: TokenStore) -> None:
    token, record = store.create("alice", groups=["g"], description="first")
    store.create("bob", expiration=int(time.time()) - 10, description="[/x] [bold]not markup")

    code, out, _ = lisa("list")
    assert code == 0
    assert record.token_id in out
    assert "alice" in out
    assert "expired" in out
    assert "[/x] [bold]not markup" in out  # user text is printed as text, never parsed as rich markup
    assert token not in out
    code, out, _ = lisa("list", "--username", "alice", "--json")
    listed = json.loads(out)
    assert [t["tokenId"] for t in listed] == [record.token_id]
    assert "token" not in listed[0]
    assert "tokenHash" not in listed[0]

    code, out, _ = lisa("update", record.token_id, "--expires-in", "60", "-d", "renamed")
    assert code == 0
    assert store.get(record.token_id).description == "renamed"
    assert store.get(record.token_id).token_expiration is not None
    code, out, _ = lisa("update", record.token_id, "--no-expiry", "--json")
    assert json.loads(out)["tokenExpiration"] is None

    code, out, _ = lisa("revoke", record.token_id)
    assert code == 0
    assert "Revoked" in out
    with pytest.raises(AuthError, match="invalid API token"):
        Authorizer(store, None).authorize_headers({"Api-Key": token})


def test_unknown_token_id_exits_1(store: TokenStore) -> None:
    for args in (["revoke", "nope"], ["update", "nope", "-d", "x"]):
        code, _, err = lisa(*args)
        assert code == 1
        assert "no API token with tokenId 'nope'" in err


def test_unreachable_table_is_a_message_not_a_traceback(store: TokenStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib import aws

    monkeypatch.setenv("LISA_TOKENS_TABLE", "no-such-table")
    aws.reset()
    try:
        code, _, err = lisa("list")
    finally:
        monkeypatch.undo()
        aws.reset()
    assert code == 1
    assert "no-such-table" in err
    assert "Traceback" not in err
