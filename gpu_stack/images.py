"""Container images from config.yaml: a local directory (built), a tarball, an ECR repository + tag, or a public
registry path (ECS only: Lambda runs images from ECR)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from constructs import Construct

_ECR = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?/(?P<repo>[^:@]+)"
    r"(?::(?P<tag>[\w.\-]+))?$"
)
_TARBALL_SUFFIXES = (".tar", ".tar.gz", ".tgz")


@dataclass(frozen=True)
class ImageSource:
    """Where one `image` value comes from."""

    kind: Literal["directory", "tarball", "ecr", "registry"]
    image: str
    path: Path | None = None
    repository: str = ""
    tag: str = "latest"


def image_source(image: str, base_dir: Path) -> ImageSource:
    """Classify one `image` value; relative paths are relative to `base_dir` (the config file's folder)."""
    local = (base_dir / image).resolve() if not image.startswith("/") else Path(image)
    if image.endswith(_TARBALL_SUFFIXES):
        if not local.is_file():
            raise ValueError(f"image {image!r}: no such tarball ({local})")
        return ImageSource("tarball", image, path=local)
    if image.startswith(("./", "../", "/")) or (local.is_dir() and (local / "Dockerfile").is_file()):
        if not (local / "Dockerfile").is_file():
            raise ValueError(f"image {image!r}: {local} has no Dockerfile")
        return ImageSource("directory", image, path=local)
    match = _ECR.match(image)
    if match:
        return ImageSource("ecr", image, repository=match["repo"], tag=match["tag"] or "latest")
    return ImageSource("registry", image)


def container_image(scope: Construct, construct_id: str, image: str, base_dir: Path) -> ecs.ContainerImage:
    """An ECS container image for one `image` value."""
    source = image_source(image, base_dir)
    if source.kind == "tarball":
        return ecs.ContainerImage.from_tarball(str(source.path))
    if source.kind == "directory":
        return ecs.ContainerImage.from_asset(str(source.path))
    if source.kind == "ecr":
        repository = ecr.Repository.from_repository_name(scope, f"{construct_id}Repo", source.repository)
        return ecs.ContainerImage.from_ecr_repository(repository, source.tag)
    return ecs.ContainerImage.from_registry(image)


def lambda_image_uri(scope: Construct, construct_id: str, image: str, base_dir: Path) -> str:
    """The ECR image URI a Lambda function runs for one `image` value (directories and tarballs are pushed as
    CDK assets)."""
    source = image_source(image, base_dir)
    if source.kind == "tarball":
        return ecr_assets.TarballImageAsset(scope, construct_id, tarball_file=str(source.path)).image_uri
    if source.kind == "directory":
        return ecr_assets.DockerImageAsset(
            scope, construct_id, directory=str(source.path), platform=ecr_assets.Platform.LINUX_AMD64
        ).image_uri
    if source.kind == "ecr":
        repository = ecr.Repository.from_repository_name(scope, f"{construct_id}Repo", source.repository)
        return repository.repository_uri_for_tag(source.tag)
    raise ValueError(
        f"image {image!r}: Lambda runs container images from Amazon ECR only;"
        " push it to an ECR repository of this account, or give a directory with a Dockerfile or a tarball"
    )
