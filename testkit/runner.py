"""`python -m runner` as a child process, as `make run` starts it: for the tests of the whole local stack and the
soak benchmark."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Literal

import psutil

from workers.launch import ROOT, free_port

StopPolicy = Literal["kill", "terminate"]


class RunnerDidNotStart(RuntimeError):
    """The runner exited or printed no ready banner in time; the message ends with its stderr."""


@contextmanager
def running_runner(
    *args: str, log_dir: Path, timeout: float = 300.0, stop: StopPolicy = "kill"
) -> Iterator[tuple[str, str, subprocess.Popen[str]]]:
    """Start `python -m runner --port <free> *args` (its own moto server: no LISA_/AWS_/MOTO_ settings inherited;
    its state in `log_dir/state` unless `args` name a `--state-dir`: never the checkout's `.lisa`, which a
    `make run` of the developer's may be using) and wait for its ready banner; yield (url, admin API key,
    process); afterwards stop it and every process it had started, if any is left.

    `stop`: "kill" ends it at once (tests: nothing to flush); "terminate" asks for the runner's own clean stop
    (SIGTERM → stack.stop(), up to 60 s) and kills only if that fails (the soak benchmark, whose figures must not
    include a killed tree's leftovers). Its stdout goes to `log_dir/stdout.log` (a pipe nobody reads would block
    the runner once full), its stderr (the progress lines) to `log_dir/stderr.log`."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LISA_", "AWS_", "MOTO_"))}
    if "--state-dir" not in args:
        args = (*args, "--state-dir", str(log_dir / "state"))
    out, err = log_dir / "stdout.log", log_dir / "stderr.log"
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "runner", "--port", str(port), *args],
            cwd=ROOT,
            env=env,
            stdout=stdout,
            stderr=stderr,
            text=True,
        )
    started: list[psutil.Process] = []
    try:
        key = _wait_for_key(process, out, timeout)
        started = _descendants(process)
        if not key:
            raise RunnerDidNotStart(f"`python -m runner {' '.join(args)}` did not start:\n{err.read_text()[-3000:]}")
        yield f"http://127.0.0.1:{port}", key, process
    finally:
        # The engines run in their own sessions: neither the runner's death nor a failed stop ends them, so what
        # it had started by its banner (or has now) is killed too.
        leftovers = [*started, *_descendants(process)]
        _stop(process, stop)
        for child in leftovers:
            with suppress(psutil.NoSuchProcess):
                child.kill()
        psutil.wait_procs(leftovers, timeout=30)


def _wait_for_key(process: subprocess.Popen[str], out: Path, timeout: float) -> str:
    """The admin API key of the ready banner, or "" if the runner exits or prints none within `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        banner = out.read_text()
        if "Press Ctrl-C" in banner:
            found = re.search(r"API key \(admin, shown once\): (\S+)", banner)
            return found.group(1) if found else ""
        time.sleep(0.5)
    return ""


def _stop(process: subprocess.Popen[str], stop: StopPolicy) -> None:
    if process.poll() is not None:
        return
    if stop == "terminate":
        process.terminate()
        try:
            process.wait(60)
            return
        except subprocess.TimeoutExpired:
            pass
    process.kill()
    process.wait(30)


def _descendants(process: subprocess.Popen[str]) -> list[psutil.Process]:
    try:
        return psutil.Process(process.pid).children(recursive=True) if process.poll() is None else []
    except psutil.NoSuchProcess:
        return []
