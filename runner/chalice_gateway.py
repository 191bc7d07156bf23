"""Chalice's local API Gateway, made to behave like LISA's deployed REQUEST authorizer.

In AWS the authorizer is deployed as a REQUEST authorizer whose identity is the request headers, so both
`Authorization: Bearer ...` and `Api-Key: ...` reach it. Chalice's LocalGateway only knows TOKEN authorizers and
refuses a request without an `Authorization` header before the authorizer runs; here the authorizer gets the
request event (with its headers) either way, and decides itself.
"""

from __future__ import annotations

import json
from typing import Any

from chalice.app import Chalice
from chalice.config import Config
from chalice.local import LambdaContext, LocalGateway, LocalGatewayAuthorizer, NotAuthorizedError


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


def make_gateway(app: Chalice, stage: str = "dev") -> LocalGateway:
    """A LocalGateway for `app` whose authorizer sees every header, as the deployed REQUEST authorizer does."""
    gateway = LocalGateway(app, Config(chalice_stage=stage))
    gateway._authorizer = RequestAuthorizerGateway(app)
    return gateway
