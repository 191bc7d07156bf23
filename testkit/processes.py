"""Child processes that the benchmarks start by command line (a mock, the router, LiteLLM), and the embedded moto
server they register models in; `runner.processes.ManagedProcess` starts `python -m module` engines the same way.

Every child runs in its own session, so stopping it reaches whatever it started; `stop_on_signals` turns SIGTERM
into the KeyboardInterrupt Ctrl-C raises, so a terminated benchmark unwinds its context managers and stops them.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import FrameType

import requests

from workers.launch import ROOT, free_port


@contextmanager
def running_process(
    name: str, argv: list[str], health: str, log_dir: Path, env: dict[str, str], timeout: float = 120.0
) -> Iterator[int]:
    """`argv` as a child in its own session (output to `log_dir/<name>.log`) that must answer `health` within
    `timeout`; yields its pid (= its session id); afterwards its whole process group is stopped."""
    log = (log_dir / f"{name}.log").open("wb")
    process = subprocess.Popen(
        argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env}, start_new_session=True
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited early; see {log.name}")
            with suppress(requests.RequestException):
                if requests.get(health, timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not healthy after {timeout:.0f} s; see {log.name}")
            time.sleep(0.2)
        yield process.pid
    finally:
        _stop_group(process)
        log.close()


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the child's process group, SIGKILL it if the child lingers."""
    if process.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
            return
        except subprocess.TimeoutExpired:
            pass
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(5)


@contextmanager
def moto_server() -> Iterator[dict[str, str]]:
    """An embedded moto server on a free port, pointed to by this process's environment while it runs; yields that
    environment (for children that must reach it)."""
    from moto.server import ThreadedMotoServer

    from runner.moto_fixes import serialize_moto_dynamodb

    serialize_moto_dynamodb()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request lines
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {
        "LISA_AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def stop_on_signals() -> None:
    """Make SIGTERM (and SIGINT) raise KeyboardInterrupt once, so `finally` blocks stop the children; a second
    signal during that cleanup is ignored instead of cutting it short."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, interrupt)
