"""Prompt-templates API (mounted at /prompt-templates). Thin: authenticate, validate, call the store."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.apidocs.operations import ApiBlueprint, Link, Reply
from chalicelib.auth.routes import current_principal, lisa_authorizer

if TYPE_CHECKING:
    from chalicelib.auth.principal import Principal
    from chalicelib.prompt_templates.models import PromptTemplate, TemplateDeleted, TemplateList
    from chalicelib.prompt_templates.store import TemplateStore

prompt_templates_bp = ApiBlueprint(__name__)


def _principal() -> Principal:
    return current_principal(prompt_templates_bp.current_request)


def _store() -> TemplateStore:
    from chalicelib.prompt_templates.store import get_store  # boto3 loads on first use, not at cold start

    return get_store()


def _template_id(raw: str) -> str:
    from chalicelib.prompt_templates.models import TEMPLATE_ID_PATTERN
    from chalicelib.validation import path_id

    return path_id(raw, TEMPLATE_ID_PATTERN, "templateId", "32 lowercase hex digits")


_MODELS = "chalicelib.prompt_templates.models"
TEMPLATE = f"{_MODELS}:PromptTemplate"
_CREATED_ID = {"templateId": "$response.body#/templateId"}


@prompt_templates_bp.operation(
    "/",
    "GET",
    authorizer=lisa_authorizer,
    query=f"{_MODELS}:TemplatesQuery",
    responses={200: f"{_MODELS}:TemplateList"},
    tag="prompt-templates",
)
def list_prompt_templates() -> TemplateList:
    """The templates the caller may use: their own, those shared with one of their groups, and the global ones."""
    from chalicelib.prompt_templates.models import TemplateList, TemplatesQuery

    query = prompt_templates_bp.query(TemplatesQuery)
    return TemplateList(templates=_store().list_visible(_principal(), query.kind))


@prompt_templates_bp.operation(
    "/",
    "POST",
    authorizer=lisa_authorizer,
    body=f"{_MODELS}:TemplateWrite",
    responses={201: TEMPLATE},
    errors=(403,),
    links={
        "GetPromptTemplate": Link("getPromptTemplate", _CREATED_ID),
        "PutPromptTemplate": Link("putPromptTemplate", _CREATED_ID),
        "DeletePromptTemplate": Link("deletePromptTemplate", _CREATED_ID),
    },
    tag="prompt-templates",
)
def create_prompt_template() -> Reply:
    """Create a template owned by the caller (403: global by a non-admin, or a group the caller is not in)."""
    from chalicelib.prompt_templates.models import TemplateWrite

    body = prompt_templates_bp.body(TemplateWrite)
    return Reply(_store().create(_principal(), body), 201)


@prompt_templates_bp.operation(
    "/{templateId}",
    "GET",
    authorizer=lisa_authorizer,
    responses={200: TEMPLATE},
    errors=(404,),
    tag="prompt-templates",
)
def get_prompt_template(templateId: str) -> PromptTemplate:
    """One template the caller may see (404 for any other, so none is revealed)."""
    return _store().get(_principal(), _template_id(templateId))


@prompt_templates_bp.operation(
    "/{templateId}",
    "PUT",
    authorizer=lisa_authorizer,
    body=f"{_MODELS}:TemplateWrite",
    responses={200: TEMPLATE},
    errors=(403, 404),
    tag="prompt-templates",
)
def put_prompt_template(templateId: str) -> PromptTemplate:
    """Replace a template (its owner or an admin; 403 if visible but not theirs)."""
    from chalicelib.prompt_templates.models import TemplateWrite

    template_id = _template_id(templateId)
    body = prompt_templates_bp.body(TemplateWrite)
    return _store().replace(_principal(), template_id, body)


@prompt_templates_bp.operation(
    "/{templateId}",
    "DELETE",
    authorizer=lisa_authorizer,
    responses={200: f"{_MODELS}:TemplateDeleted"},
    errors=(403, 404),
    tag="prompt-templates",
)
def delete_prompt_template(templateId: str) -> TemplateDeleted:
    """Delete a template (its owner or an admin)."""
    from chalicelib.prompt_templates.models import TemplateDeleted

    template_id = _template_id(templateId)
    _store().delete(_principal(), template_id)
    return TemplateDeleted(deleted=template_id)
