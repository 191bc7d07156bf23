"""What LISA's API gateway answers itself, before any handler: the same words deployed (gpu_stack's gateway
responses) and locally (runner/chalice_gateway.py, the front door). Its refusals are `{"message": ...}`."""

from __future__ import annotations

# A method and path no route serves (API Gateway's MISSING_AUTHENTICATION_TOKEN response, overridden): a 404 that
# quotes nothing of the request (API Gateway's own wording quotes the caller's Authorization header).
NO_ROUTE = "no route serves this method and path"
