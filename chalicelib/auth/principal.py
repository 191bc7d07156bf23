"""Who is calling: the result of every successful authorization, passed to handlers via the authorizer context."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. `via` says which credential proved it: an API token or an OIDC JWT."""

    username: str
    groups: tuple[str, ...]
    is_admin: bool
    via: Literal["token", "jwt"]
    # The identity provider's stable name for the user, "<iss>|<sub>" (OIDC only; None for API tokens).
    subject: str | None = None
    # An API token's own expiry (UNIX seconds; None: never, or a JWT): a token made with it never outlives it.
    token_expiration: int | None = None
    # The API token's public id (the tokens table's `tokenId`) when the caller used one; None for a JWT.
    token_id: str | None = None

    @property
    def owner_id(self) -> str:
        """Who owns what this caller creates (sessions, uploads): stable and unique across credential kinds.

        `jwt:<iss>|<sub>` for an OIDC user (preferred_username is mutable and not unique), `token:<username>` for an
        API token's user: a token minted for "alice" is never the OIDC user whose preferred_username is "alice".
        """
        if self.via == "jwt":
            return f"jwt:{self.subject or self.username}"
        return f"token:{self.username}"

    def to_context(self) -> dict[str, str]:
        """Flat string map for an API Gateway authorizer context (values must be scalars; groups JSON-encoded)."""
        return {
            "username": self.username,
            "groups": json.dumps(list(self.groups)),
            "isAdmin": "true" if self.is_admin else "false",
            "via": self.via,
            **({"subject": self.subject} if self.subject else {}),
            **({"tokenExpiration": str(self.token_expiration)} if self.token_expiration is not None else {}),
            **({"tokenId": self.token_id} if self.token_id else {}),
        }

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> Principal:
        """Rebuild a Principal from an authorizer context (as produced by `to_context`; extra keys ignored)."""
        groups: Any = context.get("groups", "[]")
        if isinstance(groups, str):
            groups = json.loads(groups) if groups else []
        is_admin: Any = context.get("isAdmin", False)
        if isinstance(is_admin, str):
            is_admin = is_admin.lower() == "true"
        via = context.get("via", "token")
        if via not in ("token", "jwt"):
            raise ValueError(f"unknown credential kind in authorizer context: {via!r}")
        return cls(
            username=str(context["username"]),
            groups=tuple(str(g) for g in groups),
            is_admin=bool(is_admin),
            via=via,
            subject=str(context["subject"]) if context.get("subject") else None,
            token_expiration=int(context["tokenExpiration"]) if context.get("tokenExpiration") else None,
            token_id=str(context["tokenId"]) if context.get("tokenId") else None,
        )
