"""Container images from config.yaml: a local directory (built), a tarball, an ECR repository + tag, or a public
registry path."""

from __future__ import annotations

import re
from pathlib import Path

from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecs as ecs
from constructs import Construct

_ECR = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?/(?P<repo>[^:@]+)"
    r"(?::(?P<tag>[\w.\-]+))?$"
)
_TARBALL_SUFFIXES = (".tar", ".tar.gz", ".tgz")


def container_image(scope: Construct, construct_id: str, image: str, base_dir: Path) -> ecs.ContainerImage:
    """Resolve one `image` value; relative paths are relative to `base_dir` (the config file's folder)."""
    local = (base_dir / image).resolve() if not image.startswith("/") else Path(image)
    if image.endswith(_TARBALL_SUFFIXES):
        if not local.is_file():
            raise ValueError(f"image {image!r}: no such tarball ({local})")
        return ecs.ContainerImage.from_tarball(str(local))
    if image.startswith(("./", "../", "/")) or (local.is_dir() and (local / "Dockerfile").is_file()):
        if not (local / "Dockerfile").is_file():
            raise ValueError(f"image {image!r}: {local} has no Dockerfile")
        return ecs.ContainerImage.from_asset(str(local))
    match = _ECR.match(image)
    if match:
        repository = ecr.Repository.from_repository_name(scope, f"{construct_id}Repo", match["repo"])
        return ecs.ContainerImage.from_ecr_repository(repository, match["tag"] or "latest")
    return ecs.ContainerImage.from_registry(image)
