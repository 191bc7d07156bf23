"""Real CPU model workers for tests: TGI (SmolLM2-135M-Instruct) and TEI + instructor (all-MiniLM-L6-v2).

Session fixtures `tgi_worker` and `tei_worker` yield the base URL of a worker subprocess on a free loopback port,
started once per test session (tests/conftest.py registers this module as a plugin). `running_worker` (from
testkit/workers.py, shared with bench/) starts one with other limits for a single test module; it is re-exported
here with the stall helpers the worker tests use.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from testkit.workers import TGI_ENVIRONMENT, local_model_dirs, running_worker
from workers.prepare import MINILM_ID, SMOLLM2_ID

__all__ = ["HUGE", "TGI_ENVIRONMENT", "Stall", "local_model_dirs", "running_worker", "small_while_huge"]


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
