"""Sessions API (mounted at /sessions). Thin: authenticate, validate, call the store, map its errors."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.apidocs.operations import ApiBlueprint, Link, Reply
from chalicelib.auth.routes import current_principal, lisa_authorizer

if TYPE_CHECKING:
    from chalicelib.sessions.models import MessagesAppended, Session, SessionDeleted, SessionList, SessionsDeleted
    from chalicelib.sessions.store import SessionStore

sessions_bp = ApiBlueprint(__name__)


def _user() -> str:
    return current_principal(sessions_bp.current_request).owner_id  # never the mutable, shared username


def _store() -> SessionStore:
    from chalicelib.sessions.store import get_store  # boto3 loads on first use, not at cold start

    return get_store()


def _session_id(raw: str) -> str:
    from chalicelib.sessions.models import SESSION_ID_PATTERN
    from chalicelib.validation import path_id

    return path_id(raw, SESSION_ID_PATTERN, "sessionId", "1-128 characters of letters, digits, '-' or '_'")


_MODELS = "chalicelib.sessions.models"
SESSION = f"{_MODELS}:Session"
_SESSION_ID = {"sessionId": "$request.path.sessionId"}
_SESSION_LINKS = {
    "GetSession": Link("getSession", _SESSION_ID),
    "AppendMessages": Link("appendMessages", _SESSION_ID),
    "DeleteSession": Link("deleteSession", _SESSION_ID),
}


@sessions_bp.operation(
    "/", "GET", authorizer=lisa_authorizer, responses={200: f"{_MODELS}:SessionList"}, tag="sessions"
)
def list_sessions() -> SessionList:
    """The caller's sessions (no messages), most recently updated first."""
    from chalicelib.sessions.models import SessionList

    return SessionList(sessions=_store().list_sessions(_user()))


@sessions_bp.operation(
    "/", "DELETE", authorizer=lisa_authorizer, responses={200: f"{_MODELS}:SessionsDeleted"}, tag="sessions"
)
def delete_all_sessions() -> SessionsDeleted:
    """Delete every session of the caller."""
    from chalicelib.sessions.models import SessionsDeleted

    return SessionsDeleted(deleted=_store().delete_all(_user()))


@sessions_bp.operation(
    "/{sessionId}", "GET", authorizer=lisa_authorizer, responses={200: SESSION}, errors=(404,), tag="sessions"
)
def get_session(sessionId: str) -> Session:
    """One of the caller's sessions with its messages."""
    return _store().get(_user(), _session_id(sessionId))


@sessions_bp.operation(
    "/{sessionId}",
    "PUT",
    authorizer=lisa_authorizer,
    body=f"{_MODELS}:SessionPut",
    responses={200: SESSION, 201: SESSION},
    errors=(404, 409, 413),
    links=_SESSION_LINKS,
    tag="sessions",
)
def put_session(sessionId: str) -> Reply:
    """Create (body without `version`: 201) or update (body with the version it is based on: 200, 409 if stale)."""
    session_id = _session_id(sessionId)
    from chalicelib.sessions.models import SessionPut

    body = sessions_bp.body(SessionPut)
    session, created = _store().put(_user(), session_id, body)
    return Reply(session, 201 if created else 200)


@sessions_bp.operation(
    "/{sessionId}/messages",
    "POST",
    authorizer=lisa_authorizer,
    body=f"{_MODELS}:AppendMessages",
    responses={200: f"{_MODELS}:MessagesAppended"},
    errors=(404, 413),
    tag="sessions",
)
def append_messages(sessionId: str) -> MessagesAppended:
    """Atomically append messages; returns the session summary and where the first appended message landed."""
    session_id = _session_id(sessionId)
    from chalicelib.sessions.models import AppendMessages, MessagesAppended

    body = sessions_bp.body(AppendMessages)
    summary, first_index = _store().append(_user(), session_id, body.messages)
    return MessagesAppended.model_validate({**summary.model_dump(), "first_index": first_index})


@sessions_bp.operation(
    "/{sessionId}",
    "DELETE",
    authorizer=lisa_authorizer,
    responses={200: f"{_MODELS}:SessionDeleted"},
    errors=(404,),
    tag="sessions",
)
def delete_session(sessionId: str) -> SessionDeleted:
    """Delete one of the caller's sessions."""
    from chalicelib.sessions.models import SessionDeleted

    session_id = _session_id(sessionId)
    _store().delete(_user(), session_id)
    return SessionDeleted(deleted=session_id)
