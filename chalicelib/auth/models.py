"""Request and response bodies of the token administration API (the CLI validates its options with them)."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator
from pydantic.alias_generators import to_camel

from chalicelib.auth.tokens import UNCHANGED, TokenRecord, Unchanged

# No control characters, no blank at either end (Python's str.strip() counts \x1c-\x1f as blanks, \S does not).
Name = Annotated[
    str, Field(min_length=1, max_length=256, pattern=r"^[^\s\x00-\x1f\x7f]([^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f])?$")
]
MAX_EXPIRES_IN = 10 * 365 * 24 * 3600  # ten years
LAST_UNIX_SECOND = 253_402_300_799  # 9999-12-31T23:59:59Z: what datetimes (and the CLI) can show


def _future(value: int | None) -> int | None:
    if value is not None and value <= time.time():
        raise ValueError("must be a UNIX time in the future (seconds)")
    if value is not None and value > LAST_UNIX_SECOND:
        raise ValueError(f"must be a UNIX time before the year 10000 (at most {LAST_UNIX_SECOND})")
    return value


class _Lifetime(BaseModel):
    """At most one of `tokenExpiration` (UNIX seconds) and `expiresIn` (seconds from now)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    token_expiration: int | None = Field(None, alias="tokenExpiration")
    expires_in: int | None = Field(None, alias="expiresIn", gt=0, le=MAX_EXPIRES_IN)

    _check_future = field_validator("token_expiration")(_future)

    @model_validator(mode="after")
    def _one_expiration(self) -> _Lifetime:
        if self.token_expiration is not None and self.expires_in is not None:
            raise ValueError("give tokenExpiration or expiresIn, not both")
        return self

    def expiration(self, now: float) -> int | None:
        """The absolute expiration (UNIX seconds), or None when neither field is given."""
        if self.expires_in is not None:
            return int(now) + self.expires_in
        return self.token_expiration

    def lifetime_field(self) -> str:
        """The field that set the expiration (what a refusal of it names)."""
        return "expiresIn" if self.expires_in is not None else "tokenExpiration"


class CreateTokenRequest(_Lifetime):
    """POST /tokens. Give at most one of `tokenExpiration` (UNIX seconds) and `expiresIn` (seconds from now); with
    neither the token never expires."""

    username: Name
    groups: list[Name] = Field(default_factory=list, max_length=100)
    is_admin: StrictBool = Field(False, alias="isAdmin")
    description: str = Field("", max_length=1024)


class OwnTokenRequest(_Lifetime):
    """POST /me/tokens: a token for the caller, with the caller's groups. Give at most one of `tokenExpiration`
    (UNIX seconds) and `expiresIn` (seconds from now), within the configured maximum lifetime; with neither the
    token gets the default lifetime (config.yaml `authConfig.apiTokens`)."""

    description: str = Field("", max_length=1024)


class UpdateTokenRequest(BaseModel):
    """PUT /tokens/{tokenId}: fields present are changed. `tokenExpiration: null` removes the expiration."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    token_expiration: int | None = Field(None, alias="tokenExpiration")
    expires_in: int | None = Field(None, alias="expiresIn", gt=0, le=MAX_EXPIRES_IN)
    description: str | None = Field(None, max_length=1024)

    _check_future = field_validator("token_expiration")(_future)

    @model_validator(mode="after")
    def _something_to_change(self) -> UpdateTokenRequest:
        given = self.model_fields_set
        if not given:
            raise ValueError("nothing to update: give tokenExpiration, expiresIn or description")
        if {"token_expiration", "expires_in"} <= given:
            raise ValueError("give tokenExpiration or expiresIn, not both")
        if "description" in given and self.description is None:
            raise ValueError("description must be a string")
        return self

    def expiration(self, now: float) -> int | Unchanged | None:
        """The new absolute expiration, None to remove it, or UNCHANGED."""
        if self.expires_in is not None:
            return int(now) + self.expires_in
        if "token_expiration" in self.model_fields_set:
            return self.token_expiration
        return UNCHANGED

    def new_description(self) -> str | Unchanged:
        """The new description, or UNCHANGED."""
        return self.description if self.description is not None else UNCHANGED


# ---- responses ---------------------------------------------------------------------------------------------------
class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, alias_generator=to_camel)


class TokenView(_Out):
    """A token's record as the API shows it: never the token itself nor its hash."""

    token_id: str
    username: str
    groups: list[str]
    is_admin: bool
    token_expiration: int | None = Field(description="UNIX seconds; null: never expires")
    description: str
    created_at: int
    created_by: str
    updated_at: int | None
    last_used_at: int | None = Field(
        description="UNIX seconds of the latest request made with the token, recorded at most once a minute (so up "
        "to about a minute late); null: not used since it was created"
    )

    @classmethod
    def of(cls, record: TokenRecord) -> TokenView:
        """The public view of a stored record (never its hash)."""
        return cls.model_validate(record.to_dict())


class CreatedToken(TokenView):
    """A new token: the only response that shows `token`."""

    token: str


class RevokedToken(TokenView):
    """DELETE /tokens/{tokenId}: the token, now revoked."""

    revoked: Literal[True]


class TokenList(_Out):
    """GET /tokens (admin): every token, or one user's; GET /me/tokens: the caller's own."""

    tokens: list[TokenView]


class TokenQuery(_Out):
    """GET /tokens: `username` lists one user's tokens."""

    username: Name | None = None
