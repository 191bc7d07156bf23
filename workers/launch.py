"""How to start the local worker for a model: the module, its arguments and environment (for the runner and tests).

The container environment from `config.yaml` (`containerConfig.environment`: MAX_CONCURRENT_REQUESTS,
MAX_INPUT_LENGTH, MAX_TOTAL_TOKENS...) is passed through unchanged: the workers read the same variables the
TGI/TEI launchers do, so a model behaves the same locally and in AWS.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


MODULES = {"tgi": "workers.tgi", "tei": "workers.tei", "instructor": "workers.tei"}


@dataclass(frozen=True)
class WorkerSpec:
    """`python -m {module} {args}` with `env` added to the parent's environment; healthy when `health_url` is 200."""

    module: str
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    url: str = ""

    @property
    def health_url(self) -> str:
        return f"{self.url}/health"


def worker_spec(
    container: str,
    model_id: str,
    model_dir: Path,
    port: int,
    *,
    host: str = "127.0.0.1",
    environment: Mapping[str, str] | None = None,
) -> WorkerSpec:
    """The worker for an inference container kind (`tgi`, `tei` or `instructor`) serving `model_dir`."""
    try:
        module = MODULES[str(container)]
    except KeyError:
        raise ValueError(f"no local worker for inference container {container!r}; have {sorted(MODULES)}") from None
    args = ["--model-dir", str(model_dir), "--model-id", model_id, "--host", host, "--port", str(port)]
    if container == "instructor":
        args += ["--protocol", "instructor"]
    env = {str(k): str(v) for k, v in (environment or {}).items()}
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    return WorkerSpec(module=module, args=args, env=env, url=f"http://{host}:{port}")
