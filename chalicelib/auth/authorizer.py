"""The authorization decision for every LISA request: API token or OIDC JWT in, Principal out.

Credentials: `Api-Key: <token>` (an API token), or `Authorization: Bearer <credential>` where the credential is an
API token or an OIDC JWT (told apart by shape: a JWT has three dot-separated parts). When both headers are sent,
Api-Key wins. Header names are matched case-insensitively. A request that sends either header twice is refused
(400): which of two credentials it means is never guessed (proxies and servers disagree on first vs last).

Decisions are cached in memory, keyed by the SHA-256 of the credential, for `Settings.auth_cache_ttl_seconds`
(never past a token's `tokenExpiration` or a JWT's `exp`): a hot credential costs a hash and a dict lookup, no I/O,
and a revoked token is refused at most one TTL later. Refusals of unknown/expired/invalid credentials are cached
for at most NEGATIVE_TTL_SECONDS so floods of bad credentials do not reach DynamoDB; "try again later" (503)
refusals are not cached. Safe to call from many threads.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from chalicelib.auth.errors import AuthError
from chalicelib.auth.jwt_verifier import JwtVerifier, looks_like_jwt
from chalicelib.auth.principal import Principal

if TYPE_CHECKING:
    from chalicelib.auth.tokens import TokenStore
    from chalicelib.settings import Settings

logger = Logger(child=True)

NEGATIVE_TTL_SECONDS = 5.0
MAX_CACHE_ENTRIES = 10_000
MAX_CREDENTIAL_LENGTH = 16_384
MISSING_CREDENTIALS = "missing credentials: send 'Authorization: Bearer <token>' or 'Api-Key: <token>'"

# (expires_at, principal, None) for an allowed credential; (expires_at, None, (status, message)) for a refusal.
_Entry = tuple[float, Principal | None, tuple[int, str] | None]


CREDENTIAL_HEADERS = {"api-key": "Api-Key", "authorization": "Authorization"}  # lower-case name -> as written

# Request headers: a mapping (a multidict's items() yields every value of a repeated header) or (name, value) pairs.
Headers = Mapping[str, str] | Iterable[tuple[str, str]]


def credential_from_headers(headers: Headers) -> str:
    """The credential a request presents (Api-Key first, then a Bearer Authorization); raises AuthError (401, or
    400 when a credential header is repeated)."""
    found: dict[str, str] = {}
    for name, value in headers.items() if isinstance(headers, Mapping) else headers:
        lowered = name.lower()
        if lowered in CREDENTIAL_HEADERS:
            if lowered in found:
                raise AuthError(f"ambiguous credentials: send the {CREDENTIAL_HEADERS[lowered]} header once", 400)
            found[lowered] = value
    api_key, authorization = found.get("api-key"), found.get("authorization")
    if api_key is not None and api_key.strip():
        credential = api_key.strip()
        if looks_like_jwt(credential):
            raise AuthError("the Api-Key header takes a LISA API token; send a JWT as 'Authorization: Bearer <jwt>'")
    elif authorization is not None and authorization.strip():
        scheme, _, credential = authorization.strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise AuthError("the Authorization header must be 'Bearer <token>'")
    else:
        raise AuthError(MISSING_CREDENTIALS)
    if len(credential) > MAX_CREDENTIAL_LENGTH:
        raise AuthError("credential is too long")
    if not (credential.isascii() and credential.isprintable()):  # tokens and JWTs are; others cannot be hashed
        raise AuthError("credential must be printable ASCII (a LISA API token or a JWT)")
    return credential


class Authorizer:
    """Turns request headers into a Principal, or raises AuthError. One per process (see get_authorizer)."""

    def __init__(
        self,
        tokens: TokenStore | None,
        jwt_verifier: JwtVerifier | None,
        cache_ttl_seconds: float = 30.0,
        max_cache_entries: int = MAX_CACHE_ENTRIES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tokens = tokens
        self.jwt_verifier = jwt_verifier
        self.cache_ttl_seconds = cache_ttl_seconds
        self._negative_ttl = min(cache_ttl_seconds, NEGATIVE_TTL_SECONDS)
        self._max_entries = max_cache_entries
        self._clock = clock
        self._cache: dict[bytes, _Entry] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Authorizer:
        """An authorizer for the configured tokens table and (when AUTHORITY and CLIENT_ID are set) OIDC issuer."""
        from chalicelib.auth.tokens import TokenStore

        verifier = None
        if settings.authority and settings.client_id:
            verifier = JwtVerifier(
                authority=settings.authority,
                client_id=settings.client_id,
                groups_property=settings.jwt_groups_property,
                admin_group=settings.admin_group,
                jwks_ttl_seconds=settings.jwks_cache_ttl_seconds,
            )
        return cls(TokenStore(settings.tokens_table), verifier, cache_ttl_seconds=settings.auth_cache_ttl_seconds)

    # ---- public API -------------------------------------------------------------------------------------------
    def authorize_headers(self, headers: Headers) -> Principal:
        """The Principal behind a request's headers; raises AuthError (401 invalid, 400 ambiguous, 503 cannot check
        now)."""
        return self.authorize_credential(credential_from_headers(headers))

    def authorize_cached(self, headers: Headers) -> Principal | None:
        """Like authorize_headers but never does I/O: None means "not decided yet, call authorize_headers"."""
        credential = credential_from_headers(headers)
        return self._cached(hashlib.sha256(credential.encode()).digest())

    def authorize_credential(self, credential: str) -> Principal:
        """The Principal behind one credential (API token or JWT); raises AuthError."""
        key = hashlib.sha256(credential.encode()).digest()
        principal = self._cached(key)
        if principal is not None:
            return principal
        now = self._clock()
        try:
            principal, valid_until = self._decide(credential, now)
        except AuthError as error:
            if error.status == 401:
                self._store(key, (now + self._negative_ttl, None, (error.status, error.message)))
            logger.info("request refused", reason=error.message, status=error.status)
            raise
        self._store(key, (min(now + self.cache_ttl_seconds, valid_until), principal, None))
        return principal

    def forget(self, token_hash: str | None) -> None:
        """Drop the cached decision for one API token, given its stored hash (after a revoke or an update)."""
        if token_hash:
            with self._lock:
                self._cache.pop(bytes.fromhex(token_hash), None)

    def clear_cache(self) -> None:
        """Forget every cached decision (revocations then take effect at once in this process)."""
        with self._lock:
            self._cache.clear()

    # ---- internals --------------------------------------------------------------------------------------------
    def _cached(self, key: bytes) -> Principal | None:
        entry = self._cache.get(key)
        if entry is None or self._clock() >= entry[0]:
            return None
        if entry[2] is not None:
            raise AuthError(entry[2][1], entry[2][0])  # a fresh exception: re-raising one would grow its traceback
        return entry[1]

    def _store(self, key: bytes, entry: _Entry) -> None:
        if entry[0] <= self._clock():
            return  # ttl 0, or already expired: nothing worth keeping
        with self._lock:
            cache = self._cache
            if len(cache) >= self._max_entries:
                now = self._clock()
                for stale in [k for k, e in cache.items() if e[0] <= now]:
                    del cache[stale]
                if len(cache) >= self._max_entries:  # still full of live entries: drop the oldest half
                    for old in list(cache)[: len(cache) // 2]:
                        del cache[old]
            cache[key] = entry

    def _decide(self, credential: str, now: float) -> tuple[Principal, float]:
        """Check a credential for real; returns the Principal and the time after which it must be re-checked."""
        if looks_like_jwt(credential):
            if self.jwt_verifier is None:
                raise AuthError("JWTs are not accepted: no OIDC issuer is configured (AUTHORITY, CLIENT_ID)")
            return self.jwt_verifier.verify(credential)
        if self.tokens is None:
            raise AuthError("API tokens are not accepted here")
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            record = self.tokens.get_by_token(credential)
        except (BotoCoreError, ClientError) as error:
            logger.warning("token store lookup failed", error=str(error))
            raise AuthError("cannot check the API token right now; try again later", 503) from None
        if record is None:
            raise AuthError("invalid API token")
        if record.is_expired(now):
            raise AuthError("API token has expired")
        principal = Principal(
            username=record.username,
            groups=record.groups,
            is_admin=record.is_admin,
            via="token",
            token_expiration=record.token_expiration,
            token_id=record.token_id,
        )
        valid_until = float("inf") if record.token_expiration is None else float(record.token_expiration)
        return principal, valid_until


_instance_lock = threading.Lock()
_instance: tuple[Settings, Authorizer] | None = None


def get_authorizer() -> Authorizer:
    """The process-wide Authorizer, built from get_settings() (rebuilt if the settings were reset)."""
    global _instance
    from chalicelib.settings import get_settings

    settings = get_settings()
    current = _instance
    if current is not None and current[0] is settings:
        return current[1]
    with _instance_lock:
        if _instance is None or _instance[0] is not settings:
            _instance = (settings, Authorizer.from_settings(settings))
        return _instance[1]
