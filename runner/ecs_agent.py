"""The local part ECS plays for run-time models: a container agent that runs real engine processes.

    ecs = LocalEcs(state_dir, models_dir).start()   # creates the cluster, VPC and shared balancer on the AWS
        # endpoint (moto), sets the LISA_MODEL_* settings the lifecycle tasks read, starts the agent thread
    ...
    ecs.stop()                                       # every engine stopped, settings restored

Each round the agent compares every ACTIVE service of the cluster with the processes it runs for it, as ECS's
scheduler and container agent do: too few → it starts one (the engine of the `model` container's
`lisa.spec` label, on the weights staged in the models bucket: the fetch-weights container's check, then the
local prepared folder of that model, or a download of the manifest's files), registered with ECS as a task
(`startedBy` the service's deployment); when the engine answers its health URL the agent registers
`127.0.0.1:<port>` in the service's target group (ECS does that for tasks behind a load balancer); too many, or
a service gone → it deregisters and stops them (`Scaling activity ...`). An engine that exits is a stopped task
with `Essential container in task exited` and its log's tail: the lifecycle's WaitHealthy step reads that.
Local-only: never imported by chalicelib.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from chalicelib import aws
from chalicelib.config import EcsModel
from chalicelib.lifecycle.infra import SPEC_LABEL
from runner.environment import EnvironmentChanges
from runner.processes import ManagedProcess
from workers.launch import free_port, model_spec

logger = logging.getLogger("lisa.ecs_agent")

CLUSTER = "lisa-local-models"
SCALING = "Scaling activity initiated by the local agent"


@dataclass
class _Task:
    """One engine process standing in for one ECS task."""

    arn: str
    process: ManagedProcess
    port: int
    definition: str
    registered: bool = False


@dataclass
class _Service:
    name: str
    tasks: list[_Task] = field(default_factory=list)


class LocalEcs:
    """The cluster, network and balancer for run-time models on the AWS endpoint, and the agent running them."""

    def __init__(self, state_dir: Path, models_dir: Path, *, interval: float = 0.2) -> None:
        self.state_dir = state_dir
        self.models_dir = models_dir
        self.interval = interval
        self._services: dict[str, _Service] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._env = EnvironmentChanges()
        self._local_models: dict[str, Path] | None = None
        self._started = 0

    # -- setup ---------------------------------------------------------------------------------------------
    def start(self) -> LocalEcs:
        """Create the shared resources, point the settings at them, start the agent thread."""
        self.deploy()
        self._thread = threading.Thread(target=self._run, name="lisa-ecs-agent", daemon=True)
        self._thread.start()
        return self

    def deploy(self) -> None:
        """The cluster, a VPC with two subnets and the shared internal balancer (idempotent; again after a moto
        reset); sets LISA_MODEL_CLUSTER, LISA_MODEL_VPC_ID, LISA_MODEL_LOAD_BALANCER_ARN."""
        ecs, ec2, elb = aws.client("ecs"), aws.client("ec2"), aws.client("elbv2")
        ecs.create_cluster(clusterName=CLUSTER)
        name = "lisa-local-models"
        try:
            balancer = elb.describe_load_balancers(Names=[name])["LoadBalancers"][0]
            vpc_id = balancer["VpcId"]
        except ClientError:
            vpc_id = ec2.create_vpc(CidrBlock="10.77.0.0/16")["Vpc"]["VpcId"]
            zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]][:2]
            subnets = [
                ec2.create_subnet(VpcId=vpc_id, CidrBlock=f"10.77.{i}.0/24", AvailabilityZone=zone)["Subnet"][
                    "SubnetId"
                ]
                for i, zone in enumerate(zones)
            ]
            balancer = elb.create_load_balancer(Name=name, Subnets=subnets, Scheme="internal", Type="application")[
                "LoadBalancers"
            ][0]
        self._setenv("LISA_MODEL_CLUSTER", CLUSTER)
        self._setenv("LISA_MODEL_VPC_ID", vpc_id)
        self._setenv("LISA_MODEL_LOAD_BALANCER_ARN", balancer["LoadBalancerArn"])
        self._setenv("LISA_MODEL_ENDPOINT_SOURCE", "target")  # the router reaches the engine's own port
        aws.reset()

    def _setenv(self, key: str, value: str) -> None:
        self._env.set(key, value)

    def stop(self) -> None:
        """Stop the agent and every engine it runs; restore the settings. Safe to call twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        for service in self._services.values():
            for task in service.tasks:
                task.process.stop()
        self._services.clear()
        self._env.restore()
        aws.reset()

    def running(self, service: str) -> int:
        """How many engine processes the agent runs for `service` (for tests and logs)."""
        found = self._services.get(service)
        return sum(1 for t in found.tasks if t.process.running) if found else 0

    # -- the loop ------------------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.reconcile()
            except Exception:  # one bad round (moto reset, a race) must not end the agent
                logger.exception("local ECS agent round failed")

    def reconcile(self) -> None:
        """One round: every service's processes brought in line with its desired count."""
        ecs = aws.client("ecs")
        try:
            arns = [
                a for page in ecs.get_paginator("list_services").paginate(cluster=CLUSTER) for a in page["serviceArns"]
            ]
        except ClientError:
            arns = []  # no cluster (e.g. just after a moto reset)
        services: list[dict[str, Any]] = []
        for start in range(0, len(arns), 10):
            services += ecs.describe_services(cluster=CLUSTER, services=arns[start : start + 10])["services"]
        active = {s["serviceName"]: s for s in services if s.get("status") == "ACTIVE"}
        for name in list(self._services):
            if name not in active:
                self._scale(self._services.pop(name), None, 0)
        for name, service in active.items():
            self._scale(self._services.setdefault(name, _Service(name)), service, int(service["desiredCount"]))

    def _scale(self, state: _Service, service: dict[str, Any] | None, desired: int) -> None:
        group = self._target_group(service)
        for task in list(state.tasks):
            if not task.process.running:
                self._stopped(state, task, group, f"Essential container in task exited: {task.process.log_tail(8)}")
            elif service is not None and task.definition != service["taskDefinition"]:
                self._stopped(state, task, group, f"{SCALING}: replaced by a new task definition")
            elif not task.registered and task.process.answers(timeout=0.5):
                if group is not None:
                    aws.client("elbv2").register_targets(
                        TargetGroupArn=group, Targets=[{"Id": "127.0.0.1", "Port": task.port}]
                    )
                task.registered = True
        while len(state.tasks) > desired:
            self._stopped(state, state.tasks[-1], group, SCALING)
        while service is not None and len(state.tasks) < desired:
            self._launch(state, service)

    @staticmethod
    def _target_group(service: dict[str, Any] | None) -> str | None:
        balancers = (service or {}).get("loadBalancers") or []
        return str(balancers[0]["targetGroupArn"]) if balancers else None

    def _stopped(self, state: _Service, task: _Task, group: str | None, reason: str) -> None:
        state.tasks.remove(task)
        if task.registered and group is not None:
            with contextlib.suppress(ClientError):  # the target group went first (the model is being removed)
                aws.client("elbv2").deregister_targets(
                    TargetGroupArn=group, Targets=[{"Id": "127.0.0.1", "Port": task.port}]
                )
        task.process.stop()
        self._stop_task(task.arn, reason)
        logger.info("%s: task stopped: %s", state.name, reason.splitlines()[0])

    @staticmethod
    def _stop_task(arn: str, reason: str) -> None:
        try:
            aws.client("ecs").stop_task(cluster=CLUSTER, task=arn, reason=reason[:1024])
        except ClientError:
            logger.warning("could not record the stop of %s", arn)

    # -- one task ------------------------------------------------------------------------------------------
    def _launch(self, state: _Service, service: dict[str, Any]) -> None:
        """Register a task with ECS and start its engine; a task that cannot start is stopped with the reason."""
        ecs = aws.client("ecs")
        definition = str(service["taskDefinition"])
        deployment = next((d["id"] for d in service.get("deployments", []) if d.get("status") == "PRIMARY"), None)
        task_arn = ecs.run_task(
            cluster=CLUSTER,
            taskDefinition=definition,
            launchType="FARGATE",
            group=f"service:{state.name}",
            startedBy=str(deployment or state.name),
        )["tasks"][0]["taskArn"]
        self._started += 1
        log_dir = self.state_dir / "logs"
        port = free_port()
        try:
            model = self._spec(definition)
            folder = self._weights(model)
            spec = model_spec(model, folder, port)
        except Exception as error:  # the fetch-weights container (or the engine's set-up) failing
            log_dir.mkdir(parents=True, exist_ok=True)
            (log_dir / f"{state.name}-{self._started}.log").write_text(str(error))
            process = ManagedProcess(f"{state.name}-{self._started}", "none", [], "", log_dir)
            state.tasks.append(_Task(task_arn, process, port, definition))  # never running: stopped next round
            return
        process = ManagedProcess(
            f"{state.name}-{self._started}", spec.module, spec.args, spec.health_url, log_dir, spec.env, spec.python
        )
        state.tasks.append(_Task(task_arn, process.start(), port, definition))
        logger.info("%s: started %s on port %d", state.name, model.model_name, port)

    @staticmethod
    def _spec(definition: str) -> EcsModel:
        described = aws.client("ecs").describe_task_definition(taskDefinition=definition)["taskDefinition"]
        container = next(c for c in described["containerDefinitions"] if c["name"] == "model")
        return EcsModel.model_validate(json.loads(container["dockerLabels"][SPEC_LABEL]))

    def _weights(self, model: EcsModel) -> Path:
        """What fetch-weights does: the staged files (RuntimeError if the manifest is missing), here from the
        local prepared folder of that model when there is one, else downloaded from the models bucket."""
        from chalicelib.settings import get_settings
        from chalicelib.staging.service import read_manifest
        from workers.prepare import ensure_local_models

        manifest = read_manifest(model.model_id)
        bucket = get_settings().models_bucket
        if manifest is None:
            raise RuntimeError(
                f"fetch-weights: no s3://{bucket}/{model.model_id}/lisa-manifest.json: the model is not staged"
            )
        if self._local_models is None:
            self._local_models = ensure_local_models(self.models_dir)
        if model.model_id in self._local_models:
            return self._local_models[model.model_id]
        folder = self.state_dir / "agent-weights" / model.model_id
        s3 = aws.client("s3")
        for entry in manifest.get("files", []):
            target = folder / str(entry["name"])
            if not target.is_file() or target.stat().st_size != int(entry.get("size", -1)):
                target.parent.mkdir(parents=True, exist_ok=True)
                s3.download_file(bucket, f"{model.model_id}/{entry['name']}", str(target))
        return folder
