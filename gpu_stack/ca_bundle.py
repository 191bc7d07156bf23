"""config.yaml `caBundle`: the CAs that private endpoints' (TLS-inspecting proxies', private PKI's) certificates chain
to, trusted by every Lambda and container through AWS_CA_BUNDLE (boto3, the AWS CLI), REQUESTS_CA_BUNDLE (requests,
httpx via LISA's clients) and SSL_CERT_FILE (Python's ssl, OpenSSL).

Each of those replaces the default trust store, so the bundle must also hold the public roots the deployment still
needs (e.g. certifi's `cacert.pem` with the private CAs appended). Zip Lambdas get it from a layer
(`/opt/lisa-ca/bundle.pem`); the staging image (no layers) is built with it at that path (a build argument,
lambda_images/staging/write_ca_bundle.sh); ECS tasks from an init container that writes it into a task volume
mounted read-only at `/lisa-ca` in the others (no image change needed).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from chalicelib.config import LisaConfig

ENVIRONMENT_NAMES = ("AWS_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")
LAMBDA_FILE = "/opt/lisa-ca/bundle.pem"
TASK_DIR = "/lisa-ca"
TASK_FILE = f"{TASK_DIR}/bundle.pem"
_VOLUME = "lisa-ca"
_PEM_VARIABLE = "LISA_CA_BUNDLE_PEM"
_WRITE = f'printf "%s\\n" "${_PEM_VARIABLE}" > {TASK_FILE}'


def read_ca_bundle(config: LisaConfig, config_dir: Path) -> str | None:
    """The PEM text of `caBundle` (relative to config.yaml's folder), or None when not configured."""
    if not config.ca_bundle:
        return None
    path = config_dir / config.ca_bundle
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"caBundle {config.ca_bundle!r}: cannot read {path}: {error}") from None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise ValueError(f"caBundle {config.ca_bundle!r}: {path} holds no PEM certificate")
    return text


def ca_environment(path: str) -> dict[str, str]:
    """The variables that point the AWS SDK, requests/httpx and OpenSSL at the bundle file `path`."""
    return dict.fromkeys(ENVIRONMENT_NAMES, path)


def ca_layer(scope: Construct, pem: str) -> lambda_.LayerVersion:
    """A layer holding only the bundle, at LAMBDA_FILE in every function that has it."""
    with tempfile.TemporaryDirectory(prefix="lisa-ca-") as folder:
        (Path(folder) / "lisa-ca").mkdir()
        (Path(folder) / "lisa-ca" / "bundle.pem").write_text(pem)
        return lambda_.LayerVersion(
            scope,
            "CaBundle",
            code=lambda_.Code.from_asset(folder),  # copied into the assembly now
            description="LISA caBundle: CAs of private endpoints (/opt/lisa-ca/bundle.pem)",
        )


def add_ca_bundle(
    task: ecs.TaskDefinition,
    pem: str,
    image: ecs.ContainerImage,
    logging: ecs.LogDriver,
    containers: list[ecs.ContainerDefinition],
) -> None:
    """Write `pem` into a task volume before `containers` start (an init container running `sh` in `image`), and
    point them at it."""
    task.add_volume(name=_VOLUME)
    writer = task.add_container(
        "ca-bundle",
        image=image,
        essential=False,
        memory_reservation_mib=64,
        entry_point=["sh", "-c", _WRITE],
        environment={_PEM_VARIABLE: pem},
        logging=logging,
    )
    writer.add_mount_points(ecs.MountPoint(container_path=TASK_DIR, source_volume=_VOLUME, read_only=False))
    for container in containers:
        container.add_mount_points(ecs.MountPoint(container_path=TASK_DIR, source_volume=_VOLUME, read_only=True))
        container.add_container_dependencies(
            ecs.ContainerDependency(container=writer, condition=ecs.ContainerDependencyCondition.SUCCESS)
        )
        for name, value in ca_environment(TASK_FILE).items():
            container.add_environment(name, value)
