"""Real CPU model workers on loopback: TGI (SmolLM2-135M-Instruct), TEI and instructor (all-MiniLM-L6-v2).

The models are prepared with `workers.prepare.ensure_local_models` into `.lisa/models` (a no-op once done).
`running_worker` starts one subprocess on a free port with the limits a caller asks for; the test suite's session
fixtures (tests/support/workers.py) and the benchmarks both build on it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from runner.processes import ManagedProcess
from workers.launch import free_port, worker_spec
from workers.prepare import DEFAULT_OUT, ensure_local_models

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
