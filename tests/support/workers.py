"""Real CPU model workers for tests: TGI (SmolLM2-135M-Instruct) and TEI + instructor (all-MiniLM-L6-v2).

Session fixtures `tgi_worker` and `tei_worker` yield the base URL of a worker subprocess on a free loopback port,
started once per test session (tests/conftest.py registers them). The models are prepared with
`workers.prepare.ensure_local_models` into `.lisa/models` (a no-op once done). `running_worker` starts one with
other limits for a single test module.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
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


HUGE = "The quick brown fox jumps over the lazy dog. " * 220_000  # ~10 MB, ~2.2 million tokens


def timed_post(url: str, body: Any) -> tuple[httpx.Response, float]:
    """POST `body` as JSON: (response, seconds)."""
    started = time.perf_counter()
    response = httpx.post(url, json=body, timeout=300)
    return response, time.perf_counter() - started


@dataclass(frozen=True)
class Stall:
    unloaded: float  # seconds of the small request alone (best of 3)
    loaded: float  # seconds of the small request sent while the huge one is handled
    small: httpx.Response
    huge: httpx.Response


def small_while_huge(url: str, small: Any, huge: Any) -> Stall:
    """Time `small` alone, then again 0.3 s after `huge` was sent (uploaded, being validated) to the same URL."""
    timed_post(url, small)  # warm
    unloaded = min(timed_post(url, small)[1] for _ in range(3))
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(timed_post, url, huge)
        time.sleep(0.3)
        response, loaded = timed_post(url, small)
        return Stall(unloaded, loaded, response, pending.result()[0])
