"""The router's overhead against calling the backend directly, and against LiteLLM's proxy, in the same run.

One mock TGI backend (testkit/loadgen.py) answers `/v1/chat/completions` instantly (a fixed completion, or a stream
of SSE chunks).
Three targets are measured with the same load generator and the same request:
  direct   the mock itself (the baseline),
  router   `python -m router` (moto-backed token auth and model registry, both cached; access log on, as deployed),
  litellm  LiteLLM's proxy (`litellm[proxy]`, pinned, installed by this bench into bench/.venv-litellm) with the mock
           as its OpenAI-compatible backend and a master key (no database: its cheapest configuration).
Figures: latency at concurrency 1 (p50/p99; added = proxy - direct), streaming time to first event, and requests/s
at concurrency 32 and 128. Targets (LISA issue): added p50 <= 2 ms, p99 <= 10 ms, throughput >= 3x LiteLLM's.

Setup on a 2-core machine: the proxy under test is pinned to core 1; the load generator and the mock share core 0,
each in its own process. The load generator (testkit/loadgen.py) is a raw asyncio/uvloop HTTP/1.1 client over
keep-alive connections; the "direct" throughput (load generator + mock alone on core 0) shows the headroom of that side.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from testkit.loadgen import (
    CLIENT_CORE,
    CORES,
    MODEL,
    PROXY_CORE,
    TOKENS,
    Target,
    mock_argv,
    ms,
    pct,
    pin,
    run_load,
    seed_lisa,
    settle,
)
from testkit.processes import moto_server, running_process

ROOT = Path(__file__).resolve().parent.parent
LITELLM_VERSION = "1.106.12"  # the newest litellm[proxy] whose dependencies all resolve from our package index
LITELLM_VENV = ROOT / "bench" / ".venv-litellm"
MASTER_KEY = "sk-bench-master-key"
LATENCY_REQUESTS = 2000
LATENCY_SECONDS = 8.0
THROUGHPUT_SECONDS = 4.0
CONCURRENCIES = (32, 128)


def _ensure_litellm() -> Path:
    """bench/.venv-litellm with litellm[proxy]==LITELLM_VERSION (created on first use; never the main venv)."""
    python = LITELLM_VENV / "bin" / "python"
    probe = [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"]
    if python.exists():
        found = subprocess.run(probe, capture_output=True, text=True, check=False).stdout.strip()
        if found == LITELLM_VERSION:
            return LITELLM_VENV / "bin" / "litellm"
    print(f"  installing litellm[proxy]=={LITELLM_VERSION} into {LITELLM_VENV.relative_to(ROOT)} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(LITELLM_VENV)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", f"litellm[proxy]=={LITELLM_VERSION}"],
        check=True,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    return LITELLM_VENV / "bin" / "litellm"


def _latency(targets: list[Target]) -> None:
    for stream in (False, True):
        kind = "streaming (16 chunks), time to first event" if stream else "non-streaming chat completion"
        print(f"\nLatency at concurrency 1, {kind} (ms):", flush=True)
        figures: dict[str, tuple[float, float, float, int]] = {}
        for target in targets:
            result = run_load(
                target, stream, mode="latency", warmup=200, count=LATENCY_REQUESTS, seconds=LATENCY_SECONDS
            )
            samples = result["firsts"] if stream else result["totals"]
            figures[target.name] = (
                ms(statistics.median(samples)),
                ms(pct(samples, 0.99)),
                ms(statistics.median(result["totals"])),
                len(samples),
            )
            if result["errors"]:
                print(f"  !! {target.name}: {result['errors']} invalid answers", flush=True)
        d50, d99 = figures["direct"][:2]
        for name, (p50, p99, whole, n) in figures.items():
            extra = f"   whole stream p50 {whole:7.3f}" if stream else ""
            line = f"  {name:<8} p50 {p50:7.3f}  p99 {p99:7.3f}  (n={n}){extra}"
            if name != "direct":
                line += f"   added: p50 {p50 - d50:+7.3f}  p99 {p99 - d99:+7.3f}"
            print(line, flush=True)
        if "litellm" in figures:
            (r50, r99), (l50, l99) = figures["router"][:2], figures["litellm"][:2]
            print(
                f"  router vs litellm: added p50 {r50 - d50:.3f} vs {l50 - d50:.3f} ms "
                f"(x{(l50 - d50) / max(r50 - d50, 1e-6):.1f} less), "
                f"added p99 {r99 - d99:.3f} vs {l99 - d99:.3f} ms",
                flush=True,
            )
        if not stream:
            added50, added99 = figures["router"][0] - d50, figures["router"][1] - d99
            verdict = "met" if added50 <= 2 and added99 <= 10 else "MISSED"
            print(f"  target added p50 <= 2 ms, p99 <= 10 ms: {verdict}", flush=True)


def _throughput(targets: list[Target]) -> None:
    for stream in (False, True):
        kind = "streaming (16 chunks)" if stream else "non-streaming"
        print(f"\nThroughput, {kind}, {THROUGHPUT_SECONDS:g} s after 1 s warm-up (requests/s):", flush=True)
        for concurrency in CONCURRENCIES:
            rps: dict[str, float] = {}
            for target in targets:
                result = run_load(
                    target,
                    stream,
                    mode="throughput",
                    concurrency=concurrency,
                    warmup_seconds=1.0,
                    seconds=THROUGHPUT_SECONDS,
                )
                rps[target.name] = result["rps"]
                trouble = ""
                if result["errors"] or result["failed_connections"]:
                    trouble = f"   !! {result['errors']} invalid, {result['failed_connections']} connections failed"
                    trouble += f" ({result['failure']})" if result["failure"] else ""
                print(
                    f"  c={concurrency:<4} {target.name:<8} {result['rps']:8.0f} req/s   "
                    f"p50 {ms(result['p50']):7.2f} ms{trouble}",
                    flush=True,
                )
            ratio = f"router/direct x{rps['router'] / rps['direct']:.2f}"
            if "litellm" in rps:
                times = rps["router"] / max(rps["litellm"], 1e-9)
                ratio += f"   router/litellm x{times:.1f}"
                if not stream:
                    ratio += f"  (target >= x3: {'met' if times >= 3 else 'MISSED'})"
            print(f"  c={concurrency:<4} {ratio}", flush=True)


def run() -> None:
    from workers.launch import free_port

    body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "What is the capital of France?"}]}
    body["max_tokens"] = TOKENS
    print(
        f"Setup: {len(CORES)} cores; proxy under test pinned to core {sorted(PROXY_CORE)}, load generator and mock "
        f"backend (separate processes) on core {sorted(CLIENT_CORE)}; other work on this machine is not excluded.",
        flush=True,
    )
    litellm = _ensure_litellm()
    log_dir = Path(tempfile.mkdtemp(prefix="bench-router-"))
    mock_port, router_port, litellm_port = free_port(), free_port(), free_port()
    mock_url = f"http://127.0.0.1:{mock_port}"
    config = log_dir / "litellm.yaml"
    config.write_text(
        json.dumps(
            {
                "model_list": [
                    {
                        "model_name": MODEL,
                        "litellm_params": {"model": f"openai/{MODEL}", "api_base": f"{mock_url}/v1", "api_key": "x"},
                    }
                ],
                "general_settings": {"master_key": MASTER_KEY},
                "litellm_settings": {"telemetry": False},
            }
        )
    )
    with ExitStack() as stack:
        python = sys.executable
        stack.enter_context(
            running_process(
                "mock",
                mock_argv(mock_port),
                f"{mock_url}/health",
                log_dir,
                {},
            )
        )
        env = stack.enter_context(moto_server())
        token = seed_lisa(mock_url)
        router = stack.enter_context(
            running_process(
                "router",
                [*pin(PROXY_CORE), python, "-m", "router", "--host", "127.0.0.1", "--port", str(router_port)],
                f"http://127.0.0.1:{router_port}/health",
                log_dir,
                env,
            )
        )
        litellm_env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False"}
        litellm_argv = [str(litellm), "--config", str(config), "--host", "127.0.0.1", "--port", str(litellm_port)]
        litellm_session = stack.enter_context(
            running_process(
                "litellm",
                [*pin(PROXY_CORE), *litellm_argv, "--num_workers", "1"],
                f"http://127.0.0.1:{litellm_port}/health/liveliness",
                log_dir,
                litellm_env,
            )
        )
        waited = settle([router, litellm_session])
        print(
            f"LiteLLM {LITELLM_VERSION} (1 uvicorn worker), router (1 process, uvloop); both idle after "
            f"{waited:.0f} s of start-up work; logs in {log_dir}",
            flush=True,
        )
        # The router runs as deployed; LiteLLM gets its OpenAI-compatible route and the master key.
        targets = [
            Target("direct", mock_port, "/v1/chat/completions", "none", body),
            Target("router", router_port, "/v1/openai/chat/completions", token, body),
            Target("litellm", litellm_port, "/v1/chat/completions", MASTER_KEY, body),
        ]
        _latency(targets)
        _throughput(targets)
