"""Users' own API tokens: what any signed-in caller may mint, list and revoke for itself (routes: /me/tokens).

A caller's token acts as the caller: its username, its groups and its admin flag as the authorizer saw them, never
more (nothing in the request can add a group). Its lifetime is bounded: the configured default unless it asks for
less, never more than the configured maximum, and never past the expiry of the API token it was made with (a
short-lived token cannot mint a long-lived one). A user holds at most `token_max_per_user` unexpired tokens: the
count is checked before the write and again after it, and a write that took the user over the limit (two creates
racing) is undone, so the limit holds under concurrency; racing creates may both be refused, never both kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from chalicelib.auth.tokens import TokenNotFoundError, TokenRecord, TokenStore
from chalicelib.errors import BadRequest, Conflict, NotFound

if TYPE_CHECKING:
    from chalicelib.auth.models import OwnTokenRequest
    from chalicelib.auth.principal import Principal
    from chalicelib.settings import Settings

DAY = 24 * 3600


@dataclass(frozen=True)
class TokenPolicy:
    """The bounds on users' own tokens (config.yaml `authConfig.apiTokens`, via Settings)."""

    default_lifetime_days: int
    max_lifetime_days: int
    max_per_user: int

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenPolicy:
        """The policy the environment configures."""
        return cls(settings.token_default_lifetime_days, settings.token_max_lifetime_days, settings.token_max_per_user)

    def expiration(self, request: OwnTokenRequest, caller: Principal, now: float) -> int:
        """The new token's expiry (UNIX seconds); BadRequest naming the field when the request asks for too long."""
        latest = int(now) + self.max_lifetime_days * DAY
        bound = f"the maximum lifetime of a user's own token ({self.max_lifetime_days} days)"
        if caller.token_expiration is not None and caller.token_expiration < latest:
            latest, bound = caller.token_expiration, "the expiry of the API token this request was made with"
        asked = request.expiration(now)
        if asked is None:
            return min(int(now) + min(self.default_lifetime_days, self.max_lifetime_days) * DAY, latest)
        if asked > latest:
            field = request.lifetime_field()
            limit = f"at most {latest - int(now)} seconds from now" if field == "expiresIn" else f"at most {latest}"
            raise BadRequest(f"{field}: {limit}, {bound}", field=field)
        return asked


def create_own_token(
    store: TokenStore, caller: Principal, request: OwnTokenRequest, policy: TokenPolicy
) -> tuple[str, TokenRecord]:
    """A new token for the caller (shown only now); Conflict when the caller holds `max_per_user` already."""
    expiration = policy.expiration(request, caller, store.now())
    if store.count_live(caller.username) >= policy.max_per_user:
        raise _over_limit(caller, policy)
    token, record = store.create(
        username=caller.username,
        groups=caller.groups,
        is_admin=caller.is_admin,
        expiration=expiration,
        description=request.description,
        created_by=caller.username,
    )
    if store.count_live(caller.username) > policy.max_per_user:  # another create raced this one past the limit
        store.revoke(record.token_id)
        raise _over_limit(caller, policy)
    return token, record


def revoke_own_token(store: TokenStore, caller: Principal, token_id: str) -> TokenRecord:
    """Revoke one of the caller's tokens; NotFound for an unknown id and for another user's token alike."""
    try:
        if store.get(token_id).username != caller.username:
            raise TokenNotFoundError(token_id)
        return store.revoke(token_id)
    except TokenNotFoundError as error:
        raise NotFound(str(error), field="tokenId") from None


def _over_limit(caller: Principal, policy: TokenPolicy) -> Conflict:
    return Conflict(
        f"user {caller.username!r} already holds {policy.max_per_user} unexpired API tokens, the limit"
        " (authConfig.apiTokens.maxPerUser); revoke one first",
        field="maxPerUser",
    )
