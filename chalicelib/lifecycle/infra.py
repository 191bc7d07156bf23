"""What a hosted model's infrastructure is, as data: one source for models created at run time (the lifecycle
workflow's Lambda tasks pass these parameters to ECS and ELB through boto3) and models declared in config.yaml
(the CDK stack, gpu_stack/stacks/models.py, builds its containers from `engine` and `FETCH_SCRIPT`).

Pure: no boto3, no CDK. A model is described by its `ecsModels` entry (`EcsModel`), whichever way it came.

A task first fetches the model's weights from `s3://<models bucket>/<org>/<name>/` into a task volume (an init
container with the AWS CLI): only the files `lisa-manifest.json` lists (staging writes it last, so a prefix
without it is a missing or failed staging and the task stops with that message), each checked against its
sha256. Then it starts the inference container on them: vLLM's OpenAI server with one GPU per tensor-parallel
rank, or TGI/TEI with one GPU.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from chalicelib.config import EcsModel, InferenceContainer
from chalicelib.staging.layout import MANIFEST
from chalicelib.vllm_engine import SERVER_MODULE, server_command

CONTAINER_PORT = 8080
MODEL_DIR = "/data/model"
WEIGHTS_IMAGE = "public.ecr.aws/aws-cli/aws-cli:2.27.50"  # default; CDK context `weightsImage` overrides it
LISTENER_PORTS = range(8100, 8150)  # one listener of the shared balancer per run-time model (ALBs allow 50)
SPEC_LABEL = "lisa.spec"  # the model's ecsModels entry (JSON) on its container: the local agent starts from it
MODEL_LABEL = "lisa.model"

# POSIX sh + the AWS CLI + sha256sum (all the aws-cli image has). $1 = s3://bucket/prefix, $2 = target folder.
# The manifest is staging's `json.dumps(indent=2, sort_keys=True)`: one `{name, sha256, size}` object per file.
FETCH_SCRIPT = r"""set -eu
src="$1"; dst="$2"; tmp="$(mktemp -d)"; manifest="@MANIFEST@"
mkdir -p "$dst"
if ! aws s3 cp --no-progress "$src/$manifest" "$tmp/manifest.json" >/dev/null; then
  echo "no $src/$manifest: the model is not staged (or its staging failed); stage it, then redeploy" >&2
  exit 1
fi
tr -d '\n' < "$tmp/manifest.json" | sed 's/.*"files": *\[//; s/\].*//' | tr '}' '\n' > "$tmp/entries"
count=0
while IFS= read -r entry || [ -n "$entry" ]; do
  name="$(printf '%s' "$entry" | sed -n 's/.*"name": *"\([^"]*\)".*/\1/p')"
  [ -n "$name" ] || continue
  sha="$(printf '%s' "$entry" | sed -n 's/.*"sha256": *"\([0-9a-f]*\)".*/\1/p')"
  aws s3 cp --no-progress "$src/$name" "$dst/$name" >/dev/null </dev/null
  if ! printf '%s  %s\n' "$sha" "$dst/$name" | sha256sum -c - >/dev/null 2>&1; then
    echo "$name: its sha256 differs from $src/$manifest (restage the model)" >&2
    exit 1
  fi
  count=$((count + 1))
done < "$tmp/entries"
if [ "$count" -eq 0 ]; then
  echo "$src/$manifest lists no files" >&2
  exit 1
fi
echo "fetched $count files listed in $src/$manifest"
""".replace("@MANIFEST@", MANIFEST)


@dataclass(frozen=True)
class Engine:
    """How the `model` container starts: entry point and command (None: the image's), environment, GPUs, and the
    health probe it runs inside the container."""

    entry_point: list[str] | None
    command: list[str] | None
    environment: dict[str, str]
    gpus: int
    probe: list[str]


def _curl_probe(path: str) -> list[str]:
    return ["CMD-SHELL", f"curl -fsS http://localhost:{CONTAINER_PORT}{path} || exit 1"]


def _python_probe(path: str) -> list[str]:
    # vLLM's image has python3 in every release; curl is not promised.
    probe = f"import urllib.request; urllib.request.urlopen('http://localhost:{CONTAINER_PORT}{path}', timeout=4)"
    return ["CMD", "python3", "-c", probe]


def engine(model: EcsModel) -> Engine:
    """The `model` container of a model's task."""
    path = model.health_check_config.path
    cache = {"HUGGINGFACE_HUB_CACHE": "/data/cache", "HF_HUB_OFFLINE": "1"}
    if model.inference_container is InferenceContainer.VLLM:
        command = server_command(
            model.container_config.vllm_args(),
            model.container_config.environment,
            model_dir=MODEL_DIR,
            served_name=model.model_name,
            host="0.0.0.0",  # noqa: S104 - the bridge network's address
            port=CONTAINER_PORT,
        )
        return Engine(
            entry_point=["python3", "-m", SERVER_MODULE],
            command=command.args,
            environment={**command.environment, **cache},
            gpus=command.gpus,
            probe=_python_probe(path),
        )
    environment = {**model.container_config.environment, "MODEL_ID": MODEL_DIR, "PORT": str(CONTAINER_PORT), **cache}
    environment.setdefault("HOSTNAME", "0.0.0.0")  # noqa: S104 - TGI/TEI listen on the bridge address
    return Engine(entry_point=None, command=None, environment=environment, gpus=1, probe=_curl_probe(path))


# -- run-time models: the ECS / ELB parameters ---------------------------------------------------------------
@dataclass(frozen=True)
class Placement:
    """Where run-time models go (the gpu_stack models stack's shared capacity; the runner's in `make run`)."""

    cluster: str
    vpc_id: str
    load_balancer_arn: str
    capacity_provider: str | None
    models_bucket: str
    task_role_arn: str | None
    execution_role_arn: str | None
    log_group: str | None
    region: str
    weights_image: str = WEIGHTS_IMAGE
    prefix: str = "lisa-dev"


@dataclass(frozen=True)
class Names:
    """The deterministic names of a model's resources: every step finds what an earlier attempt created."""

    family: str
    service: str
    target_group: str

    @classmethod
    def of(cls, prefix: str, model_name: str) -> Names:
        """Names under the deployment's prefix; target groups allow 32 characters, so theirs is hashed."""
        digest = hashlib.sha256(f"{prefix}/{model_name}".encode()).hexdigest()[:12]
        base = f"{prefix}-model-{model_name}".replace(".", "-").replace("_", "-")[:200]
        return cls(family=base, service=base, target_group=f"lisa-m-{digest}")


def _environment(values: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in sorted(values.items())]


def _logging(placement: Placement, prefix: str) -> dict[str, Any] | None:
    if not placement.log_group:
        return None
    options = {
        "awslogs-group": placement.log_group,
        "awslogs-region": placement.region,
        "awslogs-stream-prefix": prefix,
    }
    return {"logDriver": "awslogs", "options": options}


def task_definition(model: EcsModel, names: Names, placement: Placement) -> dict[str, Any]:
    """`ecs.register_task_definition` parameters: the fetch-weights init container, then the engine."""
    started = engine(model)
    health = model.health_check_config
    mount = [{"sourceVolume": "weights", "containerPath": "/data", "readOnly": False}]
    fetch: dict[str, Any] = {
        "name": "fetch-weights",
        "image": placement.weights_image,
        "essential": False,
        "memoryReservation": 512,
        "entryPoint": ["sh", "-c", FETCH_SCRIPT, "fetch-weights"],
        "command": [f"s3://{placement.models_bucket}/{model.model_id}", MODEL_DIR],
        "mountPoints": mount,
    }
    server: dict[str, Any] = {
        "name": "model",
        "image": model.container_config.image,
        "essential": True,
        "memoryReservation": 8192,
        "environment": _environment(started.environment),
        "portMappings": [{"containerPort": CONTAINER_PORT, "hostPort": 0, "protocol": "tcp"}],
        "mountPoints": mount,
        "dependsOn": [{"containerName": "fetch-weights", "condition": "SUCCESS"}],
        "linuxParameters": {"sharedMemorySize": model.container_config.shared_memory_size},
        "healthCheck": {
            "command": started.probe,
            "interval": health.interval,
            "timeout": health.timeout,
            "retries": health.retries,
            "startPeriod": health.start_period,
        },
        "resourceRequirements": [{"type": "GPU", "value": str(started.gpus)}],
        "dockerLabels": {MODEL_LABEL: model.model_name, SPEC_LABEL: spec_label(model)},
    }
    if started.entry_point is not None:
        server["entryPoint"] = started.entry_point
    if started.command is not None:
        server["command"] = started.command
    for container, stream in ((fetch, "fetch-weights"), (server, model.model_name)):
        logging = _logging(placement, stream)
        if logging is not None:
            container["logConfiguration"] = logging
    parameters: dict[str, Any] = {
        "family": names.family,
        "networkMode": "bridge",
        "volumes": [{"name": "weights"}],
        "containerDefinitions": [fetch, server],
        "tags": [{"key": MODEL_LABEL, "value": model.model_name}],
    }
    if placement.task_role_arn:
        parameters["taskRoleArn"] = placement.task_role_arn
    if placement.execution_role_arn:
        parameters["executionRoleArn"] = placement.execution_role_arn
    return parameters


def spec_label(model: EcsModel) -> str:
    """The ecsModels entry as the container's label (what the local agent starts)."""
    return json.dumps(model.model_dump(mode="json", by_alias=True, exclude_none=True), sort_keys=True)


def target_group(model: EcsModel, names: Names, placement: Placement) -> dict[str, Any]:
    """`elbv2.create_target_group` parameters: the engine's health path on the task's dynamic host port."""
    health = model.health_check_config
    return {
        "Name": names.target_group,
        "Protocol": "HTTP",
        "Port": CONTAINER_PORT,
        "VpcId": placement.vpc_id,
        "TargetType": "instance",
        "HealthCheckPath": health.path,
        "HealthCheckPort": "traffic-port",
        "HealthCheckIntervalSeconds": max(health.interval, health.timeout + 1),
        "HealthCheckTimeoutSeconds": health.timeout,
        "HealthyThresholdCount": 2,
        "UnhealthyThresholdCount": max(2, health.retries),
        "Tags": [{"Key": MODEL_LABEL, "Value": model.model_name}],
    }


def listener(target_group_arn: str, port: int, placement: Placement) -> dict[str, Any]:
    """`elbv2.create_listener` parameters: the model's own port on the shared internal balancer."""
    return {
        "LoadBalancerArn": placement.load_balancer_arn,
        "Protocol": "HTTP",
        "Port": port,
        "DefaultActions": [{"Type": "forward", "TargetGroupArn": target_group_arn}],
    }


def free_listener_port(used: Iterable[int]) -> int:
    """The lowest listener port no other model uses; ValueError when the balancer is full."""
    taken = set(used)
    for port in LISTENER_PORTS:
        if port not in taken:
            return port
    raise ValueError(f"the shared model balancer has no free listener port in {LISTENER_PORTS}")


def service(
    model: EcsModel,
    names: Names,
    placement: Placement,
    *,
    task_definition_arn: str,
    target_group_arn: str,
    desired: int,
) -> dict[str, Any]:
    """`ecs.create_service` parameters: the engine behind its target group on the GPU capacity."""
    scaling = model.auto_scaling_config
    parameters: dict[str, Any] = {
        "cluster": placement.cluster,
        "serviceName": names.service,
        "taskDefinition": task_definition_arn,
        "desiredCount": desired,
        "loadBalancers": [
            {"targetGroupArn": target_group_arn, "containerName": "model", "containerPort": CONTAINER_PORT}
        ],
        "healthCheckGracePeriodSeconds": model.health_check_config.start_period,
        "deploymentConfiguration": {
            "minimumHealthyPercent": 0 if scaling.max_capacity == 1 else 50,
            "maximumPercent": 200,
            "deploymentCircuitBreaker": {"enable": True, "rollback": True},
        },
        "tags": [{"key": MODEL_LABEL, "value": model.model_name}],
    }
    if placement.capacity_provider:
        parameters["capacityProviderStrategy"] = [{"capacityProvider": placement.capacity_provider, "weight": 1}]
    return parameters
