"""The Lambda task handlers of the model lifecycle workflow (`stepfunctions/model_lifecycle.json`).

Every AWS call the workflow makes is in here, through boto3 (so locally the ASL needs nothing from the Lambda
shim but Invoke). Every step is idempotent: resources have deterministic names (`infra.Names`) and each step
first looks for what an earlier attempt made. Each step records itself on the model (`statusStep`, history)
before acting, so a failure names it; `roll_back` undoes what the execution did and records `Failed`.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError
from pydantic import ValidationError

from chalicelib import aws
from chalicelib.config import EcsModel, format_validation_error
from chalicelib.contracts.lifecycle import (
    Failure,
    Finished,
    Health,
    LifecycleInput,
    StagingProgress,
    TaskEvent,
    Waiting,
)
from chalicelib.lifecycle import infra
from chalicelib.lifecycle.errors import (
    EngineFailed,
    HealthTimeout,
    InvalidSpec,
    NotConfigured,
    TransientLifecycleError,
    WeightsNotStaged,
)
from chalicelib.registry.errors import ModelNotFound
from chalicelib.registry.models import ModelRecord, ModelStatus
from chalicelib.registry.store import ModelStore
from chalicelib.settings import get_settings

logger = Logger(service="lisa-lifecycle")

_TRANSIENT_CODES = frozenset({"Throttling", "ThrottlingException", "DuplicateListener", "ResourceInUse"})


# -- the model and where it goes ----------------------------------------------------------------------------
def hosted_spec(record: ModelRecord) -> EcsModel:
    """The record as an `ecsModels` entry: what infra describes (the same schema config.yaml models use)."""
    if record.hosting is None or record.container_config is None:
        raise InvalidSpec(f"model {record.model_id!r} is not hosted by LISA (it has no hosting or containerConfig)")
    scaling = record.hosting.scaling
    try:
        return EcsModel.model_validate(
            {
                "modelName": record.model_name,
                "modelId": record.hf_model_id,
                "instanceType": record.instance_type or "g5.xlarge",
                "modelType": record.model_type,
                "inferenceContainer": record.inference_container,
                "containerConfig": record.container_config.model_dump(by_alias=True, exclude_none=True),
                "autoScalingConfig": {"minCapacity": scaling.min_capacity, "maxCapacity": scaling.max_capacity},
                "streaming": record.streaming,
                "defaultModelKwargs": record.default_model_kwargs,
            }
        )
    except ValidationError as error:
        raise InvalidSpec(format_validation_error(error).replace("\n", "; ")) from None


def desired_count(record: ModelRecord) -> int:
    """Tasks the model should run: its scaling when enabled, none when stopped."""
    hosting = record.hosting
    return hosting.scaling.running if hosting is not None and hosting.enabled else 0


def placement() -> infra.Placement:
    """Where run-time models go, from the settings (NotConfigured naming what is missing)."""
    settings = get_settings()
    required = {
        "LISA_MODEL_CLUSTER": settings.model_cluster,
        "LISA_MODEL_VPC_ID": settings.model_vpc_id,
        "LISA_MODEL_LOAD_BALANCER_ARN": settings.model_load_balancer_arn,
    }
    missing = [name for name, value in required.items() if not value]
    if missing:
        raise NotConfigured(f"run-time models are not configured here: {', '.join(missing)} unset")
    return infra.Placement(
        cluster=str(settings.model_cluster),
        vpc_id=str(settings.model_vpc_id),
        load_balancer_arn=str(settings.model_load_balancer_arn),
        capacity_provider=settings.model_capacity_provider,
        models_bucket=settings.models_bucket,
        task_role_arn=settings.model_task_role_arn,
        execution_role_arn=settings.model_execution_role_arn,
        log_group=settings.model_log_group,
        region=settings.region,
        weights_image=settings.model_weights_image or infra.WEIGHTS_IMAGE,
        prefix=f"{settings.deployment_name}-{settings.stage}",
    )


def _names(model_id: str, where: infra.Placement) -> infra.Names:
    return infra.Names.of(where.prefix, model_id)


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _call(method: Any, **kwargs: Any) -> Any:
    """One AWS call; throttling and races another attempt will win become TransientLifecycleError (retried)."""
    try:
        return method(**kwargs)
    except ClientError as error:
        if _code(error) in _TRANSIENT_CODES:
            raise TransientLifecycleError(f"{_code(error)}: {error}") from None
        raise


# -- registry ------------------------------------------------------------------------------------------------
def _enter(event: TaskEvent, status: ModelStatus | None = None) -> ModelRecord:
    """Record that the model is in `event.step` (and `status`); the record as it is now."""

    def change(current: ModelRecord) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        if event.step and current.status_step != event.step:
            changes["status_step"] = event.step
        if status is not None and current.status is not status:
            changes["status"] = status
            changes["status_step"] = event.step or None
        return changes

    return ModelStore().modify(event.state().model_id, change)


# -- ECS / ELB helpers (idempotent) --------------------------------------------------------------------------
def _service(ecs: Any, where: infra.Placement, names: infra.Names) -> dict[str, Any] | None:
    """The model's ECS service if it is active."""
    try:
        found = ecs.describe_services(cluster=where.cluster, services=[names.service]).get("services", [])
    except ClientError as error:
        if _code(error) in ("ClusterNotFoundException", "ServiceNotFoundException"):
            return None
        raise
    active = [s for s in found if s.get("status") == "ACTIVE"]
    return active[0] if active else None


def _task_definition(ecs: Any, spec: EcsModel, names: infra.Names, where: infra.Placement) -> str:
    """The latest revision of the model's family if it is this spec, else a new revision."""
    wanted = infra.task_definition(spec, names, where)
    try:
        latest = ecs.describe_task_definition(taskDefinition=names.family)["taskDefinition"]
    except ClientError:
        latest = None
    if latest is not None and latest.get("status") == "ACTIVE":
        model: dict[str, Any] = next((c for c in latest["containerDefinitions"] if c["name"] == "model"), {})
        same = model.get("dockerLabels", {}).get(infra.SPEC_LABEL) == infra.spec_label(spec)
        if same and model.get("image") == spec.container_config.image:
            return str(latest["taskDefinitionArn"])
    registered = _call(ecs.register_task_definition, **wanted)
    return str(registered["taskDefinition"]["taskDefinitionArn"])


def _target_group(elb: Any, spec: EcsModel | None, names: infra.Names, where: infra.Placement) -> str | None:
    """The model's target group (created when `spec` is given and there is none)."""
    try:
        groups = elb.describe_target_groups(Names=[names.target_group])["TargetGroups"]
        return str(groups[0]["TargetGroupArn"])
    except ClientError as error:
        if _code(error) != "TargetGroupNotFound":
            raise
    if spec is None:
        return None
    created = _call(elb.create_target_group, **infra.target_group(spec, names, where))
    return str(created["TargetGroups"][0]["TargetGroupArn"])


def _listeners(elb: Any, where: infra.Placement) -> list[dict[str, Any]]:
    pages = elb.get_paginator("describe_listeners").paginate(LoadBalancerArn=where.load_balancer_arn)
    return [listener for page in pages for listener in page.get("Listeners", [])]


def _forwards_to(listener: Mapping[str, Any], target_group_arn: str) -> bool:
    return any(a.get("TargetGroupArn") == target_group_arn for a in listener.get("DefaultActions", []))


def _listener_port(elb: Any, target_group_arn: str, where: infra.Placement) -> int:
    """The port of the model's listener on the shared balancer (created on the lowest free port)."""
    listeners = _listeners(elb, where)
    for listener in listeners:
        if _forwards_to(listener, target_group_arn):
            return int(listener["Port"])
    try:
        port = infra.free_listener_port(int(listener["Port"]) for listener in listeners)
    except ValueError as error:
        raise InvalidSpec(str(error)) from None
    _call(elb.create_listener, **infra.listener(target_group_arn, port, where))
    return port


def _balancer_dns(elb: Any, where: infra.Placement) -> str:
    balancers = elb.describe_load_balancers(LoadBalancerArns=[where.load_balancer_arn])["LoadBalancers"]
    return str(balancers[0]["DNSName"])


def ensure(record: ModelRecord, desired: int) -> tuple[str, str]:
    """Make the model's infrastructure exist as its record says, running `desired` tasks (idempotent):
    task definition, target group, listener, service. Returns (target group ARN, endpoint)."""
    spec, where = hosted_spec(record), placement()
    names = _names(record.model_id, where)
    ecs, elb = aws.client("ecs"), aws.client("elbv2")
    definition = _task_definition(ecs, spec, names, where)
    group = _target_group(elb, spec, names, where)
    assert group is not None  # created with a spec
    port = _listener_port(elb, group, where)
    current = _service(ecs, where, names)
    if current is None:
        parameters = infra.service(
            spec, names, where, task_definition_arn=definition, target_group_arn=group, desired=desired
        )
        _call(ecs.create_service, **parameters)
    elif current["taskDefinition"] != definition or current["desiredCount"] != desired:
        _call(  # a new deployment: its tasks (startedBy its id) are the ones WaitHealthy judges
            ecs.update_service,
            cluster=where.cluster,
            service=names.service,
            taskDefinition=definition,
            desiredCount=desired,
            forceNewDeployment=True,
        )
    return group, f"http://{_balancer_dns(elb, where)}:{port}"


def remove(model_id: str) -> list[str]:
    """Delete the model's service, listener, target group and task definitions, whichever exist (idempotent);
    returns what it removed."""
    where = placement()
    names = _names(model_id, where)
    ecs, elb = aws.client("ecs"), aws.client("elbv2")
    removed: list[str] = []
    if _service(ecs, where, names) is not None:
        _call(ecs.delete_service, cluster=where.cluster, service=names.service, force=True)
        removed.append("service")
    group = _target_group(elb, None, names, where)
    if group is not None:
        for listener in _listeners(elb, where):
            if _forwards_to(listener, group):
                _call(elb.delete_listener, ListenerArn=listener["ListenerArn"])
                removed.append("listener")
        _call(elb.delete_target_group, TargetGroupArn=group)
        removed.append("target group")
    try:  # every revision, newest first (not ListTaskDefinitions: IAM cannot scope it to the family)
        latest = ecs.describe_task_definition(taskDefinition=names.family)["taskDefinition"]
    except ClientError:
        latest = None
    for revision in range(int(latest["revision"]) if latest else 0, 0, -1):
        try:
            found = ecs.describe_task_definition(taskDefinition=f"{names.family}:{revision}")["taskDefinition"]
        except ClientError:
            continue
        if found.get("status") == "ACTIVE":
            _call(ecs.deregister_task_definition, taskDefinition=found["taskDefinitionArn"])
            if "task definition" not in removed:
                removed.append("task definition")
    return removed


def _service_tasks(ecs: Any, where: infra.Placement, names: infra.Names, status: str) -> list[dict[str, Any]]:
    """The service's tasks in `status` (RUNNING or STOPPED)."""
    arns = ecs.list_tasks(cluster=where.cluster, serviceName=names.service, desiredStatus=status).get("taskArns", [])
    if not arns:
        return []
    tasks = ecs.describe_tasks(cluster=where.cluster, tasks=arns).get("tasks", [])
    return [t for t in tasks if t.get("group") == f"service:{names.service}"]


def _primary_deployment(service: Mapping[str, Any]) -> str | None:
    """The id of the service's PRIMARY deployment (ECS starts its tasks with `startedBy` = this id)."""
    for deployment in service.get("deployments", []):
        if deployment.get("status", "PRIMARY") == "PRIMARY":
            return str(deployment.get("id"))
    return None


def _failed_task(
    ecs: Any, where: infra.Placement, names: infra.Names, service: Mapping[str, Any], since: float
) -> str | None:
    """Why a task of the service's current deployment stopped by itself since `since` (None if none did)."""
    deployment = _primary_deployment(service)
    for task in _service_tasks(ecs, where, names, "STOPPED"):
        reason = str(task.get("stoppedReason") or "")
        created = task.get("createdAt")
        if task.get("startedBy") != deployment or task.get("taskDefinitionArn") != service["taskDefinition"]:
            continue
        if created is not None and hasattr(created, "timestamp") and created.timestamp() < since - 1:
            continue
        if reason and not reason.startswith("Scaling activity"):
            return reason
    return None


# -- tasks ---------------------------------------------------------------------------------------------------
def validate(event: dict[str, Any]) -> dict[str, Any]:
    """Validate: the record describes a service this deployment can run."""
    task = TaskEvent.model_validate(event)
    record = _enter(task)
    spec = hosted_spec(record)
    where = placement()
    infra.task_definition(spec, _names(record.model_id, where), where)  # the engine's arguments build
    return {"hfModelId": spec.model_id, "inferenceContainer": spec.inference_container.value}


def stage_weights(event: dict[str, Any]) -> dict[str, Any]:
    """StageWeights: done if the weights are staged, else start (or join) a staging execution of them."""
    from chalicelib.staging.errors import StagingInProgress, StagingNotConfigured
    from chalicelib.staging.service import latest_status, read_manifest, start_staging

    task = TaskEvent.model_validate(event)
    record = _enter(task)
    if read_manifest(record.hf_model_id) is not None:
        return StagingProgress(done=True).wire()
    try:
        arn = start_staging(record.hf_model_id, model_ids=[]).execution_arn
    except StagingInProgress:
        running = latest_status(record.hf_model_id)
        if running is None:
            raise TransientLifecycleError("a staging execution was reported running but not found") from None
        arn = running.execution_arn
    except StagingNotConfigured as error:
        raise NotConfigured(error.message) from None
    return StagingProgress(done=False, execution_arn=arn).wire()


def check_staging(event: dict[str, Any]) -> dict[str, Any]:
    """CheckStaging: whether the nested staging execution has finished; WeightsNotStaged if it failed."""
    from chalicelib.staging.service import execution_status

    task = TaskEvent.model_validate(event)
    progress = task.result("staging", StagingProgress)
    if progress is None or progress.execution_arn is None:
        return StagingProgress(done=True).wire()
    status = execution_status(progress.execution_arn)
    if status.status == "SUCCEEDED":
        return StagingProgress(done=True, execution_arn=progress.execution_arn).wire()
    if status.status == "RUNNING":
        return StagingProgress(done=False, execution_arn=progress.execution_arn).wire()
    raise WeightsNotStaged(
        f"staging {status.hf_model_id} ({status.execution_name}) {status.status.lower()}"
        f" at {status.failed_step or status.current_step}: {status.reason or status.error}"
    )


def ensure_infrastructure(event: dict[str, Any]) -> dict[str, Any]:
    """CreateInfrastructure / ApplyUpdate: the infrastructure as the record says; what to wait for."""
    task = TaskEvent.model_validate(event)
    record = _enter(task)
    desired = desired_count(record)
    group, endpoint = ensure(record, desired)
    now = time.time()
    deadline = now + get_settings().model_health_timeout_seconds
    return Waiting(desired=desired, deadline=deadline, since=now, target_group_arn=group, endpoint=endpoint).wire()


def _remove_schedules(record: ModelRecord) -> None:
    """No schedule starts a model being deleted: its EventBridge schedules go first (whichever exist)."""
    from chalicelib.schedules.eventbridge import delete_model_schedule

    if record.schedule is not None or get_settings().schedule_target_arn:
        delete_model_schedule(record.model_id)


def drain(event: dict[str, Any]) -> dict[str, Any]:
    """Drain: no schedule fires any more, no new traffic (the listener goes), the service scaled to zero; wait
    until no task is left."""
    task = TaskEvent.model_validate(event)
    record = _enter(task)
    _remove_schedules(record)
    where = placement()
    names = _names(record.model_id, where)
    ecs, elb = aws.client("ecs"), aws.client("elbv2")
    group = _target_group(elb, None, names, where)
    if group is not None:
        for listener in _listeners(elb, where):
            if _forwards_to(listener, group):
                _call(elb.delete_listener, ListenerArn=listener["ListenerArn"])
    current = _service(ecs, where, names)
    if current is not None and current["desiredCount"] != 0:
        _call(ecs.update_service, cluster=where.cluster, service=names.service, desiredCount=0)
    now = time.time()
    deadline = now + get_settings().model_health_timeout_seconds
    return Waiting(desired=0, deadline=deadline, since=now, target_group_arn=group).wire()


def check_health(event: dict[str, Any]) -> dict[str, Any]:
    """WaitHealthy: ready when `desired` targets are healthy (none running, for 0); EngineFailed when a task of
    the new definition stopped by itself; HealthTimeout after the deadline."""
    task = TaskEvent.model_validate(event)
    wait = task.result("wait", Waiting)
    if wait is None:
        raise InvalidSpec("WaitHealthy without a preceding infrastructure step")
    record = _enter(task)
    where = placement()
    names = _names(record.model_id, where)
    ecs, elb = aws.client("ecs"), aws.client("elbv2")
    service = _service(ecs, where, names)
    healthy: list[dict[str, Any]] = []
    if wait.desired == 0:
        ready = service is None or not _service_tasks(ecs, where, names, "RUNNING")
    else:
        if service is None:
            raise EngineFailed(f"the service {names.service} is gone")
        reason = _failed_task(ecs, where, names, service, wait.since)
        if reason is not None:
            raise EngineFailed(f"a task of {names.service} stopped: {reason}")
        targets = elb.describe_target_health(TargetGroupArn=wait.target_group_arn)["TargetHealthDescriptions"]
        healthy = [t for t in targets if t.get("TargetHealth", {}).get("State") == "healthy"]
        ready = len(healthy) >= wait.desired
    if not ready and time.time() > wait.deadline:
        wanted = "no task left" if wait.desired == 0 else f"{wait.desired} healthy task(s), have {len(healthy)}"
        raise HealthTimeout(f"{names.service}: not {wanted} within {get_settings().model_health_timeout_seconds}s")
    endpoint = wait.endpoint
    if ready and healthy and get_settings().model_endpoint_source == "target":
        target = healthy[0]["Target"]
        endpoint = f"http://{target['Id']}:{target['Port']}"
    return Health(ready=ready, healthy=len(healthy), endpoint=endpoint).wire()


def remove_infrastructure(event: dict[str, Any]) -> dict[str, Any]:
    """RemoveInfrastructure: service, listener, target group, task definitions (whichever exist)."""
    task = TaskEvent.model_validate(event)
    record = _enter(task)
    removed = remove(record.model_id)
    return Finished(model_id=record.model_id, outcome=f"removed {', '.join(removed) or 'nothing'}").wire()


def finish(event: dict[str, Any]) -> dict[str, Any]:
    """Finish: InService (with the endpoint) or Stopped; for a delete, the record goes."""
    task = TaskEvent.model_validate(event)
    state = task.state()
    store = ModelStore()
    if state.action == "delete":
        with contextlib.suppress(ModelNotFound):  # an earlier attempt deleted it
            store.delete(state.model_id)
        return Finished(model_id=state.model_id, outcome="deleted").wire()
    wait, health = task.result("wait", Waiting), task.result("health", Health)
    serving = wait is not None and wait.desired > 0
    status = ModelStatus.IN_SERVICE if serving else ModelStatus.STOPPED
    changes: dict[str, Any] = {"status": status, "status_step": None, "status_reason": None}
    if serving and health is not None and health.endpoint:
        changes["endpoint_url"] = health.endpoint
    store.modify(state.model_id, lambda current: changes if current.status is not status else {})
    return Finished(model_id=state.model_id, outcome=status.value).wire()


def _reason(error: Mapping[str, Any]) -> str:
    """A Lambda error's own message (Cause is its JSON), else the cause as it is."""
    cause = str(error.get("Cause") or "")
    try:
        parsed = json.loads(cause)
    except ValueError:
        return cause or str(error.get("Error") or "unknown error")
    if isinstance(parsed, dict):
        return str(parsed.get("errorMessage") or parsed.get("errorType") or cause)
    return cause


def _undo(state: LifecycleInput, store: ModelStore) -> str:
    """Put back what the execution changed; says what it did."""
    if state.action == "create":
        removed = remove(state.model_id)
        return f"rolled back: removed {', '.join(removed)}" if removed else "rolled back: nothing was created"
    if state.action == "update" and state.previous is not None and state.previous.record:
        restored = store.modify(state.model_id, lambda current: dict(state.previous.record))  # type: ignore[union-attr]
        ensure(restored, desired_count(restored))
        return "rolled back to the previous settings"
    return "nothing rolled back"


def roll_back(event: dict[str, Any]) -> dict[str, Any]:
    """RollBack: undo what this execution did, record Failed with the step it failed in and the reason."""
    task = TaskEvent.model_validate(event)
    error = task.error or {}
    name = str(error.get("Error") or "States.Runtime")
    reason = _reason(error)
    try:
        state = task.state()
    except ValidationError as invalid:
        return Failure(error="InvalidSpec", reason=format_validation_error(invalid)).wire()
    store = ModelStore()
    try:
        record = store.get(state.model_id)
    except ModelNotFound:
        return Failure(error=name, reason=f"{reason} (the model is gone)").wire()
    step = record.status_step or "Validate"
    try:
        undone = _undo(state, store)
    except Exception as failure:  # the failure is recorded whatever the rollback meets
        logger.exception("rollback incomplete", model_id=state.model_id)
        undone = f"rollback incomplete: {type(failure).__name__}: {failure}"
    recorded = f"{step} failed: {reason} ({undone})"
    changes = {"status": ModelStatus.FAILED, "status_step": step, "status_reason": recorded[:2000]}
    store.modify(state.model_id, lambda current: changes)
    logger.warning("model lifecycle failed", model_id=state.model_id, step=step, error=name, reason=reason)
    return Failure(error=name, reason=recorded[:2000]).wire()
