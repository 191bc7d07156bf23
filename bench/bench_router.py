"""The router's overhead against calling the backend directly, and against LiteLLM's proxy, in the same run.

One mock TGI backend answers `/v1/chat/completions` instantly (a fixed completion, or a stream of SSE chunks).
Three targets are measured with the same load generator and the same request:
  direct   the mock itself (the baseline),
  router   `python -m router` (moto-backed token auth and model registry, both cached; access log on, as deployed),
  litellm  LiteLLM's proxy (`litellm[proxy]`, pinned, installed by this bench into bench/.venv-litellm) with the mock
           as its OpenAI-compatible backend and a master key (no database: its cheapest configuration).
Figures: latency at concurrency 1 (p50/p99; added = proxy - direct), streaming time to first event, and requests/s
at concurrency 32 and 128. Targets (LISA issue): added p50 <= 2 ms, p99 <= 10 ms, throughput >= 3x LiteLLM's.

Setup on a 2-core machine: the proxy under test is pinned to core 1; the load generator and the mock share core 0,
each in its own process. The load generator is a raw asyncio/uvloop HTTP/1.1 client over keep-alive connections;
the "direct" throughput (load generator + mock alone on core 0) shows the headroom of that side.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from testkit.processes import moto_server, running_process

ROOT = Path(__file__).resolve().parent.parent
LITELLM_VERSION = "1.106.12"  # the newest litellm[proxy] whose dependencies all resolve from our package index
LITELLM_VENV = ROOT / "bench" / ".venv-litellm"
MASTER_KEY = "sk-bench-master-key"
MODEL = "bench-model"
TOKENS = 16  # content chunks per streamed answer
LATENCY_REQUESTS = 2000
LATENCY_SECONDS = 8.0
THROUGHPUT_SECONDS = 4.0
CONCURRENCIES = (32, 128)
_CONTENT_LENGTH = re.compile(rb"content-length:\s*(\d+)")
_STREAM_TRUE = re.compile(rb'"stream"\s*:\s*true')


# -- the mock TGI backend (its own process) --------------------------------------------------------------------
def _mock_responses() -> tuple[bytes, list[bytes]]:
    """(a complete non-streaming HTTP response, the writes of a streaming one) in TGI's Messages API shapes."""
    created = int(time.time())
    answer = {
        "object": "chat.completion",
        "id": "",
        "created": created,
        "model": MODEL,
        "system_fingerprint": "3.3.6-native",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Paris is the capital of France."},
                "logprobs": None,
                "finish_reason": "eos_token",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20},
    }
    body = json.dumps(answer).encode()
    plain = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)) + body

    def chunk(payload: dict[str, Any] | str) -> bytes:
        data = payload if isinstance(payload, str) else json.dumps(payload)
        event = f"data: {data}\n\n".encode()
        return b"%x\r\n%s\r\n" % (len(event), event)

    def delta(text: str, reason: str | None) -> dict[str, Any]:
        return {
            "object": "chat.completion.chunk",
            "id": "",
            "created": created,
            "model": MODEL,
            "system_fingerprint": "3.3.6-native",
            "choices": [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": text},
                    "logprobs": None,
                    "finish_reason": reason,
                }
            ],
            "usage": None,
        }

    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    head += b"Transfer-Encoding: chunked\r\n\r\n"
    writes = [head + chunk(delta(" tok", None))]
    writes += [chunk(delta(" tok", None)) for _ in range(TOKENS - 2)]
    writes.append(chunk(delta(" end", "length")))
    usage = {"prompt_tokens": 12, "completion_tokens": TOKENS, "total_tokens": 12 + TOKENS}
    writes.append(chunk({**delta("", None), "choices": [], "usage": usage}))
    writes.append(chunk("[DONE]") + b"0\r\n\r\n")
    return plain, writes


class _MockProtocol(asyncio.Protocol):
    """A minimal keep-alive HTTP/1.1 server: every POST is answered at once; `"stream": true` gets SSE chunks."""

    plain, stream = _mock_responses()
    health = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end]
            match = _CONTENT_LENGTH.search(head.lower())
            length = int(match.group(1)) if match else 0
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            if head.startswith(b"GET"):
                self.transport.write(self.health)
            elif _STREAM_TRUE.search(body):
                for write in self.stream:  # one write per event: the client may see the first before the rest
                    self.transport.write(write)
            else:
                self.transport.write(self.plain)


def _mock_main(port: int) -> None:
    import uvloop

    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(_MockProtocol, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    uvloop.run(serve())


# -- the load generator (its own process) ----------------------------------------------------------------------
async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes, stream: bool
) -> tuple[float, float, bool]:
    """Send one request on an open connection: (seconds to the whole answer, to the first body bytes, valid)."""
    clock = time.perf_counter
    started = clock()
    writer.write(request)
    head = (await reader.readuntil(b"\r\n\r\n")).lower()
    ok = head[9:12] == b"200"
    first = 0.0
    if b"transfer-encoding: chunked" in head:
        parts = []
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            if size == 0:
                await reader.readline()
                break
            parts.append((await reader.readexactly(size + 2))[:-2])
            first = first or clock() - started
        body = b"".join(parts)
    else:
        match = _CONTENT_LENGTH.search(head)
        body = await reader.readexactly(int(match.group(1)) if match else 0)
        first = clock() - started
    total = clock() - started
    valid = ok and (b"[DONE]" in body and b"error" not in body if stream else b'"choices"' in body)
    return total, first, valid


async def _load(spec: dict[str, Any]) -> dict[str, Any]:
    host, port, stream = spec["host"], spec["port"], spec["stream"]
    request = spec["request"].encode("latin-1")
    if spec["mode"] == "latency":
        reader, writer = await asyncio.open_connection(host, port)
        for _ in range(spec["warmup"]):
            await _exchange(reader, writer, request, stream)
        totals: list[float] = []
        firsts: list[float] = []
        errors = 0
        deadline = time.perf_counter() + spec["seconds"]
        while len(totals) < spec["count"] and time.perf_counter() < deadline:
            total, first, valid = await _exchange(reader, writer, request, stream)
            totals.append(total)
            firsts.append(first)
            errors += not valid
        writer.close()
        return {"totals": totals, "firsts": firsts, "errors": errors}

    # throughput: `concurrency` keep-alive connections, each sending back to back; completions counted in a window
    concurrency, warmup, seconds = spec["concurrency"], spec["warmup_seconds"], spec["seconds"]
    begin = time.perf_counter()
    window = (begin + warmup, begin + warmup + seconds)
    counts = {"done": 0, "errors": 0}
    latencies: list[float] = []

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < window[1]:
                total, _, valid = await _exchange(reader, writer, request, stream)
                now = time.perf_counter()
                if window[0] <= now <= window[1]:
                    counts["done" if valid else "errors"] += 1
                    latencies.append(total)
        finally:
            writer.close()

    results = await asyncio.gather(*(connection() for _ in range(concurrency)), return_exceptions=True)
    failures = [repr(r) for r in results if isinstance(r, BaseException)]
    latencies.sort()
    return {
        "rps": counts["done"] / seconds,
        "errors": counts["errors"],
        "failed_connections": len(failures),
        "failure": failures[0] if failures else None,
        "p50": latencies[len(latencies) // 2] if latencies else 0.0,
    }


def _load_main(spec_json: str) -> None:
    import uvloop

    print(json.dumps(uvloop.run(_load(json.loads(spec_json)))))


# -- orchestration ---------------------------------------------------------------------------------------------
CORES = sorted(os.sched_getaffinity(0))
PROXY_CORE = {CORES[-1]} if len(CORES) >= 2 else set(CORES)
CLIENT_CORE = {CORES[0]}


def _pin(cores: set[int]) -> list[str]:
    return ["taskset", "-c", ",".join(map(str, sorted(cores)))] if len(CORES) >= 2 else []


@dataclass(frozen=True)
class Target:
    name: str
    port: int
    path: str
    auth: str
    body: dict[str, Any]

    def request(self, stream: bool) -> str:
        payload = json.dumps({**self.body, "stream": stream})
        return (
            f"POST {self.path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {self.auth}\r\nContent-Length: {len(payload)}\r\n\r\n{payload}"
        )


def _run_load(target: Target, stream: bool, **spec: Any) -> dict[str, Any]:
    spec = {"host": "127.0.0.1", "port": target.port, "stream": stream, "request": target.request(stream), **spec}
    argv = [*_pin(CLIENT_CORE), sys.executable, "-m", "bench.bench_router", "load", json.dumps(spec)]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed against {target.name}:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def _cpu_seconds(session: int) -> float:
    """CPU time used so far by the processes of a session (a child started with start_new_session)."""
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == session:  # the session id (fields counted after the command name)
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _settle(sessions: list[int], timeout: float = 60.0) -> float:
    """Wait until the given children stop using CPU (start-up work after their health check answers, e.g. LiteLLM's,
    would otherwise run on the core of the proxy being measured). Returns the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = sum(_cpu_seconds(s) for s in sessions)
        time.sleep(1.0)
        if sum(_cpu_seconds(s) for s in sessions) - before < 0.03:
            break
    return time.monotonic() - started


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


def _lisa_state(mock_url: str) -> str:
    """Seed moto (pointed to by the environment): the mock registered as a TGI model, one API token. → the token."""
    import logging

    from chalicelib import aws
    from chalicelib.auth.tokens import TokenStore
    from chalicelib.registry.models import CreateModelRequest
    from chalicelib.registry.store import ModelStore
    from runner.bootstrap import bootstrap

    logging.getLogger("lisa-registry").setLevel(logging.WARNING)  # in this process only; the router logs as deployed
    aws.reset()
    bootstrap()
    request = CreateModelRequest.model_validate(
        {"modelName": MODEL, "hfModelId": "bench/mock", "inferenceContainer": "tgi", "endpointUrl": mock_url}
    )
    ModelStore().create(request)
    token, _ = TokenStore().create("bench", groups=["users"])
    return token


def _ms(seconds: float) -> float:
    return seconds * 1000


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def _latency(targets: list[Target]) -> None:
    for stream in (False, True):
        kind = "streaming (16 chunks), time to first event" if stream else "non-streaming chat completion"
        print(f"\nLatency at concurrency 1, {kind} (ms):", flush=True)
        figures: dict[str, tuple[float, float, float, int]] = {}
        for target in targets:
            result = _run_load(
                target, stream, mode="latency", warmup=200, count=LATENCY_REQUESTS, seconds=LATENCY_SECONDS
            )
            samples = result["firsts"] if stream else result["totals"]
            figures[target.name] = (
                _ms(statistics.median(samples)),
                _ms(_pct(samples, 0.99)),
                _ms(statistics.median(result["totals"])),
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
                result = _run_load(
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
                    f"p50 {_ms(result['p50']):7.2f} ms{trouble}",
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
                [*_pin(CLIENT_CORE), python, "-m", "bench.bench_router", "mock", str(mock_port)],
                f"{mock_url}/health",
                log_dir,
                {},
            )
        )
        env = stack.enter_context(moto_server())
        token = _lisa_state(mock_url)
        router = stack.enter_context(
            running_process(
                "router",
                [*_pin(PROXY_CORE), python, "-m", "router", "--host", "127.0.0.1", "--port", str(router_port)],
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
                [*_pin(PROXY_CORE), *litellm_argv, "--num_workers", "1"],
                f"http://127.0.0.1:{litellm_port}/health/liveliness",
                log_dir,
                litellm_env,
            )
        )
        waited = _settle([router, litellm_session])
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


if __name__ == "__main__":
    role, argument = sys.argv[1], sys.argv[2]
    if role == "mock":
        _mock_main(int(argument))
    elif role == "load":
        _load_main(argument)
    else:
        sys.exit(f"unknown role {role!r}")
