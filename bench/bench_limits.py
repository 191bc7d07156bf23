"""What metering and rate limits add to the router: the same router with both on against both off, in the same run.

The routers' bench harness (testkit/loadgen.py: a mock TGI backend and the load generator; testkit/processes.py)
drives two `python -m router` processes on the same moto state and mock: `off` (LISA_ROUTER_LIMITS=false,
LISA_ROUTER_METERING=false) and `on` (both on; every API token, user and group limited: four counters per request,
leased from DynamoDB, set high enough never to refuse, so the figures are the cost of checking and settling, not of
refusing). Figures: latency at concurrency 1 (p50/p99, non-streaming), and requests/s at concurrency 32,
non-streaming and streaming.
Targets (LISA issue 15): added p50 <= 0.3 ms, added p99 <= 1 ms, throughput at 32 within 10% of off.
"""

from __future__ import annotations

import json
import os
import statistics
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

LATENCY_REQUESTS = 3000
LATENCY_SECONDS = 6.0
THROUGHPUT_SECONDS = 4.0
CONCURRENCY = 32
HIGH = 10**12
LIMITS = {
    "token": {"requestsPerMinute": HIGH, "tokensPerMinute": HIGH},
    "user": {"tokensPerDay": HIGH},
    "group": {"tokensPerMonth": HIGH},
}
SWITCHES = ("LISA_ROUTER_LIMITS", "LISA_ROUTER_METERING")


def _latency(targets: list[Target]) -> dict[str, tuple[float, float]]:
    figures = {}
    for target in targets:
        result = run_load(target, False, mode="latency", warmup=300, count=LATENCY_REQUESTS, seconds=LATENCY_SECONDS)
        if result["errors"]:
            print(f"  !! {target.name}: {result['errors']} invalid answers", flush=True)
        samples = result["totals"]
        figures[target.name] = (ms(statistics.median(samples)), ms(pct(samples, 0.99)))
    return figures


def _throughput(targets: list[Target], stream: bool) -> dict[str, float]:
    rps = {}
    for target in targets:
        result = run_load(
            target, stream, mode="throughput", concurrency=CONCURRENCY, warmup_seconds=1.0, seconds=THROUGHPUT_SECONDS
        )
        if result["errors"] or result["failed_connections"]:
            print(f"  !! {target.name}: {result['errors']} invalid, {result['failure']}", flush=True)
        rps[target.name] = result["rps"]
    return rps


def _leased_counters() -> tuple[int, int]:
    """(counters the `on` router leased from, usage rows it wrote) in moto: the switches took effect."""
    from chalicelib import aws
    from chalicelib.settings import get_settings

    settings = get_settings()
    counters = aws.client("dynamodb").scan(TableName=settings.limit_counters_table, Select="COUNT")["Count"]
    usage = aws.client("dynamodb").scan(TableName=settings.usage_table, Select="COUNT")["Count"]
    return int(counters), int(usage)


def _in_process(calls: int = 20_000) -> tuple[float, float]:
    """(median, p99) µs of one admission and its settlement by the limiter itself (leases from moto), in-process:
    the limits' own CPU cost per request, which load on the machine distorts less than end-to-end latency."""
    import asyncio
    import time

    from chalicelib.contracts.limits import LimitsConfig
    from chalicelib.limits.policy import Caller
    from chalicelib.limits.store import CounterStore, OverrideStore
    from router.limits import Limiter

    limiter = Limiter(LimitsConfig.model_validate(LIMITS), OverrideStore(), CounterStore())
    caller = Caller("bench-token", "bench", ("users",))

    async def measure() -> list[int]:
        for _ in range(500):  # the first leases and the override lookup
            admission = await limiter.admit(caller, 300)
            if admission is not None:
                limiter.settle(admission, 28)
        samples = []
        clock = time.perf_counter_ns
        for _ in range(calls):
            start = clock()
            admission = await limiter.admit(caller, 300)
            if admission is not None:
                limiter.settle(admission, 28)
            samples.append(clock() - start)
        return sorted(samples)

    samples = asyncio.run(measure())
    return statistics.median(samples) / 1000, samples[int(len(samples) * 0.99)] / 1000


def _table(latency: dict[str, tuple[float, float]], rps: dict[str, float], stream_rps: dict[str, float]) -> None:
    (off50, off99), (on50, on99) = latency["off"], latency["on"]
    rows = [
        ("p50 ms, c=1", off50, on50, f"{on50 - off50:+.3f} ms", on50 - off50 <= 0.3, "<= +0.3 ms"),
        ("p99 ms, c=1", off99, on99, f"{on99 - off99:+.3f} ms", on99 - off99 <= 1.0, "<= +1 ms"),
    ]
    for label, figures in ((f"req/s c={CONCURRENCY}", rps), (f"req/s c={CONCURRENCY} stream", stream_rps)):
        change = figures["on"] / max(figures["off"], 1e-9) - 1
        rows.append((label, figures["off"], figures["on"], f"{change * 100:+.1f} %", change >= -0.10, ">= -10 %"))
    print(f"\n  {'':<22}{'off':>10}{'on':>10}{'on - off':>14}   target", flush=True)
    for label, off, on, delta, met, target in rows:
        verdict = "met" if met else "MISSED"
        print(f"  {label:<22}{off:>10.3f}{on:>10.3f}{delta:>14}   {target} {verdict}", flush=True)


def run() -> None:
    from workers.launch import free_port

    body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "What is the capital of France?"}]}
    body["max_tokens"] = TOKENS
    load = os.getloadavg()
    print(
        f"Setup: {len(CORES)} cores; routers pinned to core {sorted(PROXY_CORE)}, load generator and mock backend "
        f"on core {sorted(CLIENT_CORE)}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (other work on this "
        "machine is not excluded: take figures on a quiet machine)",
        flush=True,
    )
    log_dir = Path(tempfile.mkdtemp(prefix="bench-limits-"))
    mock_port, off_port, on_port = free_port(), free_port(), free_port()
    mock_url = f"http://127.0.0.1:{mock_port}"
    python = sys.executable
    with ExitStack() as stack:
        stack.enter_context(running_process("mock", mock_argv(mock_port), f"{mock_url}/health", log_dir, {}))
        env = stack.enter_context(moto_server())
        token = seed_lisa(mock_url)
        sessions = []
        for name, port, on in (("off", off_port, False), ("on", on_port, True)):
            switches = {key: "true" if on else "false" for key in SWITCHES}
            router_env = {**env, **switches, "LISA_LIMITS": json.dumps(LIMITS)}
            argv = [*pin(PROXY_CORE), python, "-m", "router", "--host", "127.0.0.1", "--port", str(port)]
            health = f"http://127.0.0.1:{port}/health"
            sessions.append(stack.enter_context(running_process(f"router-{name}", argv, health, log_dir, router_env)))
        waited = settle(sessions)
        print(f"Two routers (1 process each, uvloop), idle after {waited:.0f} s; logs in {log_dir}", flush=True)
        targets = [
            Target(name, port, "/v1/openai/chat/completions", token, body)
            for name, port in (("off", off_port), ("on", on_port))
        ]
        print("\nLatency at concurrency 1, non-streaming chat completion ...", flush=True)
        latency = _latency(targets)
        print(f"Throughput at concurrency {CONCURRENCY}, {THROUGHPUT_SECONDS:g} s after 1 s warm-up ...", flush=True)
        rps = _throughput(targets, stream=False)
        stream_rps = _throughput(targets, stream=True)
        _table(latency, rps, stream_rps)
        median, p99 = _in_process()
        print(f"  limiter in-process, admit + settle (4 rules): median {median:.2f} us, p99 {p99:.2f} us", flush=True)
        counters, usage = _leased_counters()
        print(f"\n  check: the `on` router leased {counters} limit counters; {usage} usage rows so far", flush=True)
