"""The end-to-end suite against any LISA:

    pytest tests/integration --url https://... --api-key ... [--verify ca.pem|false]

Without --url it runs the same checks against the session's `make run` (`default_runner`: `python -m runner`, the
default config.yaml, real vLLM and CPU workers), which test_stack.py's `make run` tests share.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lisa integration")
    group.addoption("--url", default=None, help="a deployed LISA's base URL (default: start the local stack)")
    group.addoption("--api-key", default=None, help="an API token with admin rights on that deployment")
    group.addoption("--verify", default=None, help="CA bundle (PEM) for the URL's TLS certificate, or 'false'")


@dataclass(frozen=True)
class Target:
    """Where the suite points: base URL (ending in /), an API key, and how to verify TLS."""

    url: str
    api_key: str
    verify: bool | ssl.SSLContext

    def client(self, **headers: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=self.verify, timeout=120.0, headers=headers)

    def authed(self) -> httpx.Client:
        return self.client(Authorization=f"Bearer {self.api_key}")


def _option(config: pytest.Config, name: str) -> str | None:
    try:
        value = config.getoption(name)
    except ValueError:  # options not registered (this conftest was not an initial one): local defaults
        return None
    return str(value) if value is not None else None


def _verify(value: str | None) -> bool | ssl.SSLContext:
    if value is None or value.lower() == "true":
        return True
    if value.lower() == "false":
        return False
    if not Path(value).is_file():
        raise pytest.UsageError(f"--verify: {value} is not a file (give a PEM CA bundle, or 'false')")
    return ssl.create_default_context(cafile=value)


@pytest.fixture(scope="package")
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    url = _option(request.config, "--url")
    if url:
        api_key = _option(request.config, "--api-key")
        if not api_key:
            raise pytest.UsageError("--url needs --api-key (an admin API token of that deployment)")
        yield Target(url.rstrip("/") + "/", api_key, _verify(_option(request.config, "--verify")))
        return
    runner_url, api_key, _ = request.getfixturevalue("default_runner")
    yield Target(runner_url + "/", api_key, True)
