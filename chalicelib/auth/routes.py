"""The Chalice authorizer and the token administration API.

`lisa_authorizer` is the one Chalice authorizer every protected route uses (`authorizer=lisa_authorizer`). It reads
the request headers, so it accepts `Api-Key` as well as `Authorization`. It handles both event shapes:
- REQUEST events (how LISA deploys it in AWS, and what the local gateway sends): all headers are used;
- TOKEN events (Chalice's default deployment): only `authorizationToken` exists, read as the Authorization header.
A valid caller gets an Allow for the whole API (admin checks happen in handlers) and its Principal in the context.
Invalid or missing credentials get an explicit Deny whose context carries `message`; API Gateway's ACCESS_DENIED
gateway response is overridden to `401 {"message": "$context.authorizer.message"}` (the local gateway does the
same), so callers see why they were refused. A gateway response's status is fixed, so refusals with another status
(400 ambiguous credentials, 503 cannot check now) pass the gateway with no principal and a `refusal` in the
context, and `refuse_what_the_authorizer_refused` (middleware of every route of the app) answers them
`{"message": ...}` with their status before any handler runs. API Gateway result caching is off (ttl 0): the
in-process decision cache is the cache (so no such pass is ever reused for another request), and a REQUEST
authorizer without caching does not demand every identity header.

Token routes (admin only; the blueprint is registered without a prefix so these are the exact paths):
POST /tokens, GET /tokens[?username=U], PUT /tokens/{tokenId}, DELETE /tokens/{tokenId}.
Any signed-in caller's own tokens (chalicelib.auth.self_service): POST /me/tokens, GET /me/tokens,
DELETE /me/tokens/{tokenId}. Separate paths, so the admin routes keep their wire format and their 403 for others.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from chalice.app import (
    AuthRequest,
    AuthResponse,
    ChaliceAuthorizer,
    ForbiddenError,
    NotFoundError,
    Request,
    Response,
    UnauthorizedError,
    UserHandlerFuncType,
)

from chalicelib.apidocs.operations import ApiBlueprint, Link
from chalicelib.auth.authorizer import Headers, get_authorizer
from chalicelib.auth.errors import AuthError
from chalicelib.auth.principal import Principal
from chalicelib.auth.tokens import TokenNotFoundError, TokenStore

if TYPE_CHECKING:
    from chalicelib.auth.models import CreatedToken, RevokedToken, TokenList, TokenView

logger = Logger(child=True)


class HeadersAuthRequest(AuthRequest):
    """Chalice's AuthRequest plus the request headers (empty for a TOKEN event, which carries none)."""

    def __init__(self, auth_type: str, token: str, method_arn: str, headers: Headers) -> None:
        super().__init__(auth_type, token, method_arn)
        self.headers = headers


class RequestAuthorizer(ChaliceAuthorizer):
    """A ChaliceAuthorizer that keeps the headers of REQUEST events instead of needing `authorizationToken`."""

    def _transform_event(self, event: dict[str, Any]) -> AuthRequest:
        token = str(event.get("authorizationToken") or "")
        headers: Headers = event.get("headers") or {}
        if event.get("multiValueHeaders"):  # every value of a repeated header (`headers` keeps only the last)
            headers = [(name, value) for name, values in event["multiValueHeaders"].items() for value in values or ()]
        elif not headers and token:
            headers = {"authorization": token}
        return HeadersAuthRequest(str(event.get("type", "REQUEST")), token, str(event.get("methodArn", "")), headers)


class _AuthBlueprint(ApiBlueprint):
    """A Blueprint whose @authorizer builds a RequestAuthorizer."""

    def _wrap_handler(
        self, handler_type: str, handler_name: str, user_handler: UserHandlerFuncType
    ) -> UserHandlerFuncType:
        if handler_type == "authorizer":
            return RequestAuthorizer(handler_name, user_handler)
        return super()._wrap_handler(handler_type, handler_name, user_handler)


auth_bp = _AuthBlueprint(__name__)

# Authorizer-context keys of a refusal the gateway cannot answer with its status (see the module docstring).
REFUSAL, REFUSAL_STATUS = "refusal", "refusalStatus"


def _deny(method_arn: str, message: str) -> dict[str, Any]:
    # The message lands in a JSON gateway-response template in AWS: keep it short and free of quotes/backslashes.
    safe = "".join(c if c.isprintable() and c not in '"\\' else "'" for c in message)[:300]
    return {
        "principalId": "anonymous",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": [method_arn or "*"]}],
        },
        "context": {"message": safe},
    }


@auth_bp.authorizer(ttl_seconds=0)
def lisa_authorizer(auth_request: HeadersAuthRequest) -> AuthResponse | dict[str, Any]:
    """Allow a valid API token or JWT (Principal in the context); deny anything else with a message (a refusal
    that is not a 401 is passed on to the middleware below, which answers it with its own status)."""
    try:
        principal = get_authorizer().authorize_headers(auth_request.headers)
    except AuthError as error:
        if error.status == 401:
            return _deny(auth_request.method_arn, error.message)
        context = {REFUSAL: error.message, REFUSAL_STATUS: str(error.status)}
        return AuthResponse(routes=["*"], principal_id="anonymous", context=context)
    except Exception:  # an unexpected failure must still be a refusal, never a 500
        logger.exception("authorizer failed")
        return _deny(auth_request.method_arn, "authorization failed; try again later")
    return AuthResponse(routes=["*"], principal_id=principal.username, context=principal.to_context())


@auth_bp.middleware("http")
def refuse_what_the_authorizer_refused(request: Request, get_response: Callable[[Request], Response]) -> Response:
    """Every route of the app: a request the authorizer refused with a status other than 401 gets that refusal,
    `{"message": ...}`, and never reaches a handler (it carries no principal either: see current_principal)."""
    context = (request.context or {}).get("authorizer") or {}
    if REFUSAL in context:
        return Response(status_code=int(context[REFUSAL_STATUS]), body={"message": context[REFUSAL]})
    return get_response(request)


def current_principal(request: Request) -> Principal:
    """The caller of a route protected by lisa_authorizer."""
    context = (request.context or {}).get("authorizer")
    if not context:
        raise UnauthorizedError("this request was not authorized")
    try:
        return Principal.from_context(context)
    except (KeyError, TypeError, ValueError):
        raise UnauthorizedError("the authorizer context of this request is invalid") from None


def require_admin(request: Request) -> Principal:
    """The caller, who must be an administrator; otherwise a 403."""
    principal = current_principal(request)
    if not principal.is_admin:
        raise ForbiddenError(f"user {principal.username!r} is not an administrator; this needs the admin group")
    return principal


# ---- token administration ------------------------------------------------------------------------------------
_MODELS = "chalicelib.auth.models"
TOKEN, TOKEN_ID = f"{_MODELS}:TokenView", {"tokenId": "$response.body#/tokenId"}
_TOKEN_LINKS = {
    "UpdateToken": Link("updateToken", TOKEN_ID),
    "RevokeToken": Link("revokeToken", TOKEN_ID),
}
_OWN_TOKEN_LINKS = {"RevokeOwnToken": Link("revokeOwnToken", TOKEN_ID)}


@auth_bp.operation(
    "/tokens",
    "POST",
    authorizer=lisa_authorizer,
    body=f"{_MODELS}:CreateTokenRequest",
    responses={201: f"{_MODELS}:CreatedToken"},
    errors=(403,),
    links=_TOKEN_LINKS,
    tag="tokens",
)
def create_token() -> CreatedToken:
    """Create a token (admin); the response is the only time the token itself is shown."""
    from chalicelib.auth.models import CreatedToken, CreateTokenRequest

    admin = require_admin(auth_bp.current_request)
    body = auth_bp.body(CreateTokenRequest)
    store = TokenStore()
    token, record = store.create(
        username=body.username,
        groups=body.groups,
        is_admin=body.is_admin,
        expiration=body.expiration(store.now()),
        description=body.description,
        created_by=admin.username,
    )
    logger.info("API token created", token_id=record.token_id, username=record.username, by=admin.username)
    return CreatedToken.model_validate({"token": token, **record.to_dict()})


@auth_bp.operation(
    "/tokens",
    "GET",
    authorizer=lisa_authorizer,
    query=f"{_MODELS}:TokenQuery",
    responses={200: f"{_MODELS}:TokenList"},
    errors=(403,),
    tag="tokens",
)
def list_tokens() -> TokenList:
    """Every token's record (admin; no secrets, no hashes); `?username=` filters."""
    from chalicelib.auth.models import TokenList, TokenQuery, TokenView

    require_admin(auth_bp.current_request)
    query = auth_bp.query(TokenQuery)
    return TokenList(tokens=[TokenView.of(record) for record in TokenStore().list(username=query.username)])


@auth_bp.operation(
    "/tokens/{tokenId}",
    "PUT",
    authorizer=lisa_authorizer,
    body=f"{_MODELS}:UpdateTokenRequest",
    responses={200: TOKEN},
    errors=(403, 404),
    tag="tokens",
)
def update_token(tokenId: str) -> TokenView:
    """Change a token's expiration and/or description (admin)."""
    from chalicelib.auth.models import TokenView, UpdateTokenRequest

    admin = require_admin(auth_bp.current_request)
    body = auth_bp.body(UpdateTokenRequest)
    store = TokenStore()
    try:
        record = store.update(tokenId, expiration=body.expiration(store.now()), description=body.new_description())
    except TokenNotFoundError as error:
        raise NotFoundError(str(error)) from None
    get_authorizer().forget(record.token_hash)  # this process sees the change at once; others within the TTL
    logger.info("API token updated", token_id=tokenId, by=admin.username)
    return TokenView.of(record)


@auth_bp.operation(
    "/tokens/{tokenId}",
    "DELETE",
    authorizer=lisa_authorizer,
    responses={200: f"{_MODELS}:RevokedToken"},
    errors=(403, 404),
    tag="tokens",
)
def revoke_token(tokenId: str) -> RevokedToken:
    """Revoke (delete) a token (admin); it is refused everywhere within the authorizer cache TTL."""
    from chalicelib.auth.models import RevokedToken

    admin = require_admin(auth_bp.current_request)
    try:
        record = TokenStore().revoke(tokenId)
    except TokenNotFoundError as error:
        raise NotFoundError(str(error)) from None
    get_authorizer().forget(record.token_hash)
    logger.info("API token revoked", token_id=tokenId, by=admin.username)
    return RevokedToken.model_validate({"revoked": True, **record.to_dict()})


# ---- the caller's own tokens ---------------------------------------------------------------------------------
@auth_bp.operation(
    "/me/tokens",
    "POST",
    authorizer=lisa_authorizer,
    body=f"{_MODELS}:OwnTokenRequest",
    body_required=False,
    responses={201: f"{_MODELS}:CreatedToken"},
    errors=(409,),
    links=_OWN_TOKEN_LINKS,
    tag="tokens",
)
def create_own_token() -> CreatedToken:
    """Create a token for yourself, with your groups and a bounded lifetime; shown only in this response.

    Without `expiresIn` / `tokenExpiration` it gets the default lifetime; longer than the maximum (or, when you
    call with an API token, past that token's own expiry) is a 400 naming the field. Over the number of unexpired
    tokens a user may hold is a 409 naming `maxPerUser`."""
    from chalicelib.auth import self_service
    from chalicelib.auth.models import CreatedToken, OwnTokenRequest
    from chalicelib.settings import get_settings

    caller = current_principal(auth_bp.current_request)
    body = auth_bp.body(OwnTokenRequest, default=b"{}")
    policy = self_service.TokenPolicy.from_settings(get_settings())
    token, record = self_service.create_own_token(TokenStore(), caller, body, policy)
    logger.info("own API token created", token_id=record.token_id, username=record.username)
    return CreatedToken.model_validate({"token": token, **record.to_dict()})


@auth_bp.operation(
    "/me/tokens",
    "GET",
    authorizer=lisa_authorizer,
    responses={200: f"{_MODELS}:TokenList"},
    tag="tokens",
)
def list_own_tokens() -> TokenList:
    """Your own tokens, expired ones included (no secrets, no hashes). Last use is not recorded."""
    from chalicelib.auth.models import TokenList, TokenView

    caller = current_principal(auth_bp.current_request)
    return TokenList(tokens=[TokenView.of(record) for record in TokenStore().list(username=caller.username)])


@auth_bp.operation(
    "/me/tokens/{tokenId}",
    "DELETE",
    authorizer=lisa_authorizer,
    responses={200: f"{_MODELS}:RevokedToken"},
    errors=(404,),
    tag="tokens",
)
def revoke_own_token(tokenId: str) -> RevokedToken:
    """Revoke one of your own tokens; another user's token is a 404, as an unknown one is (admins: DELETE /tokens)."""
    from chalicelib.auth import self_service
    from chalicelib.auth.models import RevokedToken

    caller = current_principal(auth_bp.current_request)
    record = self_service.revoke_own_token(TokenStore(), caller, tokenId)
    get_authorizer().forget(record.token_hash)
    logger.info("own API token revoked", token_id=tokenId, username=caller.username)
    return RevokedToken.model_validate({"revoked": True, **record.to_dict()})
