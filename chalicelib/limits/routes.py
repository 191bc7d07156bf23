"""Limits API (mounted at /limits, admins only): per-principal overrides of config.yaml's `limits` defaults.

GET /limits[?scope=]: every override. GET /limits/defaults: config.yaml's defaults of each scope. GET, PUT,
DELETE /limits/{scope}/{principalId}: one principal's override and the limits that apply to it in its scope;
`scope` is token (the token id), user (the username) or group. Routers see a change within their override
cache's lifetime (`auth_cache_ttl_seconds`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from chalicelib.apidocs.operations import ApiBlueprint
from chalicelib.auth.routes import lisa_authorizer, require_admin
from chalicelib.contracts.limits import PRINCIPAL_ID_PATTERN, Scope
from chalicelib.errors import BadRequest

if TYPE_CHECKING:
    from chalicelib.contracts.limits import LimitOverrideList, LimitsConfig, PrincipalLimits
    from chalicelib.limits.store import OverrideStore

logger = Logger(child=True)

limits_bp = ApiBlueprint(__name__)

_CONTRACTS = "chalicelib.contracts.limits"
LIMITS = f"{_CONTRACTS}:PrincipalLimits"
_PRINCIPAL_ID = re.compile(PRINCIPAL_ID_PATTERN)


def _store() -> OverrideStore:
    from chalicelib.limits.store import OverrideStore  # boto3 loads on first use, not at cold start

    return OverrideStore()


def _principal(scope: str, principal_id: str) -> tuple[Scope, str]:
    try:
        parsed = Scope(scope)
    except ValueError:
        raise BadRequest(f"scope: must be one of {', '.join(s.value for s in Scope)}", field="scope") from None
    if not _PRINCIPAL_ID.match(principal_id):
        raise BadRequest("principalId: 1-255 characters, no '#', not starting with a space", field="principalId")
    return parsed, principal_id


def _view(scope: Scope, principal_id: str, item: dict[str, Any] | None) -> PrincipalLimits:
    from chalicelib.contracts.limits import PrincipalLimits
    from chalicelib.limits.store import override_of
    from chalicelib.settings import get_settings

    override = override_of(item) if item else None
    return PrincipalLimits(
        scope=scope,
        principal_id=principal_id,
        override=override.stored() if override else None,
        effective=get_settings().limits.of(scope).merged(override),
        updated_by=item.get("updatedBy") if item else None,
        updated_at=item.get("updatedAt") if item else None,
    )


@limits_bp.operation(
    "/",
    "GET",
    authorizer=lisa_authorizer,
    query=f"{_CONTRACTS}:ScopeQuery",
    responses={200: f"{_CONTRACTS}:LimitOverrideList"},
    errors=(403,),
    tag="limits",
)
def list_limit_overrides() -> LimitOverrideList:
    """Every limit override (admin), of one scope when `scope` is given."""
    from chalicelib.contracts.limits import LimitOverrideList, ScopeQuery

    require_admin(limits_bp.current_request)
    scope = limits_bp.query(ScopeQuery).scope
    items = _store().list(scope)
    views = [_view(Scope(item["scope"]), str(item["principalId"]), item) for item in items]
    return LimitOverrideList(overrides=views)


@limits_bp.operation(
    "/defaults",
    "GET",
    authorizer=lisa_authorizer,
    responses={200: f"{_CONTRACTS}:LimitsConfig"},
    errors=(403,),
    tag="limits",
)
def get_limit_defaults() -> LimitsConfig:
    """The defaults of each scope (config.yaml `limits`): what applies to a principal without an override (admin)."""
    from chalicelib.settings import get_settings

    require_admin(limits_bp.current_request)
    return get_settings().limits


@limits_bp.operation(
    "/{scope}/{principalId}", "GET", authorizer=lisa_authorizer, responses={200: LIMITS}, errors=(403,), tag="limits"
)
def get_limits(scope: str, principalId: str) -> PrincipalLimits:
    """One principal's override (null when none) and the limits that apply to it in its scope (admin)."""
    require_admin(limits_bp.current_request)
    parsed, principal_id = _principal(scope, principalId)
    return _view(parsed, principal_id, _store().get(parsed, principal_id))


@limits_bp.operation(
    "/{scope}/{principalId}",
    "PUT",
    authorizer=lisa_authorizer,
    body=f"{_CONTRACTS}:LimitOverride",
    responses={200: LIMITS},
    errors=(403,),
    tag="limits",
)
def put_limits(scope: str, principalId: str) -> PrincipalLimits:
    """Set (replace) a principal's override (admin): the kinds it names replace the defaults, null lifts one."""
    from chalicelib.contracts.limits import LimitOverride
    from chalicelib.sessions.items import timestamp

    admin = require_admin(limits_bp.current_request)
    parsed, principal_id = _principal(scope, principalId)
    override = limits_bp.body(LimitOverride)
    item = _store().put(parsed, principal_id, override, admin.username, timestamp())
    logger.info("limits set", scope=parsed.value, principal_id=principal_id, by=admin.username)
    return _view(parsed, principal_id, item)


@limits_bp.operation(
    "/{scope}/{principalId}",
    "DELETE",
    authorizer=lisa_authorizer,
    responses={200: LIMITS},
    errors=(403, 404),
    tag="limits",
)
def delete_limits(scope: str, principalId: str) -> PrincipalLimits:
    """Remove a principal's override (admin): the defaults apply again; 404 when none was set."""
    admin = require_admin(limits_bp.current_request)
    parsed, principal_id = _principal(scope, principalId)
    _store().delete(parsed, principal_id)
    logger.info("limits override removed", scope=parsed.value, principal_id=principal_id, by=admin.username)
    return _view(parsed, principal_id, None)
