"""Real CPU model workers for tests: TGI (SmolLM2-135M-Instruct) and TEI + instructor (all-MiniLM-L6-v2).

Session fixtures `tgi_worker` and `tei_worker` yield the base URL of a worker subprocess on a free loopback port,
started once per test session (tests/conftest.py registers them). The models are prepared with
`workers.prepare.ensure_local_models` into `.lisa/models` (a no-op once done). `running_worker` starts one with
other limits for a single test module.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from runner.processes import ManagedProcess
from workers.launch import worker_spec
from workers.prepare import DEFAULT_OUT, MINILM_ID, SMOLLM2_ID, ensure_local_models

# The limits config.yaml gives the local default text model (containerConfig.environment).
TGI_ENVIRONMENT = {"MAX_CONCURRENT_REQUESTS": "128", "MAX_INPUT_LENGTH": "1536", "MAX_TOTAL_TOKENS": "2048"}


def local_model_dirs() -> dict[str, Path]:
    """model id → prepared HF folder under .lisa/models (built on first use)."""
    return ensure_local_models(DEFAULT_OUT)


@contextmanager
def running_worker(
    container: str,
    model_id: str,
    log_dir: Path,
    *,
    environment: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
    timeout: float = 300.0,
) -> Iterator[str]:
    """Start the worker for `container` (`tgi`, `tei`, `instructor`) serving `model_id`; yield its URL; stop it."""
    from tests.conftest import free_port

    spec = worker_spec(container, model_id, local_model_dirs()[model_id], free_port(), environment=environment)
    process = ManagedProcess(
        name=f"{container}-worker-{spec.url.rsplit(':', 1)[1]}",
        module=spec.module,
        args=[*spec.args, *extra_args],
        health_url=spec.health_url,
        log_dir=log_dir,
        env=spec.env,
    )
    process.start()
    try:
        process.wait_healthy(timeout)
        yield spec.url
    finally:
        process.stop()


@pytest.fixture(scope="session")
def tgi_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a TGI-compatible worker serving HuggingFaceTB/SmolLM2-135M-Instruct (limits as in config.yaml)."""
    with running_worker("tgi", SMOLLM2_ID, tmp_path_factory.mktemp("tgi-worker"), environment=TGI_ENVIRONMENT) as url:
        yield url


@pytest.fixture(scope="session")
def tei_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a TEI-compatible worker serving sentence-transformers/all-MiniLM-L6-v2 (384 dims), which also
    speaks the instructor protocol (`POST /predictions/model`)."""
    with running_worker("instructor", MINILM_ID, tmp_path_factory.mktemp("tei-worker")) as url:
        yield url
