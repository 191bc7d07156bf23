"""A whole local stack inside the test process, on AWS of its own.

`LocalLisa` uses the AWS endpoint in LISA_AWS_ENDPOINT_URL when one is set (`make run` against LocalStack), and
the session fixtures set it (`moto_server`) along with MOTO_PORT and LISA_*_STATE_MACHINE_ARN (`staging_sfn`) for
every test that runs after them. A stack started then would stage into the session's moto, whose state machines
the last `aws_env` reset deleted (StateMachineDoesNotExist), and share its tables with the other tests. So a stack
fixture starts its stack inside `own_aws()`: the session's settings are hidden until it stops.

`default_runner` (session): `python -m runner` with the default config.yaml, as `make run` starts it, in a child
process of its own; tests/integration and test_stack.py's `make run` tests share it (one vLLM engine, not two).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from subprocess import Popen

import pytest

from chalicelib import aws
from testkit.runner import running_runner

DefaultRunner = tuple[str, str, Popen[str]]  # URL, admin API key, process


def _session_aws_setting(key: str) -> bool:
    return key in ("LISA_AWS_ENDPOINT_URL", "MOTO_PORT") or (
        key.startswith("LISA_") and key.endswith("_STATE_MACHINE_ARN")
    )


@contextmanager
def own_aws() -> Iterator[pytest.MonkeyPatch]:
    """Hide the session's AWS endpoint and state machines for the block (a `LocalLisa` started in it runs its own
    embedded moto server); restore them after. Yields the MonkeyPatch for further settings of the block."""
    with pytest.MonkeyPatch.context() as env:
        for key in [k for k in os.environ if _session_aws_setting(k)]:
            env.delenv(key)
        aws.reset()
        try:
            yield env
        finally:
            aws.reset()
    aws.reset()


@pytest.fixture(scope="session")
def default_runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DefaultRunner]:
    """`python -m runner` as `make run` starts it (own moto server, default config.yaml: the chat model on vLLM, the
    embedding models on the CPU workers); its logs in <basetemp>/make-run*/. The tests using it are one xdist group
    (tests/conftest.py), in collection order: test_stack.py's Ctrl-C test, which stops it, comes last."""
    with running_runner(log_dir=tmp_path_factory.mktemp("make-run"), timeout=600) as started:
        yield started
