"""A terminated or interrupted benchmark stops what it started (testkit/processes.py): the bench process runs
`stop_on_signals` as `python -m bench` does and a child through `running_process` (here a real HTTP server that
itself starts a grandchild, as vLLM starts its engine core); after the signal neither survives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import suppress
from pathlib import Path

import psutil
import pytest

from workers.launch import ROOT, free_port

BENCH = """
import subprocess, sys, time
from pathlib import Path
from testkit.processes import running_process, stop_on_signals
stop_on_signals()
port, log_dir = sys.argv[1], Path(sys.argv[2])
server = "import subprocess, sys; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']);"
server += " import http.server as h; h.ThreadingHTTPServer(('127.0.0.1', %s), h.SimpleHTTPRequestHandler)" % port
server += ".serve_forever()"
with running_process("server", [sys.executable, "-c", server], f"http://127.0.0.1:{port}/", log_dir, {}) as pid:
    print("ready", pid, flush=True)
    time.sleep(600)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signalled_bench_leaves_no_child(sig: signal.Signals, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    bench = subprocess.Popen(
        [sys.executable, "-c", BENCH, str(free_port()), str(tmp_path)], stdout=subprocess.PIPE, text=True, env=env
    )
    children: list[psutil.Process] = []
    try:
        assert bench.stdout is not None
        line = bench.stdout.readline()
        assert line.startswith("ready"), line
        children = psutil.Process(bench.pid).children(recursive=True)
        assert len(children) == 2  # the server and its own child
        bench.send_signal(sig)
        assert bench.wait(30) != 0
        _, alive = psutil.wait_procs(children, timeout=5)
        assert alive == []
    finally:
        for process in [psutil.Process(bench.pid), *children] if bench.poll() is None else children:
            with suppress(psutil.NoSuchProcess):
                process.kill()
