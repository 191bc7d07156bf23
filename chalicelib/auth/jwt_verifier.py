"""OIDC JWT verification: discovery, a cached JWKS with rate-limited refresh, strict claim checks.

Accepted: RS256 / ES256 signatures by a key from the issuer's JWKS (`jwks_uri` from
`AUTHORITY/.well-known/openid-configuration`), `iss` == AUTHORITY, `aud` contains CLIENT_ID, `exp` in the future and
`nbf`/`iat` not in the future (with a small leeway). `alg: none`, HS* (public-key-as-HMAC-secret confusion) and a key
whose type does not match `alg` are refused before any signature math.

Username: the first non-empty of `preferred_username`, `username`, `cognito:username`, `sub`.
Groups: the claim named by `Settings.jwt_groups_property` (a list, or a space/comma separated string; a dotted name
such as `realm_access.roles` is looked up as a path when no claim has that literal name). The caller is an admin
when `Settings.admin_group` is non-empty and among the groups.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from chalicelib import bounded_json
from chalicelib.auth.errors import AuthError
from chalicelib.auth.principal import Principal

if TYPE_CHECKING:
    from jwt import PyJWK

logger = Logger(child=True)

ALLOWED_ALGORITHMS: dict[str, str] = {"RS256": "RSA", "ES256": "EC"}  # alg -> required JWK key type
USERNAME_CLAIMS = ("preferred_username", "username", "cognito:username", "sub")
MAX_DOCUMENT_BYTES = 1 << 20


def looks_like_jwt(credential: str) -> bool:
    """A compact JWS has three dot-separated parts; LISA API tokens have no dots."""
    return credential.count(".") == 2


def _fetch_json(url: str, timeout: float) -> dict[str, Any]:
    """GET a JSON object over http(s)."""
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"refusing to fetch {url!r}: only http(s) URLs are allowed")
    import urllib.request

    headers = {"Accept": "application/json", "User-Agent": "lisa-authorizer"}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (scheme checked above)
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        body = response.read(MAX_DOCUMENT_BYTES + 1)
    if len(body) > MAX_DOCUMENT_BYTES:
        raise ValueError(f"{url} returned more than {MAX_DOCUMENT_BYTES} bytes")
    document = bounded_json.loads(body, url)
    if not isinstance(document, dict):
        raise ValueError(f"{url} did not return a JSON object")
    return document


def _short(value: Any) -> str:
    """An attacker-supplied value, quoted and cut short, for an error message."""
    text = repr(value)
    return text if len(text) <= 66 else text[:60] + "...'"


def _unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header, decoded without touching payload or signature (pyjwt would re-parse the whole token)."""
    try:
        segment = token.split(".", 1)[0]
        header = bounded_json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)), "JWT header")
    except ValueError:  # base64, UTF-8 and JSON errors, nesting, lone surrogates
        header = None
    if not isinstance(header, dict):
        raise AuthError("bearer token is neither a LISA API token nor a well-formed JWT")
    return header


def groups_from_claims(claims: Mapping[str, Any], groups_property: str) -> tuple[str, ...]:
    """The caller's groups from the configured claim: a list, or a space/comma separated string."""
    value: Any = claims.get(groups_property)
    if value is None and "." in groups_property:
        value = claims
        for part in groups_property.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
    if value is None:
        return ()
    if isinstance(value, str):
        items = value.replace(",", " ").split()
    elif isinstance(value, list | tuple):
        items = [str(v).strip() for v in value if isinstance(v, str | int)]
    else:
        return ()
    return tuple(dict.fromkeys(item for item in items if item))


def username_from_claims(claims: Mapping[str, Any]) -> str | None:
    """The first non-empty string among USERNAME_CLAIMS."""
    for claim in USERNAME_CLAIMS:
        value = claims.get(claim)
        if isinstance(value, str) and value.strip():
            return value
    return None


class JwtVerifier:
    """Verifies OIDC JWTs for one issuer and audience; thread-safe; JWKS cached and refreshed on unknown kid."""

    def __init__(
        self,
        authority: str,
        client_id: str,
        groups_property: str = "cognito:groups",
        admin_group: str = "",
        jwks_ttl_seconds: float = 3600.0,
        min_refresh_interval_seconds: float = 30.0,
        leeway_seconds: float = 30.0,
        http_timeout_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.authority = authority.rstrip("/")
        self.client_id = client_id
        self.groups_property = groups_property
        self.admin_group = admin_group
        self._issuers = {self.authority, self.authority + "/"}
        self._jwks_ttl = jwks_ttl_seconds
        self._min_refresh = min_refresh_interval_seconds
        self._leeway = leeway_seconds
        self._timeout = http_timeout_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._jwks_uri: str | None = None
        self._keys: dict[str | None, PyJWK] = {}
        self._fetched_at: float | None = None
        self._last_unknown_kid_refresh: float | None = None

    # ---- keys -------------------------------------------------------------------------------------------------
    def _discover(self) -> str:
        if self._jwks_uri is None:
            url = f"{self.authority}/.well-known/openid-configuration"
            metadata = _fetch_json(url, self._timeout)
            jwks_uri = metadata.get("jwks_uri")
            if not isinstance(jwks_uri, str) or not jwks_uri:
                raise ValueError(f"{url} has no jwks_uri")
            issuer = metadata.get("issuer")
            if isinstance(issuer, str) and issuer.rstrip("/") != self.authority:
                logger.warning("OIDC metadata issuer differs from AUTHORITY", issuer=issuer, authority=self.authority)
            self._jwks_uri = jwks_uri
        return self._jwks_uri

    def _load_keys(self) -> None:
        """Fetch the JWKS (discovering it first if needed); keep the old keys if the fetch fails."""
        from http.client import HTTPException

        from jwt import PyJWK
        from jwt.exceptions import PyJWTError

        now = self._clock()
        try:
            document = _fetch_json(self._discover(), self._timeout)
        except (OSError, ValueError, HTTPException) as error:
            logger.warning("could not fetch the OIDC signing keys", error=str(error), authority=self.authority)
            if not self._keys:
                raise AuthError("cannot reach the identity provider to verify the JWT; try again later", 503) from None
            # Serve the stale keys; try again in a minute rather than on every request.
            self._fetched_at = now - max(self._jwks_ttl - 60.0, 0.0)
            return
        keys: dict[str | None, PyJWK] = {}
        entries = document.get("keys")
        for data in entries if isinstance(entries, list) else []:
            if not isinstance(data, dict) or data.get("use", "sig") != "sig":
                continue
            try:
                key = PyJWK.from_dict(data)
            except (PyJWTError, ValueError, KeyError, TypeError):
                continue  # a key type or curve we do not accept, or a malformed entry: skip it, keep the others
            keys[key.key_id] = key
        self._keys = keys
        self._fetched_at = now
        logger.debug("OIDC signing keys loaded", kids=[k for k in keys if k], authority=self.authority)

    def _signing_key(self, kid: str | None, alg: str) -> PyJWK:
        with self._lock:
            now = self._clock()
            if self._fetched_at is None or now - self._fetched_at >= self._jwks_ttl:
                self._load_keys()
            key = self._find_key(kid, alg)
            if key is None and (
                self._last_unknown_kid_refresh is None or now - self._last_unknown_kid_refresh >= self._min_refresh
            ):
                # Keys may have been rotated: refresh, at most once per min_refresh_interval for unknown kids.
                self._last_unknown_kid_refresh = now
                self._load_keys()
                key = self._find_key(kid, alg)
        if key is None:
            raise AuthError(f"JWT is signed with an unknown key (kid {_short(kid)}) for issuer {self.authority}")
        return key

    def _find_key(self, kid: str | None, alg: str) -> PyJWK | None:
        if kid is not None:
            return self._keys.get(kid)
        # No kid in the header: acceptable only when exactly one key of the right type exists.
        candidates = [k for k in self._keys.values() if k.key_type == ALLOWED_ALGORITHMS[alg]]
        return candidates[0] if len(candidates) == 1 else None

    # ---- verification -----------------------------------------------------------------------------------------
    def verify(self, token: str) -> tuple[Principal, float]:
        """Verify a JWT; returns its Principal and its `exp` (UNIX seconds). Raises AuthError (401, or 503)."""
        import jwt

        header = _unverified_header(token)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ALLOWED_ALGORITHMS:
            raise AuthError(f"JWT algorithm {_short(alg)} is not accepted (accepted: {', '.join(ALLOWED_ALGORITHMS)})")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise AuthError("JWT header kid must be a string")
        key = self._signing_key(kid, alg)
        if key.key_type != ALLOWED_ALGORITHMS[alg] or getattr(key, "algorithm_name", alg) != alg:
            raise AuthError(f"JWT algorithm {alg} does not match its signing key (kid {_short(kid)})")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self.client_id,
                issuer=self._issuers,
                leeway=self._leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("JWT has expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthError("JWT is not valid yet (nbf or iat is in the future)") from None
        except jwt.InvalidAudienceError:
            raise AuthError(f"JWT audience does not include this client ({self.client_id})") from None
        except jwt.InvalidIssuerError:
            raise AuthError(f"JWT issuer is not {self.authority}") from None
        except jwt.MissingRequiredClaimError as error:
            raise AuthError(f"JWT lacks the required {error.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise AuthError("JWT signature is invalid") from None
        except jwt.PyJWTError as error:
            raise AuthError(f"JWT is invalid: {error}") from None
        username = username_from_claims(claims)
        if username is None:
            raise AuthError(f"JWT has none of the claims {', '.join(USERNAME_CLAIMS)} to name the user")
        groups = groups_from_claims(claims, self.groups_property)
        principal = Principal(
            username=username,
            groups=groups,
            is_admin=bool(self.admin_group) and self.admin_group in groups,
            via="jwt",
            subject=f"{claims['iss']}|{sub}" if isinstance(sub := claims.get("sub"), str) and sub else None,
        )
        return principal, float(claims["exp"])
