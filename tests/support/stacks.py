"""A whole local stack inside the test process, on AWS of its own.

`LocalLisa` uses the AWS endpoint in LISA_AWS_ENDPOINT_URL when one is set (`make run` against LocalStack), and
the session fixtures set it (`moto_server`) along with MOTO_PORT and LISA_*_STATE_MACHINE_ARN (`staging_sfn`) for
every test that runs after them. A stack started then would stage into the session's moto, whose state machines
the last `aws_env` reset deleted (StateMachineDoesNotExist), and share its tables with the other tests. So a stack
fixture starts its stack inside `own_aws()`: the session's settings are hidden until it stops.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from chalicelib import aws


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
