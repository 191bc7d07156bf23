"""Seed and update the registry from config.yaml's `ecsModels` (those with `deploy: true`).

Ownership: config.yaml owns a synced model's definition (hfModelId, container, type, containerConfig,
instanceType, streaming, defaultModelKwargs, endpointUrl); the running system owns its `status`/`statusReason`
(set by weight staging, deployments or an admin). Config wins over API edits of the fields it owns, and a synced
record is marked `source: config` (an API-created record of the same name is taken over).

Status rule:
- a new model starts `InService` if its endpoint is known (the config entry's `endpointUrl`, or the `endpoints`
  map the local runner passes, keyed by modelName, which takes precedence), otherwise `Creating`;
- if config changed how the model is deployed (hfModelId, modelType, inferenceContainer, containerConfig,
  instanceType, endpointUrl) the status is decided again by the same rule, with a reason naming what changed;
- if only serving fields changed (streaming, defaultModelKwargs), or nothing did, the status is left alone.

Idempotent: a second run with the same config and endpoints writes nothing and reports every model unchanged.
Config-managed records whose model left the config (or has `deploy: false`) are reported as orphaned and left
alone, or deleted with `prune=True`; records created through the API are never touched unless config names them.
Every config entry is validated before anything is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger
from pydantic import ValidationError
from pydantic.alias_generators import to_camel

from chalicelib.config import EcsModel, LisaConfig, format_validation_error
from chalicelib.registry.errors import InvalidModel, ModelConflict, ModelNotFound
from chalicelib.registry.models import CreateModelRequest, ModelRecord, ModelStatus
from chalicelib.registry.store import ModelStore

logger = Logger(service="lisa-registry")

DEPLOYMENT_FIELDS = (
    "hf_model_id",
    "model_type",
    "inference_container",
    "container_config",
    "instance_type",
    "endpoint_url",
)
"""Fields whose change means the model must be (re)deployed: its status is decided again."""
_WAITING = "waiting for weights to be staged and the model service to start"


@dataclass
class SyncResult:
    """Model names by what the sync did to them."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    orphaned: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """Whether the sync wrote anything (then the router's cache must be refreshed)."""
        return bool(self.created or self.updated or self.pruned)

    def to_dict(self) -> dict[str, list[str]]:
        """The result as JSON (for `--json` output and logs)."""
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "orphaned": self.orphaned,
            "pruned": self.pruned,
        }


def _request(model: EcsModel, endpoint: str | None) -> CreateModelRequest:
    try:
        return CreateModelRequest.model_validate(
            {
                "modelName": model.model_name,
                "hfModelId": model.model_id,
                "inferenceContainer": model.inference_container,
                "modelType": model.model_type,
                "endpointUrl": endpoint,
                "streaming": model.is_streaming,
                "defaultModelKwargs": model.default_model_kwargs,
                "containerConfig": model.container_config,
                "instanceType": model.instance_type,
            }
        )
    except ValidationError as error:
        problems = format_validation_error(error).replace("\n", "; ")
        raise InvalidModel(f"ecsModels {model.model_name!r}: {problems}") from None


def _new_status(endpoint: str | None) -> ModelStatus:
    return ModelStatus.IN_SERVICE if endpoint else ModelStatus.CREATING


def _changes(current: ModelRecord, desired: Mapping[str, Any]) -> dict[str, Any]:
    """What to write so `current` matches config (empty when it already does)."""
    changes = {name: value for name, value in desired.items() if getattr(current, name) != value}
    changes.pop("model_id", None)
    changes.pop("model_name", None)
    redeploy = [name for name in DEPLOYMENT_FIELDS if name in changes]
    if redeploy:
        status = _new_status(desired["endpoint_url"])
        changes["status"] = status
        changes["status_reason"] = (
            None
            if status is ModelStatus.IN_SERVICE
            else f"config.yaml changed {', '.join(to_camel(n) for n in redeploy)}; waiting for deployment"
        )
    if current.source != "config":
        changes["source"] = "config"
    return changes


def _bring_in_line(store: ModelStore, name: str, desired: Mapping[str, Any]) -> bool:
    """Update the record to match `desired` (retrying lost races); True if anything was written."""
    written: list[Mapping[str, Any]] = []

    def change(current: ModelRecord) -> dict[str, Any]:
        changes = _changes(current, desired)
        written[:] = [changes]
        return changes

    store.modify(name, change)
    return bool(written and written[0])


def sync_models(
    config: LisaConfig,
    endpoints: Mapping[str, str] | None = None,
    *,
    prune: bool = False,
    store: ModelStore | None = None,
) -> SyncResult:
    """Make the registry match config.yaml's deployed `ecsModels` (see the module docstring for the rules)."""
    store = store or ModelStore()
    endpoints = endpoints or {}
    unknown = sorted(set(endpoints) - {m.model_name for m in config.ecs_models if m.deploy})
    if unknown:
        raise InvalidModel(f"endpoints given for models not deployed by config: {', '.join(unknown)}")
    requests = [_request(m, endpoints.get(m.model_name) or m.endpoint_url) for m in config.ecs_models if m.deploy]

    result = SyncResult()
    for request in requests:
        name = request.model_name
        desired = request.record_fields()
        try:
            store.create(request, source="config", status_reason=None if request.endpoint_url else _WAITING)
            result.created.append(name)
            continue
        except ModelConflict:
            pass  # exists: bring it in line below
        (result.updated if _bring_in_line(store, name, desired) else result.unchanged).append(name)

    wanted = {r.model_name for r in requests}
    for record in store.list():
        if record.source != "config" or record.model_name in wanted:
            continue
        if not prune:
            result.orphaned.append(record.model_name)
            continue
        try:
            store.delete(record.model_id, expected_version=record.version)
            result.pruned.append(record.model_name)
        except (ModelNotFound, ModelConflict) as error:
            logger.warning("not pruned", model_id=record.model_id, reason=error.message)
            result.orphaned.append(record.model_name)
    logger.info("registry synced from config", extra={"sync": result.to_dict()})
    return result
