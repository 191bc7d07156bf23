"""Child processes of the local runner (model engines): started on loopback, health-checked, stopped cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import requests


class ProcessFailed(RuntimeError):
    """A child process exited or never became healthy; the message carries the tail of its log."""


class ManagedProcess:
    """A `python -m module args...` child (in its own process group, with everything it starts) with its output
    in a log file and a health URL to wait on. `python` is another interpreter (a virtualenv's) to run it with."""

    def __init__(
        self,
        name: str,
        module: str,
        args: Sequence[str],
        health_url: str,
        log_dir: Path,
        env: Mapping[str, str] | None = None,
        python: str | None = None,
    ) -> None:
        self.name = name
        self.health_url = health_url
        self.log_path = log_dir / f"{name}.log"
        self._argv = [python or sys.executable, "-m", module, *args]
        self._env = {**os.environ, **(env or {})}
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> ManagedProcess:
        """Spawn the process in its own session (so stop() reaches its children), output to the log file."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                self._argv, stdout=log, stderr=subprocess.STDOUT, env=self._env, start_new_session=True
            )
        return self

    def wait_healthy(
        self,
        timeout: float = 300.0,
        progress: Callable[[str], None] | None = None,
        every: float = 5.0,
    ) -> None:
        """Block until the health URL answers 200, or raise with the log's tail if the child dies or times out.

        `progress` hears every `every` seconds how long it has waited and the log's last line (an engine that
        loads for half a minute shows what it is doing)."""
        start = time.monotonic()
        deadline, next_report = start + timeout, start + every
        if progress is not None:
            progress(f"{self.name}: waiting until it is ready (log: {self.log_path})")
        while time.monotonic() < deadline:
            if progress is not None and time.monotonic() >= next_report:
                next_report += every
                progress(f"{self.name}: {time.monotonic() - start:.0f}s: {self.log_tail(1).strip()[:100]}")
            if self._process is None or self._process.poll() is not None:
                raise ProcessFailed(f"{self.name} exited early:\n{self.log_tail()}")
            try:
                if requests.get(self.health_url, timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.25)
        raise ProcessFailed(f"{self.name} not healthy after {timeout:.0f}s:\n{self.log_tail()}")

    @property
    def running(self) -> bool:
        """Whether the child was started and has not exited."""
        return self._process is not None and self._process.poll() is None

    def answers(self, timeout: float = 1.0) -> bool:
        """One health probe: whether the health URL answers 200 now."""
        try:
            return requests.get(self.health_url, timeout=timeout).status_code == 200
        except requests.RequestException:
            return False

    def log_tail(self, lines: int = 30) -> str:
        """The last `lines` of the log, to show why a process failed."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the child's process group, then SIGKILL if it lingers."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout)
