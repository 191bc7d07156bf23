"""`python -m runner` as a child process, as `make run` starts it: for the tests of the whole local stack."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import psutil
import pytest

from workers.launch import ROOT, free_port


@contextmanager
def running_runner(
    *args: str, log_dir: Path, timeout: float = 300.0
) -> Iterator[tuple[str, str, subprocess.Popen[str]]]:
    """Start `python -m runner --port <free> *args` (its own moto server: no LISA_/AWS_ settings inherited) and
    wait for its ready banner; yield (url, admin API key, process); afterwards kill it and every process it had
    started, if any is left.

    Its stdout goes to `log_dir/stdout.log` (a pipe nobody reads would block the runner once full), its stderr
    (the progress lines) to `log_dir/stderr.log`."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LISA_", "AWS_"))}
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
        key = ""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process.poll() is None:
            banner = out.read_text()
            if "Press Ctrl-C" in banner:
                found = re.search(r"API key \(admin, shown once\): (\S+)", banner)
                key = found.group(1) if found else ""
                break
            time.sleep(0.5)
        started = _descendants(process)
        if not key:
            pytest.fail(f"`python -m runner {' '.join(args)}` did not start:\n{err.read_text()[-3000:]}")
        yield f"http://127.0.0.1:{port}", key, process
    finally:
        # The engines run in their own sessions: neither the runner's death nor a failed stop ends them, so what
        # it had started by its banner (or has now) is killed too.
        leftovers = [*started, *_descendants(process)]
        if process.poll() is None:
            process.kill()
            process.wait(30)
        for child in leftovers:
            with suppress(psutil.NoSuchProcess):
                child.kill()
        psutil.wait_procs(leftovers, timeout=30)


def _descendants(process: subprocess.Popen[str]) -> list[psutil.Process]:
    try:
        return psutil.Process(process.pid).children(recursive=True) if process.poll() is None else []
    except psutil.NoSuchProcess:
        return []
