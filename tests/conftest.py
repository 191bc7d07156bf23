"""Shared fixtures: a real moto server on loopback stands in for AWS; LISA's tables and buckets exist in it."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from botocore import loaders, session
from moto.server import ThreadedMotoServer

from chalicelib import aws
from runner.bootstrap import bootstrap
from runner.moto_fixes import serialize_moto_dynamodb
from workers.launch import free_port

# Fixture modules: embedded PostgreSQL + pgvector (postgres_dsn, rag_env), the staging state machine and a tiny LM
# (staging_sfn, sfn, tiny), real CPU model workers (tgi_worker, tei_worker), the one real vLLM engine (vllm_stack),
# the default-config `make run` (default_runner).
pytest_plugins = [
    "tests.support.postgres",
    "tests.support.staging",
    "tests.support.workers",
    "tests.support.vllm",
    "tests.support.stacks",
]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


class _PathList(list[str]):
    """A search path list that ignores paths it has: every boto3 Session appends its own data folder."""

    def append(self, path: str) -> None:
        if path not in self:
            super().append(path)


@functools.cache
def _shared_loader(search_path_string: str | None = None) -> loaders.Loader:
    loader = loaders.create_loader(search_path_string)
    loader._search_paths = _PathList(loader.search_paths)
    return loader


# `chalicelib.aws` makes each client in a new boto3 Session, and every `aws_env` (`aws.reset()`) makes them again:
# each Session's own loader parsed botocore's endpoint and service JSON anew, ~0.8 s of CPU per test (most of a
# test's setup). The Sessions of this process share one loader instead, as the clients of one Session do; what a
# loader hands out is only read (its caches already share it between the clients of a Session).
session.create_loader = _shared_loader


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A moto server on loopback; every LISA AWS client points at it. Yields its URL."""
    serialize_moto_dynamodb()
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LISA_AWS_ENDPOINT_URL", url)
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
        aws.reset()
        bootstrap()
        yield url
        server.stop()
    aws.reset()


@pytest.fixture
def aws_env(moto_server: str) -> str:
    """A clean moto state for one test: everything reset, then LISA's tables and buckets recreated."""
    requests.post(f"{moto_server}/moto-api/reset", timeout=10).raise_for_status()
    aws.reset()
    bootstrap()
    return moto_server


def xdist_group(item: pytest.Item) -> str:
    """The pytest-xdist work unit a test belongs to (`make test` runs `--dist loadgroup`): tests that share an
    expensive fixture run on one worker, so it starts once. The browser package shares one stack and one Chromium,
    tests/integration and the `make run` tests one runner (`default_runner`), the vLLM tests one engine
    (`vllm_stack`); every other module keeps its module-scoped servers together."""
    path = item.path.relative_to(Path(__file__).parent)
    if path.parts[0] == "integration" or "default_runner" in getattr(item, "fixturenames", ()):
        return "default_runner"
    if path.parts[0] == "browser":
        return path.parts[0]
    if item.get_closest_marker("vllm") is not None:
        return "vllm"
    return path.as_posix()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put each test in its xdist group (no effect on a run without `-n`)."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(xdist_group(item)))
