"""A real OpenID Connect issuer on loopback for tests: discovery, JWKS, key rotation, any token you need.

    with OidcIssuer(client_id="lisa-ui") as idp:          # or idp = OidcIssuer().start(); ...; idp.stop()
        idp.issuer                                          # "http://127.0.0.1:PORT" (AUTHORITY)
        jwt = idp.mint(username="alice", groups=["admins"])  # RS256 by the current RSA key
        jwt = idp.mint({"exp": 0}, alg="ES256")             # extra/overriding claims; None removes a claim
        jwt = idp.mint(alg="none") / idp.mint(alg="HS256")  # attacks: unsigned / HMAC keyed with the public key
        new_kid = idp.rotate()                              # new RSA key; the old one leaves the JWKS
        idp.hits["/jwks"]                                   # how often each path was fetched

It also runs the authorization-code flow with PKCE for browser logins: `/authorize` signs in the user set by
`login_as(...)` at once and redirects back with a code; `/token` exchanges it (or a refresh token) for an
id_token and an access_token (both JWTs with aud = client_id); `/userinfo`, `/logout`. CORS is open.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

_DEFAULT = object()
_KEY_TYPES = {"RS256": "RSA", "ES256": "EC"}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class SigningKey:
    """One key pair of the issuer."""

    kid: str
    alg: str
    private_key: Any

    @classmethod
    def generate(cls, alg: str) -> SigningKey:
        """A new key pair for `alg` (RS256 or ES256) with a fresh kid."""
        if alg == "RS256":
            private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif alg == "ES256":
            private = ec.generate_private_key(ec.SECP256R1())
        else:
            raise ValueError(f"unsupported key algorithm {alg}")
        return cls(kid=f"{alg.lower()}-{uuid.uuid4().hex[:12]}", alg=alg, private_key=private)

    def public_pem(self) -> bytes:
        """The public key as PEM (SubjectPublicKeyInfo), as an RP configured with a static key would hold it."""
        pem: bytes = self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return pem

    def public_jwk(self) -> dict[str, Any]:
        """The public key as a JWK, as the issuer's JWKS serves it."""
        algorithm = jwt.algorithms.RSAAlgorithm if self.alg == "RS256" else jwt.algorithms.ECAlgorithm
        data: dict[str, Any] = json.loads(algorithm.to_jwk(self.private_key.public_key()))
        data.update({"kid": self.kid, "alg": self.alg, "use": "sig"})
        return data


_PKCE_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")  # RFC 7636 section 4.1
_PKCE_CHALLENGE = re.compile(r"[A-Za-z0-9\-_]{43}")  # BASE64URL(SHA256(verifier)) without padding


@dataclass
class _Grant:
    claims: dict[str, Any]
    client_id: str
    redirect_uri: str
    code_challenge: str
    nonce: str | None
    created: float = field(default_factory=time.time)


class OidcIssuer:
    """An OIDC provider on 127.0.0.1 (own thread), with RSA and EC signing keys made in the test."""

    def __init__(
        self,
        client_id: str = "lisa-test-client",
        groups_claim: str = "cognito:groups",
        path: str = "",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.client_id = client_id
        self.groups_claim = groups_claim
        self._path = path.rstrip("/")
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._keys: dict[str, SigningKey] = {}
        self._current: dict[str, str] = {}
        for alg in _KEY_TYPES:
            self._install(SigningKey.generate(alg), keep_previous=True)
        self.hits: Counter[str] = Counter()
        self.user: dict[str, Any] = {"username": "alice", "groups": []}
        self._codes: dict[str, _Grant] = {}
        self._refresh_tokens: dict[str, dict[str, Any]] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle --------------------------------------------------------------------------------------------
    def start(self) -> OidcIssuer:
        """Serve the issuer on loopback in a daemon thread; returns self."""
        issuer = self

        class Handler(_Handler):
            idp = issuer

        self._server = ThreadingHTTPServer((self._host, self._port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="oidc-issuer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> OidcIssuer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def issuer(self) -> str:
        """The issuer URL (what LISA's AUTHORITY must be set to)."""
        if self._server is None:
            raise RuntimeError("the issuer is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{self._path}"

    def url(self, path: str) -> str:
        """The absolute URL of `path` on this issuer."""
        return self.issuer + path

    def metadata(self) -> dict[str, Any]:
        """The discovery document."""
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.url("/authorize"),
            "token_endpoint": self.url("/token"),
            "userinfo_endpoint": self.url("/userinfo"),
            "jwks_uri": self.url("/jwks"),
            "end_session_endpoint": self.url("/logout"),
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": list(_KEY_TYPES),
            "code_challenge_methods_supported": ["S256", "plain"],
            "token_endpoint_auth_methods_supported": ["none", "client_secret_post"],
            "scopes_supported": ["openid", "profile", "email"],
            "claims_supported": ["sub", "preferred_username", "email", self.groups_claim],
        }

    # ---- keys -------------------------------------------------------------------------------------------------
    def _install(self, key: SigningKey, keep_previous: bool) -> None:
        with self._lock:
            old = self._current.get(key.alg)
            if old is not None and not keep_previous:
                self._keys.pop(old, None)
            self._keys[key.kid] = key
            self._current[key.alg] = key.kid

    def rotate(self, alg: str = "RS256", keep_previous: bool = False) -> str:
        """A new current key for `alg`; the previous one leaves the JWKS unless keep_previous. Returns the kid."""
        key = SigningKey.generate(alg)
        self._install(key, keep_previous)
        return key.kid

    def current_kid(self, alg: str = "RS256") -> str:
        """The kid that signs new `alg` tokens."""
        return self._current[alg]

    def key(self, kid: str) -> SigningKey:
        """The signing key with id `kid` (also keys rotated out of the JWKS)."""
        return self._keys[kid]

    def public_pem(self, alg: str = "RS256") -> bytes:
        """PEM of the current public key for `alg` (what an HS256 key-confusion attacker would use)."""
        return self._keys[self._current[alg]].public_pem()

    def jwks(self) -> dict[str, Any]:
        """The JWKS document: the public half of every current key."""
        with self._lock:
            return {"keys": [k.public_jwk() for k in self._keys.values()]}

    # ---- tokens -----------------------------------------------------------------------------------------------
    def claims(
        self, username: str = "alice", groups: Iterable[str] = (), expires_in: float = 3600, **extra: Any
    ) -> dict[str, Any]:
        """Standard claims for `username` (iss, aud, sub, preferred_username, groups, iat, nbf, exp) plus extra."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.client_id,
            "sub": f"sub-{username}",
            "preferred_username": username,
            self.groups_claim: list(groups),
            "iat": now,
            "nbf": now,
            "exp": int(now + expires_in),
        }
        claims.update(extra)
        return claims

    def mint(
        self,
        claims: Mapping[str, Any] | None = None,
        *,
        username: str = "alice",
        groups: Iterable[str] = (),
        expires_in: float = 3600,
        alg: str = "RS256",
        kid: Any = _DEFAULT,
        sign_with: SigningKey | None = None,
        hmac_secret: bytes | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> str:
        """A compact JWT. `claims` override the standard ones (a None value removes the claim).

        alg RS256/ES256: signed by the current key of that type (or `sign_with`); header kid = that key's kid
        unless `kid` is given (None omits it). alg "none": unsigned. alg HS256/384/512: HMAC with `hmac_secret`,
        by default the current RSA public key PEM (the key-confusion attack).
        """
        body = self.claims(username, groups, expires_in)
        for name, value in (claims or {}).items():
            if value is None:
                body.pop(name, None)
            else:
                body[name] = value
        header: dict[str, Any] = {"alg": alg, "typ": "JWT"}
        signer = sign_with
        if alg in _KEY_TYPES and signer is None:
            signer = self._keys[self._current[alg]]
        default_kid = signer.kid if signer is not None else self._current["RS256"]
        if kid is _DEFAULT:
            header["kid"] = default_kid
        elif kid is not None:
            header["kid"] = kid
        header.update(headers or {})
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(body).encode())}"
        if alg == "none":
            signature = b""
        elif alg.startswith("HS"):
            digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
            secret = hmac_secret if hmac_secret is not None else self.public_pem("RS256")
            signature = hmac.new(secret, signing_input.encode(), digest).digest()
        else:
            if signer is None:
                raise ValueError(f"cannot sign with {alg}")
            algorithm = jwt.get_algorithm_by_name(alg)
            signature = algorithm.sign(signing_input.encode(), signer.private_key)
        return f"{signing_input}.{_b64url(signature)}"

    # ---- browser login (authorization code + PKCE) -------------------------------------------------------------
    def login_as(self, username: str, groups: Iterable[str] = (), **claims: Any) -> None:
        """The user that /authorize signs in (no login page: the test decides who is logged in)."""
        self.user = {"username": username, "groups": list(groups), **claims}

    def _issue(self, claims: dict[str, Any], nonce: str | None) -> dict[str, Any]:
        user = dict(claims)
        username, groups = user.pop("username"), user.pop("groups")
        id_claims = {"nonce": nonce} if nonce else {}
        id_token = self.mint({**user, **id_claims}, username=username, groups=groups)
        access_token = self.mint({**user, "token_use": "access"}, username=username, groups=groups)
        refresh = secrets.token_urlsafe(24)
        with self._lock:
            self._refresh_tokens[refresh] = claims
        return {
            "id_token": id_token,
            "access_token": access_token,
            "refresh_token": refresh,
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": "openid profile email",
        }


class _Handler(BaseHTTPRequestHandler):
    idp: OidcIssuer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # ---- plumbing
    def _send(self, status: int, body: Any = None, headers: Mapping[str, str] | None = None) -> None:
        payload = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Headers", "Authorization, Content-Type")
        self.send_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
        self.send_header("Cache-Control", "no-store")
        if body is not None:
            self.send_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _error(self, status: int, error: str, description: str) -> None:
        self._send(status, {"error": error, "error_description": description})

    def _route(self) -> tuple[str, dict[str, str]]:
        parts = urlsplit(self.path)
        path = parts.path
        prefix = self.idp._path
        if prefix and path.startswith(prefix):
            path = path[len(prefix) :]
        self.idp.hits[path] += 1
        return path, {k: v[0] for k, v in parse_qs(parts.query).items()}

    def do_OPTIONS(self) -> None:
        self._route()
        self._send(204)

    def do_GET(self) -> None:
        path, query = self._route()
        if path == "/.well-known/openid-configuration":
            self._send(200, self.idp.metadata())
        elif path == "/jwks":
            self._send(200, self.idp.jwks())
        elif path == "/authorize":
            self._authorize(query)
        elif path == "/userinfo":
            self._userinfo()
        elif path == "/logout":
            target = query.get("post_logout_redirect_uri")
            self._send(302, None, {"Location": target}) if target else self._send(200, {"logged_out": True})
        else:
            self._error(404, "not_found", f"no such path {path}")

    def do_POST(self) -> None:
        path, _ = self._route()
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        if path == "/token":
            self._token(form)
        else:
            self._error(404, "not_found", f"no such path {path}")

    # ---- endpoints
    def _authorize(self, query: dict[str, str]) -> None:
        redirect_uri = query.get("redirect_uri")
        if query.get("client_id") != self.idp.client_id or not redirect_uri:
            self._error(400, "invalid_request", "unknown client_id or missing redirect_uri")
            return
        if query.get("response_type") != "code":
            self._error(400, "unsupported_response_type", "only response_type=code")
            return
        # PKCE is required, and only S256 (as OAuth 2.1 and the LISA UI do): a client that stopped sending it fails.
        challenge = query.get("code_challenge", "")
        if query.get("code_challenge_method") != "S256" or not _PKCE_CHALLENGE.fullmatch(challenge):
            self._error(
                400, "invalid_request", "PKCE is required: code_challenge (S256) and code_challenge_method=S256"
            )
            return
        code = secrets.token_urlsafe(24)
        with self.idp._lock:
            self.idp._codes[code] = _Grant(
                claims=dict(self.idp.user),
                client_id=query["client_id"],
                redirect_uri=redirect_uri,
                code_challenge=challenge,
                nonce=query.get("nonce"),
            )
        params = {"code": code, **({"state": query["state"]} if "state" in query else {})}
        separator = "&" if "?" in redirect_uri else "?"
        self._send(302, None, {"Location": f"{redirect_uri}{separator}{urlencode(params)}"})

    def _token(self, form: dict[str, str]) -> None:
        grant_type = form.get("grant_type")
        if grant_type == "refresh_token":
            with self.idp._lock:
                claims = self.idp._refresh_tokens.pop(form.get("refresh_token", ""), None)
            if claims is None:
                self._error(400, "invalid_grant", "unknown refresh_token")
                return
            self._send(200, self.idp._issue(claims, None))
            return
        if grant_type != "authorization_code":
            self._error(400, "unsupported_grant_type", "authorization_code or refresh_token")
            return
        with self.idp._lock:
            grant = self.idp._codes.pop(form.get("code", ""), None)
        if grant is None or time.time() - grant.created > 300:
            self._error(400, "invalid_grant", "unknown, used or expired code")
            return
        if form.get("client_id", grant.client_id) != grant.client_id or form.get("redirect_uri") != grant.redirect_uri:
            self._error(400, "invalid_grant", "client_id or redirect_uri does not match the authorization request")
            return
        verifier = form.get("code_verifier", "")
        if not _PKCE_VERIFIER.fullmatch(verifier):
            self._error(400, "invalid_grant", "PKCE code_verifier missing or malformed (43-128 unreserved characters)")
            return
        if not hmac.compare_digest(_b64url(hashlib.sha256(verifier.encode()).digest()), grant.code_challenge):
            self._error(400, "invalid_grant", "PKCE code_verifier does not match the code_challenge")
            return
        self._send(200, self.idp._issue(grant.claims, grant.nonce))

    def _userinfo(self) -> None:
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        try:
            kid = jwt.get_unverified_header(token).get("kid", "")
            key = self.idp.key(kid)
            claims = jwt.decode(token, key.private_key.public_key(), algorithms=[key.alg], audience=self.idp.client_id)
        except (jwt.PyJWTError, KeyError):
            self._error(401, "invalid_token", "access token is invalid")
            return
        if scheme.lower() != "bearer":
            self._error(401, "invalid_token", "Bearer token required")
            return
        self._send(200, {k: v for k, v in claims.items() if k not in ("iat", "nbf", "exp", "aud", "iss")})
