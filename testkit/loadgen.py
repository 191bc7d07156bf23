"""The router benchmarks' harness: a mock TGI backend, a load generator (each its own process, `python -m
testkit.loadgen mock PORT` / `load SPEC`), CPU pinning and the moto state they serve, shared by bench/bench_router.py
and bench/bench_limits.py.

The mock answers `/v1/chat/completions` instantly in TGI's Messages API shapes (a fixed completion, or a stream of
`TOKENS` SSE chunks). The load generator is a raw asyncio/uvloop HTTP/1.1 client over keep-alive connections. On a
machine with 2 cores or more, the proxy under test runs on `PROXY_CORE` and the mock and load generator on
`CLIENT_CORE` (`pin`).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from workers.launch import ROOT

MODEL = "bench-model"
TOKENS = 16  # content chunks per streamed answer
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


def pin(cores: set[int]) -> list[str]:
    """The `taskset` prefix that runs a command on `cores` (nothing on a one-core machine)."""
    return ["taskset", "-c", ",".join(map(str, sorted(cores)))] if len(CORES) >= 2 else []


@dataclass(frozen=True)
class Target:
    """Where the load generator sends its one request, again and again: a port, a path, a Bearer credential."""

    name: str
    port: int
    path: str
    auth: str
    body: dict[str, Any]

    def request(self, stream: bool) -> str:
        """The raw HTTP/1.1 request (the body with `"stream": stream`)."""
        payload = json.dumps({**self.body, "stream": stream})
        return (
            f"POST {self.path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {self.auth}\r\nContent-Length: {len(payload)}\r\n\r\n{payload}"
        )


def run_load(target: Target, stream: bool, **spec: Any) -> dict[str, Any]:
    """One run of the load generator (its own process, on the client core) against `target`; `spec` says how:
    `mode="latency"` (`warmup`, `count`, `seconds`: one connection) or `mode="throughput"` (`concurrency`,
    `warmup_seconds`, `seconds`). Returns its figures (seconds)."""
    spec = {"host": "127.0.0.1", "port": target.port, "stream": stream, "request": target.request(stream), **spec}
    argv = [*pin(CLIENT_CORE), sys.executable, "-m", "testkit.loadgen", "load", json.dumps(spec)]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed against {target.name}:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def mock_argv(port: int) -> list[str]:
    """The command line of the mock TGI backend on `port`, pinned to the client core."""
    return [*pin(CLIENT_CORE), sys.executable, "-m", "testkit.loadgen", "mock", str(port)]


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


def settle(sessions: list[int], timeout: float = 60.0) -> float:
    """Wait until the given children stop using CPU (start-up work after their health check answers, e.g. LiteLLM's,
    would otherwise run on the core of the proxy being measured). Returns the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = sum(_cpu_seconds(s) for s in sessions)
        time.sleep(1.0)
        if sum(_cpu_seconds(s) for s in sessions) - before < 0.03:
            break
    return time.monotonic() - started


def seed_lisa(mock_url: str) -> str:
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


def ms(seconds: float) -> float:
    """Seconds as milliseconds."""
    return seconds * 1000


def pct(samples: list[float], q: float) -> float:
    """The `q` quantile (0-1) of `samples` (nearest rank)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


if __name__ == "__main__":
    role, argument = sys.argv[1], sys.argv[2]
    if role == "mock":
        _mock_main(int(argument))
    elif role == "load":
        _load_main(argument)
    else:
        sys.exit(f"unknown role {role!r}")
