"""vLLM's CPU build against our TGI-protocol CPU worker on the same weights, direct and through the router, in one run.

The two engines are config.yaml's chat models on the same weights (SmolLM2-135M-Instruct as `make models` stages
it): the default on vLLM and its TGI-protocol twin, each with its config entry's settings, started as the local
runner starts them (`workers.launch.model_spec`: vLLM from .venv-vllm with the local CPU defaults,
`workers.launch.cpu_defaults`, printed at the start). The router is `python -m router` as deployed (moto-backed
registry and token auth), with both registered as models. Four targets:
  worker direct   the worker's `/v1/chat/completions`     worker router   the same through `/v1/openai/...`
  vllm direct     vLLM's `/v1/chat/completions`           vllm router     the same through `/v1/openai/...`
Load: 1, 4 and 16 concurrent streamed chat completions, greedy, 128 tokens each (a story prompt that does not
stop early; tokens are counted from the streams' `usage`, and a stream that ends short is reported). Figures:
aggregate tok/s (all streams' completion tokens / wall time of the round) and the median time to the first content
token. Targets (LISA issue 13): at 4 streams vLLM through the router >= 2.5x the worker (through the router too),
and vLLM through the router >= 0.95x vLLM direct.

Targets and concurrencies alternate within each round and the best of the rounds is kept, so a burst of outside load
on the shared cores does not decide a ratio (a busy machine gets fewer rounds: BUDGET_SECONDS; on 2 cores the
first round alone takes ~8-10 minutes, so one round is the rule). Each cell is printed as it ends. The idle engine
stays up while the other is measured: measured idle, the worker uses 0.00 cores and vLLM's tree 0.01-0.02 (~0.3
for the 2 s after a burst, its OpenMP threads spinning down). The load generator runs in this process (a few
hundred SSE events/s: a few percent of a core, the same for every target). SIGTERM/SIGINT stop every child
(`python -m bench` installs `testkit.processes.stop_on_signals`).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from chalicelib.config import EcsModel, InferenceContainer, ModelType, load_config
from runner.processes import ManagedProcess
from testkit.processes import moto_server, running_process
from testkit.workers import local_model_dirs
from workers.launch import free_port, model_spec, vllm_python

CONCURRENCIES = (1, 4, 16)
TOKENS = 128
ROUNDS = 3
BUDGET_SECONDS = 360.0  # no further round once it would end past this (on a busy machine: fewer rounds)
PROMPT = "Write a long story about a dragon who lives in a castle."  # greedy: 128 tokens before it ends
CONFIG = Path(__file__).resolve().parents[1] / "config.yaml"
ENGINE_TIMEOUT = 300.0
CELL_SECONDS = 600.0  # a stream still open after this is a failure, not a hang
WARM_UP_TOKENS = 8
RATIOS = [  # (label, numerator, denominator) of aggregate tok/s, printed at every concurrency
    ("vllm/worker direct", "vllm direct", "worker direct"),
    ("vllm/worker via router", "vllm router", "worker router"),
    ("router/direct worker", "worker router", "worker direct"),
    ("router/direct vllm", "vllm router", "vllm direct"),
]
TARGETS = [  # the issue's, at 4 streams: (label, numerator, denominator, minimum ratio)
    ("at 4 streams, vLLM via router / worker via router", "vllm router", "worker router", 2.5),
    ("at 4 streams, vLLM via router / vLLM direct", "vllm router", "vllm direct", 0.95),
]


def _models() -> tuple[EcsModel, EcsModel]:
    """(the worker, vLLM): config.yaml's first text model on each engine, which must share its weights."""
    models = [m for m in load_config(CONFIG).ecs_models if m.model_type is ModelType.TEXTGEN and not m.endpoint_url]
    first = {m.inference_container: m for m in reversed(models)}
    try:
        worker, vllm = first[InferenceContainer.TGI], first[InferenceContainer.VLLM]
    except KeyError as missing:
        sys.exit(f"{CONFIG} has no local textgen model on {missing}: the bench compares one on tgi and one on vllm")
    if worker.model_id != vllm.model_id:
        sys.exit(f"{CONFIG}: {worker.model_name} and {vllm.model_name} serve different weights")
    return worker, vllm


@contextmanager
def _engines(models: list[EcsModel], folder: Path, log_dir: Path) -> Iterator[list[str]]:
    """The models' local engines, started together as the runner starts them; yields their URLs."""
    specs = [model_spec(model, folder, free_port()) for model in models]
    for model, spec in zip(models, specs, strict=True):
        if model.inference_container is InferenceContainer.VLLM:
            cpu = " ".join(f"{k}={v}" for k, v in spec.env.items() if k.startswith("VLLM_CPU_"))
            print(f"  {model.model_name}: {' '.join(spec.args[8:])} {cpu}", flush=True)
    processes = [
        ManagedProcess(m.model_name, s.module, s.args, s.health_url, log_dir, s.env, s.python)
        for m, s in zip(models, specs, strict=True)
    ]
    try:
        for process in processes:
            process.start()
        for process in processes:
            process.wait_healthy(ENGINE_TIMEOUT)
        yield [spec.url for spec in specs]
    finally:
        for process in processes:
            process.stop()


def _register(endpoints: list[tuple[EcsModel, str]]) -> str:
    """Seed moto (pointed to by the environment) with the engines as InService models and one API token → the token."""
    import logging

    from chalicelib import aws
    from chalicelib.auth.tokens import TokenStore
    from chalicelib.registry.models import CreateModelRequest
    from chalicelib.registry.store import ModelStore
    from runner.bootstrap import bootstrap

    logging.getLogger("lisa-registry").setLevel(logging.WARNING)
    aws.reset()
    bootstrap()
    for model, url in endpoints:
        request = CreateModelRequest.model_validate(
            {
                "modelName": model.model_name,
                "hfModelId": model.model_id,
                "inferenceContainer": model.inference_container.value,
                "endpointUrl": url,
                "defaultModelKwargs": model.default_model_kwargs,
            }
        )
        ModelStore().create(request)
    token, _ = TokenStore().create("bench", groups=["users"])
    return token


# -- the load ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """One way of calling one engine."""

    name: str
    base_url: str
    path: str
    model: str
    token: str | None = None


@dataclass
class Round:
    """One round at one concurrency: completion tokens, wall seconds, each stream's first-token seconds."""

    tokens: int
    seconds: float
    firsts: list[float]
    short: int = 0  # streams that ended before TOKENS
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Aggregate tokens per second."""
        return self.tokens / self.seconds


async def _stream(client: httpx.AsyncClient, target: Target, tokens: int) -> tuple[float, int]:
    """One streamed chat completion of up to `tokens` → (seconds to the first content token, completion tokens from
    `usage`)."""
    body = {
        "model": target.model,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    headers = {"Authorization": f"Bearer {target.token}"} if target.token else {}
    started = time.perf_counter()
    first, produced = 0.0, -1
    async with client.stream("POST", target.base_url + target.path, json=body, headers=headers) as response:
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {(await response.aread())[:300]!r}")
        async for line in response.aiter_lines():
            if not line.startswith("data:") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[5:])
            if "error" in chunk:
                raise RuntimeError(f"error event: {str(chunk['error'])[:300]}")
            if not first and any((c.get("delta") or {}).get("content") for c in chunk.get("choices") or []):
                first = time.perf_counter() - started
            if chunk.get("usage"):
                produced = int(chunk["usage"]["completion_tokens"])
    if produced < 0:
        raise RuntimeError("the stream carried no usage")
    return first, produced


async def _round(target: Target, concurrency: int, tokens: int = TOKENS, check: bool = False) -> Round:
    """`concurrency` streams of `tokens` at once (a stream still open after CELL_SECONDS counts as failed); `check`
    raises the first stream's failure."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=CELL_SECONDS, limits=limits) as client:
        started = time.perf_counter()
        streams = [asyncio.wait_for(_stream(client, target, tokens), CELL_SECONDS) for _ in range(concurrency)]
        results = await asyncio.gather(*streams, return_exceptions=True)
        seconds = time.perf_counter() - started
    done = [r for r in results if not isinstance(r, BaseException)]
    errors = [repr(r)[:300] for r in results if isinstance(r, BaseException)]
    if check and errors:
        raise RuntimeError(errors[0])
    return Round(
        tokens=sum(t for _, t in done),
        seconds=seconds,
        firsts=[f for f, _ in done],
        short=sum(t < tokens for _, t in done),
        errors=errors,
    )


@dataclass(frozen=True)
class Figure:
    """The best of a target's rounds at one concurrency."""

    rate: float  # tok/s, best round
    first_ms: float  # the lowest of the rounds' median first-token times
    short: int
    errors: list[str]


def _best(rounds: list[Round]) -> Figure:
    medians = [statistics.median(r.firsts) for r in rounds if r.firsts]
    return Figure(
        rate=max(r.rate for r in rounds),
        first_ms=1000 * min(medians) if medians else float("nan"),
        short=sum(r.short for r in rounds),
        errors=[e for r in rounds for e in r.errors],
    )


def _reachable(target: Target) -> bool:
    """Whether 4 short streams through `target` work (vLLM through a router without its backend does not); this is
    also the target's warm-up."""
    try:
        asyncio.run(_round(target, 4, WARM_UP_TOKENS, check=True))
    except RuntimeError as error:
        print(f"  !! {target.name}: left out: {error}", flush=True)
        return False
    return True


def _measure(targets: list[Target]) -> dict[tuple[str, int], Figure]:
    """Every target at every concurrency, interleaved, ROUNDS times or as many as fit in BUDGET_SECONDS."""
    rounds: dict[tuple[str, int], list[Round]] = {(t.name, c): [] for t in targets for c in CONCURRENCIES}
    began = time.monotonic()
    for number in range(1, ROUNDS + 1):
        started = time.monotonic()
        for concurrency in CONCURRENCIES:
            for target in targets:
                cell = asyncio.run(_round(target, concurrency))
                rounds[target.name, concurrency].append(cell)
                print(f"    {target.name} x{concurrency}: {cell.seconds:.1f} s, {cell.rate:.1f} tok/s", flush=True)
        print(f"  round {number}/{ROUNDS}: {time.monotonic() - started:.0f} s, {_load()}", flush=True)
        if number < ROUNDS and (time.monotonic() - began) * (number + 1) / number > BUDGET_SECONDS:
            print(f"  no round {number + 1}: it would end past the {BUDGET_SECONDS:.0f} s budget", flush=True)
            break
    return {key: _best(value) for key, value in rounds.items()}


# -- the report -------------------------------------------------------------------------------------------------------
def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def _cell(figure: Figure) -> str:
    text = f"{figure.rate:.1f} tok/s, {figure.first_ms:.0f} ms"
    if figure.short:
        text += f" ({figure.short} short)"
    if figure.errors:
        text += f" ({len(figure.errors)} failed)"
    return text


def _verdict(label: str, value: float, target: float) -> None:
    print(f"  {label:<58} x{value:5.2f}   target >= x{target:.2f}: {'PASS' if value >= target else 'FAIL'}", flush=True)


def _report(targets: list[Target], figures: dict[tuple[str, int], Figure]) -> None:
    names = [t.name for t in targets]
    print(f"\n| concurrent streams | {' | '.join(names)} |", flush=True)
    print(f"|---|{'---|' * len(names)}")
    for concurrency in CONCURRENCIES:
        print(f"| {concurrency} | {' | '.join(_cell(figures[n, concurrency]) for n in names)} |")
    for (name, concurrency), figure in figures.items():
        for error in figure.errors[:2]:
            print(f"  !! {name} at {concurrency}: {error}")
    print("\nRatios of aggregate tok/s:", flush=True)
    for concurrency in CONCURRENCIES:
        rate = {n: figures[n, concurrency].rate for n in names}
        parts = [
            f"{label} x{rate[top] / rate[bottom]:.2f}"
            for label, top, bottom in RATIOS
            if top in rate and rate.get(bottom)
        ]
        if parts:
            print(f"  {concurrency:>2} streams: {';  '.join(parts)}", flush=True)
    at4 = {n: figures[n, 4].rate for n in names}
    for label, top, bottom, target in TARGETS:
        if top in at4 and at4.get(bottom):
            _verdict(label, at4[top] / at4[bottom], target)
        else:
            print(f"  {label}: not measured ({top} or {bottom} missing)", flush=True)


def run() -> None:
    began = time.monotonic()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not vllm_python().is_file():
        sys.exit(f"{vllm_python()} is missing: create .venv-vllm with `make vllm`")
    worker, vllm = _models()
    folder = local_model_dirs()[vllm.model_id]
    log_dir = Path(tempfile.mkdtemp(prefix="bench-engines-"))
    print(
        f"{vllm.model_id} as config.yaml serves it ({vllm.model_name} on vLLM, {worker.model_name} on the worker), "
        f"{TOKENS} tokens per stream, greedy, streams {', '.join(map(str, CONCURRENCIES))}; "
        f"best of up to {ROUNDS} interleaved rounds in {BUDGET_SECONDS:.0f} s; {os.cpu_count()} cores, {_load()}; "
        f"logs in {log_dir}",
        flush=True,
    )
    with ExitStack() as stack:
        # Both engines load at once (vLLM takes ~30 s); the router starts once they are registered.
        worker_url, vllm_url = stack.enter_context(_engines([worker, vllm], folder, log_dir))
        env = stack.enter_context(moto_server())
        token = _register([(worker, worker_url), (vllm, vllm_url)])
        port = free_port()
        argv = [sys.executable, "-m", "router", "--host", "127.0.0.1", "--port", str(port)]
        stack.enter_context(running_process("router", argv, f"http://127.0.0.1:{port}/health", log_dir, env))
        router = f"http://127.0.0.1:{port}"
        print(f"  engines and router ready after {time.monotonic() - began:.0f} s", flush=True)
        targets = [
            Target("worker direct", worker_url, "/v1/chat/completions", worker.model_name),
            Target("worker router", router, "/v1/openai/chat/completions", worker.model_name, token),
            Target("vllm direct", vllm_url, "/v1/chat/completions", vllm.model_name),
            Target("vllm router", router, "/v1/openai/chat/completions", vllm.model_name, token),
        ]
        targets = [t for t in targets if _reachable(t)]
        figures = _measure(targets)
    _report(targets, figures)
    print(f"\n  bench engines: {time.monotonic() - began:.0f} s in all, {_load()}", flush=True)
