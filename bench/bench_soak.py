"""Soak: 10,000 mixed requests against `make run`, watching memory, connections and file descriptors.

`python -m runner` starts as `make run` starts it (default config.yaml, its own moto server, the real CPU workers),
as a child (`testkit.runner`, stopped cleanly) whose stdout and stderr go to files (nothing waits on an unread
pipe). Once one document is ingested, CLIENTS threads send a fixed rotation of requests, each over its own
keep-alive connection: chat completions (max_tokens 4), embeddings (the TEI and the instructor model, OpenAI and
native routes), sessions CRUD, model listings (OpenAI, native, control plane) and RAG search. Printed: the resident
memory of the runner's process tree (the runner and its model workers; the embedded PostgreSQL is left out: its
shared buffers and per-connection backends are the database's, not LISA's) after WARMUP requests and at the end
(target: within 10%), the tree's open TCP connections and file descriptors at the same two points, how many answers
were 2xx, and the time taken.
"""

from __future__ import annotations

import itertools
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import psutil
import requests

from testkit.runner import running_runner

TOTAL = 10_000
WARMUP = 500
CLIENTS = 8
TARGET_GROWTH = 0.10
CHAT_MODEL = "smollm2-135m-instruct"
TEI_MODEL = "all-minilm-l6-v2"
INSTRUCTOR_MODEL = "all-minilm-l6-v2-instructor"
REPOSITORY = "default"
DOCUMENT = b"The LISA soak test document: the harbour lighthouse is painted red and white and was built in 1887."

Call = Callable[[requests.Session], requests.Response]


def _tree(process: psutil.Process) -> list[psutil.Process]:
    """The runner and its descendants, without the embedded PostgreSQL's processes."""
    members = [process, *process.children(recursive=True)]
    return [p for p in members if _alive(p) and not p.name().startswith("postgres")]


def _alive(process: psutil.Process) -> bool:
    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _figures(process: psutil.Process) -> dict[str, float]:
    """RSS (MB), open TCP connections and file descriptors of the runner's tree (PostgreSQL excluded)."""
    rss = conns = fds = 0
    for member in _tree(process):
        with suppress(psutil.NoSuchProcess):
            rss += member.memory_info().rss
            conns += len(member.net_connections(kind="tcp"))
            fds += member.num_fds()
    return {"rss_mb": rss / 2**20, "conns": conns, "fds": fds}


def _ingest(url: str, auth: dict[str, str]) -> None:
    """One document into the default repository (through the presigned upload, as the UI does), so that search
    has something to find."""
    grant = requests.post(
        f"{url}/repositories/{REPOSITORY}/upload-url", headers=auth, json={"filename": "soak.txt"}, timeout=30
    )
    grant.raise_for_status()
    requests.put(grant.json()["url"], data=DOCUMENT, headers=grant.json()["headers"], timeout=30).raise_for_status()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        listed = requests.get(f"{url}/repositories/{REPOSITORY}/documents", headers=auth, timeout=10).json()
        if [d["status"] for d in listed["documents"]] == ["READY"]:
            return
        time.sleep(0.5)
    raise RuntimeError(f"the soak document was not ingested: {listed}")


def _rotation(url: str) -> list[Call]:
    """One client's round of the mix (the clients drift apart after the first replies). Sessions: create, read,
    update, list and delete one new session per round."""
    openai = f"{url}/v1/openai"
    state: dict[str, str] = {}

    def session_path() -> str:
        return f"{url}/sessions/{state['session']}"

    def create(s: requests.Session) -> requests.Response:
        state["session"] = uuid.uuid4().hex
        body: dict[str, Any] = {"name": "soak", "messages": [{"role": "user", "content": "hello"}]}
        return s.put(session_path(), json=body, timeout=60)

    def native_embed(provider: str, model: str) -> Call:
        body: dict[str, Any] = {"provider": provider, "modelName": model, "text": ["a soak"], "modelKwargs": {}}
        return lambda s: s.post(f"{url}/v1/embeddings", json=body, timeout=60)

    chat = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 4}
    search = {"query": "What colour is the lighthouse?", "k": 2}
    return [
        lambda s: s.post(f"{openai}/chat/completions", json=chat, timeout=120),
        lambda s: s.post(f"{openai}/embeddings", json={"model": TEI_MODEL, "input": ["soak"]}, timeout=60),
        create,
        lambda s: s.get(f"{openai}/models", timeout=30),
        lambda s: s.post(f"{url}/repositories/{REPOSITORY}/search", json=search, timeout=60),
        lambda s: s.get(session_path(), timeout=60),
        native_embed("ecs.embedding.instructor", INSTRUCTOR_MODEL),
        lambda s: s.put(session_path(), json={"name": "soak, renamed", "version": 1}, timeout=60),
        lambda s: s.get(f"{url}/v1/listModels", timeout=30),
        lambda s: s.post(f"{openai}/chat/completions", json={**chat, "stream": True}, timeout=120),
        native_embed("ecs.embedding.tei", TEI_MODEL),
        lambda s: s.get(f"{url}/sessions", timeout=60),
        lambda s: s.get(f"{url}/models", timeout=30),
        lambda s: s.delete(session_path(), timeout=60),
    ]


class _Soak:
    """CLIENTS threads sharing one request budget; `at(n)` blocks until n requests have been answered."""

    def __init__(self, url: str, key: str) -> None:
        self.url, self.key = url, key
        self.statuses: Counter[int] = Counter()
        self.failures: Counter[str] = Counter()
        self._sent = itertools.count()
        self._lock = threading.Condition()
        self._done = 0

    def client(self) -> None:
        with requests.Session() as http:
            http.headers["Authorization"] = f"Bearer {self.key}"
            for call in itertools.cycle(_rotation(self.url)):
                if next(self._sent) >= TOTAL:
                    return
                try:
                    response = call(http)
                    response.content  # noqa: B018 (read the whole body: streams too)
                    status = response.status_code
                except requests.RequestException as error:
                    status = 0
                    self.failures[type(error).__name__] += 1
                with self._lock:
                    self.statuses[status] += 1
                    self._done += 1
                    self._lock.notify_all()

    def at(self, count: int) -> None:
        with self._lock:
            self._lock.wait_for(lambda: self._done >= count)


def run() -> None:
    with (
        tempfile.TemporaryDirectory(prefix="lisa-soak-") as logs,
        running_runner(log_dir=Path(logs), timeout=600.0, stop="terminate") as (url, key, child),
    ):
        process = psutil.Process(child.pid)
        auth = {"Authorization": f"Bearer {key}"}
        _ingest(url, auth)
        start = _figures(process)
        print(f"stack up: {start['rss_mb']:.1f} MB RSS, {start['conns']} TCP conns, {start['fds']} fds", flush=True)
        soak = _Soak(url, key)
        began = time.monotonic()
        threads = [threading.Thread(target=soak.client, name=f"soak-{i}") for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        soak.at(WARMUP)
        warm = _figures(process)
        print(f"after {WARMUP} requests: {warm['rss_mb']:.1f} MB RSS, {warm['conns']} conns, {warm['fds']} fds")
        for done in range(2_000, TOTAL, 2_000):
            soak.at(done)
            now = _figures(process)
            print(f"  {done:>6}: {now['rss_mb']:.1f} MB RSS, {now['conns']} conns, {now['fds']} fds", flush=True)
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - began
        end = _figures(process)
    growth = end["rss_mb"] / warm["rss_mb"] - 1
    ok = sum(n for status, n in soak.statuses.items() if 200 <= status < 300)
    verdict = "within" if abs(growth) <= TARGET_GROWTH else "OVER"
    print(f"after {TOTAL} requests: {end['rss_mb']:.1f} MB RSS, {end['conns']} conns, {end['fds']} fds")
    print(
        f"RSS (runner + workers, PostgreSQL excluded) {warm['rss_mb']:.1f} → {end['rss_mb']:.1f} MB "
        f"({growth:+.1%}, {verdict} the ±{TARGET_GROWTH:.0%} target); TCP conns {warm['conns']} → {end['conns']}; "
        f"fds {warm['fds']} → {end['fds']}"
    )
    print(f"{TOTAL} requests by {CLIENTS} clients in {elapsed:.0f} s; 2xx: {ok}; statuses: {dict(soak.statuses)}")
    if soak.failures:
        print(f"transport failures: {dict(soak.failures)}")
