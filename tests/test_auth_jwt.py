"""OIDC JWTs through the Authorizer, against a real issuer on loopback (discovery + JWKS over HTTP)."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator

import pytest

from chalicelib.auth.authorizer import MISSING_CREDENTIALS, Authorizer
from chalicelib.auth.errors import AuthError
from chalicelib.auth.jwt_verifier import JwtVerifier, groups_from_claims
from chalicelib.auth.principal import Principal
from testkit.oidc_issuer import OidcIssuer, SigningKey
from workers.launch import free_port


@pytest.fixture(scope="module")
def idp() -> Iterator[OidcIssuer]:
    with OidcIssuer(client_id="lisa-ui") as issuer:
        yield issuer


def make_authorizer(idp: OidcIssuer, **kwargs: float) -> Authorizer:
    verifier = JwtVerifier(idp.issuer, idp.client_id, admin_group="admins", **kwargs)
    return Authorizer(tokens=None, jwt_verifier=verifier)


@pytest.fixture
def authorizer(idp: OidcIssuer) -> Authorizer:
    return make_authorizer(idp)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def refused(authorizer: Authorizer, headers: dict[str, str]) -> AuthError:
    with pytest.raises(AuthError) as caught:
        authorizer.authorize_headers(headers)
    return caught.value


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_valid_jwt_gives_its_principal(idp: OidcIssuer, authorizer: Authorizer, alg: str) -> None:
    principal = authorizer.authorize_headers(bearer(idp.mint(username="bob", groups=["team-a"], alg=alg)))
    expected = Principal(username="bob", groups=("team-a",), is_admin=False, via="jwt", subject=f"{idp.issuer}|sub-bob")
    assert principal == expected
    assert principal.owner_id == f"jwt:{idp.issuer}|sub-bob"


def test_admin_group_makes_an_admin(idp: OidcIssuer, authorizer: Authorizer) -> None:
    principal = authorizer.authorize_headers(bearer(idp.mint(groups=["users", "admins"])))
    assert principal.is_admin
    assert principal.groups == ("users", "admins")


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"nbf": int(time.time()) + 3600}, "not valid yet"),
        ({"iat": int(time.time()) + 3600}, "not valid yet"),
        ({"aud": "another-client"}, "audience"),
        ({"iss": "https://evil.example.com"}, "issuer"),
        ({"exp": None}, "'exp'"),
        ({"aud": None}, "'aud'"),
        ({"preferred_username": None, "sub": None}, "name the user"),
    ],
)
def test_bad_claims_are_refused(idp: OidcIssuer, authorizer: Authorizer, claims: dict, reason: str) -> None:
    error = refused(authorizer, bearer(idp.mint(claims)))
    assert error.status == 401
    assert reason in error.message


def test_signature_by_a_foreign_key_is_refused(idp: OidcIssuer, authorizer: Authorizer) -> None:
    forger = SigningKey.generate("RS256")
    token = idp.mint(sign_with=forger, kid=idp.current_kid("RS256"))
    assert "signature is invalid" in refused(authorizer, bearer(token)).message


def test_tampered_payload_is_refused(idp: OidcIssuer, authorizer: Authorizer) -> None:
    header, _, signature = idp.mint(groups=["users"]).split(".")
    payload = base64.urlsafe_b64encode(json.dumps(idp.claims(groups=["admins"])).encode()).rstrip(b"=").decode()
    assert "signature is invalid" in refused(authorizer, bearer(f"{header}.{payload}.{signature}")).message


def test_alg_none_is_refused(idp: OidcIssuer, authorizer: Authorizer) -> None:
    error = refused(authorizer, bearer(idp.mint(alg="none")))
    assert error.status == 401
    assert "'none' is not accepted" in error.message


@pytest.mark.parametrize("alg", ["HS256", "HS512"])
def test_hmac_signed_with_the_public_key_is_refused(idp: OidcIssuer, authorizer: Authorizer, alg: str) -> None:
    token = idp.mint(alg=alg, hmac_secret=idp.public_pem("RS256"), groups=["admins"])
    assert f"'{alg}' is not accepted" in refused(authorizer, bearer(token)).message


def test_alg_that_does_not_match_the_key_type_is_refused(idp: OidcIssuer, authorizer: Authorizer) -> None:
    token = idp.mint(alg="ES256", kid=idp.current_kid("RS256"))  # EC signature, RSA key's kid
    assert "does not match its signing key" in refused(authorizer, bearer(token)).message


def test_rotated_key_is_picked_up_and_unknown_kids_are_rate_limited(idp: OidcIssuer) -> None:
    authorizer = make_authorizer(idp, min_refresh_interval_seconds=3600)
    authorizer.authorize_headers(bearer(idp.mint()))  # JWKS fetched and cached
    fetched = idp.hits["/jwks"]
    authorizer.authorize_headers(bearer(idp.mint(username="carol")))
    assert idp.hits["/jwks"] == fetched  # known kid: served from the cached JWKS

    old_token = idp.mint(username="dave")
    new_kid = idp.rotate("RS256")
    principal = authorizer.authorize_headers(bearer(idp.mint(username="erin")))
    assert principal.username == "erin"
    assert idp.current_kid("RS256") == new_kid
    assert idp.hits["/jwks"] == fetched + 1  # the unknown kid triggered one refresh

    # A kid nobody knows: refused, and (rate limited) no further fetches however often it is tried.
    for _ in range(5):
        assert "unknown key" in refused(authorizer, bearer(idp.mint(kid="no-such-kid"))).message
    # The key that left the JWKS no longer verifies anything.
    assert "unknown key" in refused(authorizer, bearer(old_token)).message
    assert idp.hits["/jwks"] == fetched + 1


def test_token_without_kid_uses_the_only_key_of_its_type(idp: OidcIssuer, authorizer: Authorizer) -> None:
    assert authorizer.authorize_headers(bearer(idp.mint(alg="ES256", kid=None))).username == "alice"


def test_unreachable_issuer_is_a_503_not_a_crash() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    authorizer = Authorizer(None, JwtVerifier(dead, "lisa-ui", http_timeout_seconds=2))
    with OidcIssuer(client_id="lisa-ui") as other:
        error = refused(authorizer, bearer(other.mint()))
    assert error.status == 503
    assert "identity provider" in error.message


def test_jwts_refused_when_no_issuer_is_configured(idp: OidcIssuer) -> None:
    error = refused(Authorizer(None, None), bearer(idp.mint()))
    assert error.status == 401
    assert "no OIDC issuer is configured" in error.message


def _segment_raw(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(header: object) -> str:
    return _segment_raw(json.dumps(header).encode())


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, MISSING_CREDENTIALS),
        ({"Authorization": ""}, MISSING_CREDENTIALS),
        ({"Authorization": "Basic YWxhZGRpbjpvcGVuc2VzYW1l"}, "must be 'Bearer <token>'"),
        ({"Authorization": "Bearer"}, "must be 'Bearer <token>'"),
        ({"Authorization": "Bearer not.a.jwt"}, "well-formed JWT"),
        ({"Authorization": "Bearer W10.e30.c2ln"}, "well-formed JWT"),  # header is [], not an object
        ({"Authorization": "Bearer eyJhbGciOiJSUzI1NiJ9.%%%.x"}, "JWT"),
        ({"Authorization": "Bearer " + "x" * 20_000}, "too long"),
        ({"Authorization": f"Bearer {_segment({'alg': []})}.e30.c2ln"}, "algorithm [] is not accepted"),
        ({"Authorization": f"Bearer {_segment_raw(b'[' * 6000)}.e30.c2ln"}, "well-formed JWT"),  # RecursionError
        ({"Authorization": "Bearer " + _segment({"alg": "RS256", "kid": "k\udc00"}) + ".e30.c2ln"}, "well-formed JWT"),
        ({"Authorization": "Bearer lisa_\u00fc"}, "printable ASCII"),
    ],
)
def test_missing_or_garbage_headers(authorizer: Authorizer, headers: dict[str, str], reason: str) -> None:
    error = refused(authorizer, headers)
    assert error.status == 401
    assert reason in error.message


def test_a_jwt_in_api_key_is_refused(idp: OidcIssuer, authorizer: Authorizer) -> None:
    assert "Api-Key header takes a LISA API token" in refused(authorizer, {"Api-Key": idp.mint()}).message


def test_header_names_are_case_insensitive(idp: OidcIssuer, authorizer: Authorizer) -> None:
    token = idp.mint()
    for name in ("authorization", "AUTHORIZATION", "AuThOrIzAtIoN"):
        assert authorizer.authorize_headers({name: f"bearer {token}"}).username == "alice"


def test_decisions_are_cached_but_never_past_the_jwt_exp(idp: OidcIssuer) -> None:
    now = [time.time()]
    verifier = JwtVerifier(idp.issuer, idp.client_id)
    authorizer = Authorizer(None, verifier, cache_ttl_seconds=30, clock=lambda: now[0])
    short = idp.mint(expires_in=10)
    long = idp.mint(expires_in=3600)
    assert authorizer.authorize_cached(bearer(short)) is None  # not decided yet
    authorizer.authorize_headers(bearer(short))
    authorizer.authorize_headers(bearer(long))
    assert authorizer.authorize_cached(bearer(short)) is not None

    authorizer.jwt_verifier = None  # from now on only cached decisions can succeed
    now[0] += 15  # past the short token's exp, within the cache TTL
    assert authorizer.authorize_headers(bearer(long)).username == "alice"
    assert authorizer.authorize_cached(bearer(short)) is None
    assert "no OIDC issuer" in refused(authorizer, bearer(short)).message
    now[0] += 20  # past the TTL
    assert "no OIDC issuer" in refused(authorizer, bearer(long)).message


def test_many_threads_share_one_authorizer(idp: OidcIssuer, authorizer: Authorizer) -> None:
    tokens = [idp.mint(username=f"user{i}", alg="ES256" if i % 2 else "RS256") for i in range(8)]
    results: dict[int, list[str]] = {}

    def work(i: int) -> None:
        results[i] = [authorizer.authorize_headers(bearer(tokens[(i + n) % 8])).username for n in range(40)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i in range(8):
        assert results[i] == [f"user{(i + n) % 8}" for n in range(40)]


@pytest.mark.parametrize(
    ("claims", "groups"),
    [
        ({"cognito:groups": ["a", "b", "a"]}, ("a", "b")),
        ({"cognito:groups": "a b,c"}, ("a", "b", "c")),
        ({"cognito:groups": 5}, ()),
        ({}, ()),
        ({"realm_access": {"roles": ["x"]}}, ()),
    ],
)
def test_groups_claim_shapes(claims: dict, groups: tuple[str, ...]) -> None:
    assert groups_from_claims(claims, "cognito:groups") == groups


def test_groups_from_a_nested_claim_and_username_fallbacks(idp: OidcIssuer) -> None:
    verifier = JwtVerifier(idp.issuer, idp.client_id, groups_property="realm_access.roles", admin_group="ops")
    token = idp.mint({"preferred_username": None, "cognito:username": "cog", "realm_access": {"roles": ["ops"]}})
    principal, _ = verifier.verify(token)
    assert principal == Principal(
        username="cog", groups=("ops",), is_admin=True, via="jwt", subject=f"{idp.issuer}|sub-alice"
    )
    principal, _ = verifier.verify(idp.mint({"preferred_username": None}, username="zed"))
    assert principal.username == "sub-zed"


def test_malformed_jwks_entries_are_skipped_not_fatal(idp: OidcIssuer, monkeypatch: pytest.MonkeyPatch) -> None:
    good = idp.jwks()["keys"]
    bad = [{"kid": "no-kty"}, {"kty": "OKP", "crv": "X448", "x": "AA", "kid": "odd"}, {"kty": "EC", "crv": "P-999"}, 7]
    monkeypatch.setattr(idp, "jwks", lambda: {"keys": [*bad, *good]})
    authorizer = Authorizer(None, JwtVerifier(idp.issuer, idp.client_id))
    assert authorizer.authorize_headers(bearer(idp.mint())).username == "alice"
    monkeypatch.setattr(idp, "jwks", lambda: {"keys": "not a list"})
    error = refused(Authorizer(None, JwtVerifier(idp.issuer, idp.client_id)), bearer(idp.mint()))
    assert (error.status, "unknown key" in error.message) == (401, True)
