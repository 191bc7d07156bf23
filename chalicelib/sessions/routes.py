"""Sessions API (mounted at /sessions). Thin: authenticate, validate, call the store, map its errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from chalice.app import (
    BadRequestError,
    Blueprint,
    ChaliceViewError,
    ConflictError,
    NotFoundError,
    Response,
)

from chalicelib.auth.routes import current_principal, lisa_authorizer
from chalicelib.sessions.errors import SessionError, SessionNotFound, SessionTooLarge, VersionConflict

if TYPE_CHECKING:
    from pydantic import BaseModel

    from chalicelib.sessions.store import SessionStore

    M = TypeVar("M", bound=BaseModel)

sessions_bp = Blueprint(__name__)


class PayloadTooLargeError(ChaliceViewError):
    """413: the session would exceed its size limit."""

    STATUS_CODE = 413


def _user() -> str:
    return current_principal(sessions_bp.current_request).owner_id  # never the mutable, shared username


def _store() -> SessionStore:
    from chalicelib.sessions.store import get_store  # boto3 loads on first use, not at cold start

    return get_store()


def _parse(model: type[M]) -> M:
    from chalicelib.validation import parse_request

    return parse_request(model, sessions_bp.current_request)


def _wire(model: BaseModel) -> dict[str, Any]:
    from chalicelib.sessions.models import wire  # pydantic loads on first use, not at cold start

    return wire(model)


def _session_id(raw: str) -> str:
    from chalicelib.sessions.models import SESSION_ID_PATTERN

    if not SESSION_ID_PATTERN.match(raw):
        raise BadRequestError("sessionId: must be 1-128 characters of letters, digits, '-' or '_'")
    return raw


@contextmanager
def _store_errors() -> Iterator[None]:
    """Map the store's errors to HTTP errors (the conflict carries the current version for the client)."""
    try:
        yield
    except SessionNotFound as error:
        raise NotFoundError(error.message) from None
    except VersionConflict as error:
        raise ConflictError(error.message) from None
    except SessionTooLarge as error:
        raise PayloadTooLargeError(error.message) from None
    except SessionError as error:
        raise BadRequestError(error.message) from None


def _json(body: Any, status: int = 200) -> Response:
    return Response(body=body, status_code=status, headers={"Content-Type": "application/json"})


@sessions_bp.route("/", methods=["GET"], authorizer=lisa_authorizer)
def list_sessions() -> Response:
    """The caller's sessions (no messages), most recently updated first."""
    sessions = _store().list_sessions(_user())
    return _json({"sessions": [_wire(s) for s in sessions]})


@sessions_bp.route("/", methods=["DELETE"], authorizer=lisa_authorizer)
def delete_all_sessions() -> Response:
    """Delete every session of the caller."""
    return _json({"deleted": _store().delete_all(_user())})


@sessions_bp.route("/{sessionId}", methods=["GET"], authorizer=lisa_authorizer)
def get_session(sessionId: str) -> Response:
    """One of the caller's sessions with its messages."""
    with _store_errors():
        return _json(_wire(_store().get(_user(), _session_id(sessionId))))


@sessions_bp.route("/{sessionId}", methods=["PUT"], authorizer=lisa_authorizer)
def put_session(sessionId: str) -> Response:
    """Create (body without `version`: 201) or update (body with the version it is based on: 200, 409 if stale)."""
    session_id = _session_id(sessionId)
    from chalicelib.sessions.models import SessionPut

    body = _parse(SessionPut)
    with _store_errors():
        session, created = _store().put(_user(), session_id, body)
    return _json(_wire(session), 201 if created else 200)


@sessions_bp.route("/{sessionId}/messages", methods=["POST"], authorizer=lisa_authorizer)
def append_messages(sessionId: str) -> Response:
    """Atomically append messages; returns the session summary and where the first appended message landed."""
    session_id = _session_id(sessionId)
    from chalicelib.sessions.models import AppendMessages

    body = _parse(AppendMessages)
    with _store_errors():
        summary, first_index = _store().append(_user(), session_id, body.messages)
    return _json({**_wire(summary), "firstIndex": first_index})


@sessions_bp.route("/{sessionId}", methods=["DELETE"], authorizer=lisa_authorizer)
def delete_session(sessionId: str) -> Response:
    """Delete one of the caller's sessions."""
    session_id = _session_id(sessionId)
    with _store_errors():
        _store().delete(_user(), session_id)
    return _json({"deleted": session_id})
