"""A Chalice app whose per-request state belongs to the request.

Chalice keeps `current_request` and `lambda_context` as plain attributes of the one app object, and Blueprints read
them through it. Lambda serves one request per process at a time, so that is safe there; a server that runs the app
on a thread pool (LISA's local front door) lets a request read another request's object: its body, its authorizer
context, its caller. Here both live in context variables: each thread (or task) sees only the request it is
serving, and the reference is dropped when the request is answered. In Lambda this changes nothing.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from chalice.app import Chalice, Request


class ConcurrentChalice(Chalice):
    """`Chalice` with `current_request` / `lambda_context` per thread or task instead of per app."""

    def __init__(self, app_name: str, **kwargs: Any) -> None:
        self._request_var: ContextVar[Request | None] = ContextVar(f"{app_name}.current_request", default=None)
        self._context_var: ContextVar[Any] = ContextVar(f"{app_name}.lambda_context", default=None)
        super().__init__(app_name, **kwargs)

    @property  # type: ignore[override]
    def current_request(self) -> Request | None:
        """This thread's request (Chalice keeps one on the app, which threads would share)."""
        return self._request_var.get()

    @current_request.setter
    def current_request(self, value: Request | None) -> None:
        self._request_var.set(value)

    @property  # type: ignore[override]
    def lambda_context(self) -> Any:
        """This thread's Lambda context."""
        return self._context_var.get()

    @lambda_context.setter
    def lambda_context(self, value: Any) -> None:
        self._context_var.set(value)

    def __call__(self, event: Any, context: Any) -> dict[str, Any]:
        """Handle one event, then forget its request."""
        try:
            return super().__call__(event, context)
        finally:  # a pooled thread must not keep the last request (and its body) alive
            self._request_var.set(None)
            self._context_var.set(None)
