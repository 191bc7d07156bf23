"""Who owns a session: a stable id per identity, never a bare username shared by token and OIDC users."""

from __future__ import annotations

from chalicelib.auth.principal import Principal


def test_owner_ids_separate_token_users_from_oidc_users_and_survive_the_context() -> None:
    token = Principal(username="alice", groups=(), is_admin=False, via="token")
    oidc = Principal(username="alice", groups=(), is_admin=False, via="jwt", subject="https://idp.example|abc-123")
    renamed = Principal(username="alice2", groups=(), is_admin=False, via="jwt", subject="https://idp.example|abc-123")
    assert token.owner_id == "token:alice"
    assert oidc.owner_id == "jwt:https://idp.example|abc-123"
    assert renamed.owner_id == oidc.owner_id  # a changed preferred_username keeps the user's sessions
    assert Principal.from_context(oidc.to_context()) == oidc
    assert Principal.from_context(token.to_context()).owner_id == "token:alice"
    assert "subject" not in token.to_context()


def test_an_oidc_principal_without_a_subject_still_never_collides_with_a_token_user() -> None:
    oidc = Principal(username="alice", groups=(), is_admin=False, via="jwt")
    assert oidc.owner_id == "jwt:alice" != Principal("alice", (), False, "token").owner_id
