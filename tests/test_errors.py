"""The one error model: a LisaError's status and type, and the control plane's one serializer of it."""

from __future__ import annotations

import json

import pytest

from chalicelib.apidocs.operations import error_response
from chalicelib.auth.errors import AuthError
from chalicelib.errors import LisaError, NotFound
from chalicelib.rag.errors import BackendUnavailable, RagError, RepositoryNotFound, UnusableDocument
from chalicelib.registry.errors import ModelConflict, ModelNotFound, RegistryError
from chalicelib.sessions.errors import SessionError, SessionTooLarge, VersionConflict
from chalicelib.staging.errors import StagingError, StagingInProgress, StagingNotConfigured


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (RepositoryNotFound("docs"), 404, "NotFoundError"),
        (UnusableDocument("empty"), 422, "UnprocessableEntityError"),
        (BackendUnavailable("down"), 503, "ServiceUnavailableError"),
        (RagError("bad"), 400, "BadRequestError"),
        (ModelNotFound("m"), 404, "NotFoundError"),
        (ModelConflict("moved on", 3), 409, "ConflictError"),
        (SessionError("bad"), 400, "BadRequestError"),
        (VersionConflict("changed", 2), 409, "ConflictError"),
        (SessionTooLarge("too big", 10, 5), 413, "PayloadTooLargeError"),
        (StagingInProgress("busy"), 409, "ConflictError"),
        (StagingNotConfigured("no state machine"), 503, "ServiceUnavailableError"),
        (AuthError("no", status=403), 403, "ForbiddenError"),
    ],
)
def test_each_error_answers_its_status_in_chalices_shape(error: LisaError, status: int, code: str) -> None:
    response = error_response(error).to_dict()
    assert response["statusCode"] == status
    assert json.loads(response["body"]) == {"Code": code, "Message": error.message}


def test_the_status_class_wins_over_the_family_base() -> None:
    assert isinstance(RepositoryNotFound("x"), RagError)
    assert isinstance(RepositoryNotFound("x"), NotFound)
    assert RepositoryNotFound("x").status == 404
    assert RagError("x").status == 400


def test_family_bases_without_a_refusal_status_stay_server_errors() -> None:
    """A bare RegistryError or StagingError is a bug if it reaches a route: the wrapper re-raises 500s to Chalice."""
    assert RegistryError("x").status == 500
    assert StagingError("x").status == 500


def test_an_instance_may_override_the_class_status() -> None:
    assert AuthError("invalid").status == 401
    assert AuthError("cannot check now", 503).status == 503
    assert repr(AuthError("no", 400)) == "AuthError('no', status=400)"
