"""Chalice's local API Gateway, made to behave like LISA's deployed REST API.

- The authorizer: in AWS it is deployed as a REQUEST authorizer whose identity is the request headers, so both
  `Authorization: Bearer ...` and `Api-Key: ...` reach it. Chalice's LocalGateway only knows TOKEN authorizers and
  refuses a request without an `Authorization` header before the authorizer runs; here the authorizer gets the
  request event (with its headers) either way, and decides itself.
- Repeated headers: the event carries `multiValueHeaders` beside `headers` (last value), as API Gateway's does, so
  the authorizer sees a credential sent twice.
- No route for a method and path: `404 {"message": NO_ROUTE}`, as LISA's deployed MISSING_AUTHENTICATION_TOKEN
  gateway response answers (chalice's own answer is a 403 that quotes the caller's Authorization header).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from chalice.app import Chalice
from chalice.config import Config
from chalice.local import (
    LambdaContext,
    LocalGateway,
    LocalGatewayAuthorizer,
    LocalGatewayException,
    NotAuthorizedError,
)

from chalicelib.gateway import NO_ROUTE


class RequestHeaders(dict[str, str]):
    """A request's headers by lower-case name, last value winning (API Gateway's `headers`), with every value of
    each name kept in `multi` (its `multiValueHeaders`)."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        super().__init__()
        self.multi: dict[str, list[str]] = {}
        for name, value in pairs:
            lowered = name.lower()
            self[lowered] = value
            self.multi.setdefault(lowered, []).append(value)


class NoRouteError(LocalGatewayException):
    """A path no route matches: a 404 in the gateway's error shape, as API Gateway answers it."""

    CODE = 404


class RequestAuthorizerGateway(LocalGatewayAuthorizer):
    """Runs the app's authorizer with a REQUEST-style event (all headers), never rejecting up front."""

    def _prepare_authorizer_event(
        self, arn: str, lambda_event: dict[str, Any], lambda_context: LambdaContext
    ) -> dict[str, Any]:
        event = dict(lambda_event)
        headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
        event["headers"] = headers
        event["type"] = "REQUEST"
        event["authorizationToken"] = headers.get("authorization", "")
        event["methodArn"] = arn
        return event

    def _check_can_invoke_view_function(self, arn: str, auth_result: dict[str, Any]) -> bool:
        # As LISA's deployed ACCESS_DENIED gateway response: a deny is 401 {"message": context.message}.
        if super()._check_can_invoke_view_function(arn, auth_result):
            return True
        message = (auth_result.get("context") or {}).get("message") or "Unauthorized"
        raise NotAuthorizedError(
            {"x-amzn-ErrorType": "UnauthorizedException"}, json.dumps({"message": message}).encode()
        )


class LisaLocalGateway(LocalGateway):
    """LocalGateway with the deployed API's answers for unrouted requests and its multi-value headers."""

    def _generate_lambda_event(
        self, method: str, path: str, headers: dict[str, Any], body: bytes | None
    ) -> dict[str, Any]:
        try:
            event: dict[str, Any] = super()._generate_lambda_event(method, path, headers, body)
        except ValueError:  # no such path
            raise _no_route() from None
        methods = self._app_object.routes[event["requestContext"]["resourcePath"]]
        if method not in methods and method != "OPTIONS":  # OPTIONS: chalice answers CORS preflights itself
            raise _no_route()
        if isinstance(headers, RequestHeaders):
            event["multiValueHeaders"] = {name: list(values) for name, values in headers.multi.items()}
        else:
            event["multiValueHeaders"] = {k.lower(): [v] for k, v in headers.items()}
        return event


def _no_route() -> NoRouteError:
    return NoRouteError({"x-amzn-ErrorType": "NotFoundException"}, json.dumps({"message": NO_ROUTE}).encode())


def make_gateway(app: Chalice, stage: str = "dev") -> LocalGateway:
    """A LocalGateway for `app` that behaves as LISA's deployed API does (authorizer, refusals, headers)."""
    gateway = LisaLocalGateway(app, Config(chalice_stage=stage))
    gateway._authorizer = RequestAuthorizerGateway(app)
    return gateway
