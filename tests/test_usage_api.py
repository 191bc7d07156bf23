"""Usage figures in DynamoDB (moto): batches applied exactly once, `GET /usage` over real HTTP (the control plane on
loopback, as `make run` serves it) with its rights and refusals, and `lisa usage` over the API and on the table."""

from __future__ import annotations

import asyncio
import json
import queue
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError
from typer.testing import CliRunner

from chalicelib.auth.authorizer import get_authorizer
from chalicelib.auth.principal import Principal
from chalicelib.auth.tokens import TokenStore
from chalicelib.usage.store import Counts, UsageBatch, UsageStore
from cli.main import app as cli_app
from router.accounting import RequestUsage
from router.metering import Meter
from tests.support.control_plane import control_plane_url

TODAY = datetime.now(UTC).date()
MODEL = "smollm2-135m-instruct"


class FlakyStore(UsageStore):
    """The real store, failing on cue: "after" applies the batch and then loses the answer (a timeout), "before"
    fails to reach DynamoDB at all."""

    def __init__(self, failures: list[str]) -> None:
        super().__init__()
        self.failures = failures

    def write(self, batch: UsageBatch) -> bool:
        failure = self.failures.pop(0) if self.failures else None
        if failure == "before":
            raise EndpointConnectionError(endpoint_url="http://dynamodb")
        applied = super().write(batch)
        if failure == "after":
            raise ReadTimeoutError(endpoint_url="http://dynamodb")
        return applied


def request(username: str, status: int, prompt: int, completion: int, started: float) -> RequestUsage:
    usage = RequestUsage("createChatCompletion", started, Principal(username, (), False, "token"), MODEL)
    usage.tokens(prompt, completion)
    usage.finish(status, 0.01)
    return usage


def counts(store: UsageStore, owner: str) -> list[tuple[str, int, int, int, int]]:
    days = store.days(owner, TODAY - timedelta(days=1), TODAY)
    return [(d.date, d.requests, d.errors, d.prompt_tokens, d.completion_tokens) for d in days]


def test_a_retried_flush_never_double_counts(aws_env: str) -> None:
    store = FlakyStore(["after", "", "before"])  # one cue per write; "": works
    lines: list[str] = []
    now = datetime.combine(TODAY, datetime.min.time(), UTC).timestamp() + 3600
    meter = Meter(store, emit=lines.append, clock=lambda: now)

    async def scenario() -> list[int]:
        meter(request("alice", 200, 10, 20, now))
        meter(request("alice", 502, 7, 0, now))
        pending = [await meter.flush()]  # applied, but the answer was lost: kept for a retry
        pending.append(await meter.flush())  # the retry finds its marker: applied once, dropped
        meter(request("alice", 200, 1, 2, now))
        pending.append(await meter.flush())  # DynamoDB unreachable: kept
        pending.append(await meter.flush())  # written now
        return pending

    assert asyncio.run(scenario()) == [1, 0, 1, 0]
    assert counts(store, "token:alice") == [(TODAY.isoformat(), 3, 1, 18, 22)]
    assert store.write(UsageBatch(((("token:alice", TODAY.isoformat(), MODEL), Counts(requests=5)),))) is True
    assert counts(store, "token:alice")[0][1] == 8


@pytest.fixture(scope="module")
def url(moto_server: str) -> Iterator[str]:
    with control_plane_url(workers=4) as base:
        yield base


@pytest.fixture
def users(aws_env: str, url: str) -> dict[str, str]:
    """API tokens of alice, bob and an admin; usage of alice and bob today and two days ago (two models)."""
    get_authorizer().clear_cache()
    tokens = TokenStore()
    keys = {name: tokens.create(name, is_admin=name == "root")[0] for name in ("alice", "bob", "root")}
    earlier = (TODAY - timedelta(days=2)).isoformat()
    figures = {
        ("token:alice", TODAY.isoformat(), MODEL): Counts(3, 1, 30, 90),
        ("token:alice", TODAY.isoformat(), "all-minilm-l6-v2"): Counts(2, 0, 8, 0),
        ("token:alice", earlier, MODEL): Counts(1, 0, 5, 6),
        ("token:bob", TODAY.isoformat(), MODEL): Counts(4, 0, 40, 44),
    }
    UsageStore().write(UsageBatch(tuple(figures.items())))
    return keys


def get(url: str, key: str, **params: str) -> requests.Response:
    return requests.get(f"{url}/usage", params=params, headers={"Api-Key": key}, timeout=30)


def test_users_read_their_own_usage_only(url: str, users: dict[str, str]) -> None:
    own = get(url, users["alice"])
    assert own.status_code == 200
    body = own.json()
    earlier = (TODAY - timedelta(days=2)).isoformat()
    assert body == {
        "principal": "token:alice",
        "from": (TODAY - timedelta(days=29)).isoformat(),
        "to": TODAY.isoformat(),
        "days": [
            {
                "date": earlier,
                "principal": "token:alice",
                "model": MODEL,
                "requests": 1,
                "errors": 0,
                "promptTokens": 5,
                "completionTokens": 6,
            },
            {
                "date": TODAY.isoformat(),
                "principal": "token:alice",
                "model": "all-minilm-l6-v2",
                "requests": 2,
                "errors": 0,
                "promptTokens": 8,
                "completionTokens": 0,
            },
            {
                "date": TODAY.isoformat(),
                "principal": "token:alice",
                "model": MODEL,
                "requests": 3,
                "errors": 1,
                "promptTokens": 30,
                "completionTokens": 90,
            },
        ],
        "totals": {"requests": 6, "errors": 1, "promptTokens": 43, "completionTokens": 96},
    }
    for other in ("token:bob", "*"):
        refused = get(url, users["alice"], principal=other)
        assert refused.status_code == 403
        assert refused.json()["Message"].startswith("principal:")
    assert get(url, users["alice"], principal="token:alice").json() == body  # naming oneself is fine
    only_today = get(url, users["alice"], model=MODEL, **{"from": TODAY.isoformat()}).json()
    assert [(d["date"], d["model"]) for d in only_today["days"]] == [(TODAY.isoformat(), MODEL)]


def test_admins_read_anyones_usage(url: str, users: dict[str, str]) -> None:
    bob = get(url, users["root"], principal="token:bob").json()
    assert [(d["principal"], d["requests"]) for d in bob["days"]] == [("token:bob", 4)]
    everyone = get(url, users["root"], principal="*", model=MODEL).json()
    assert everyone["principal"] == "*"
    today = [(d["principal"], d["requests"]) for d in everyone["days"] if d["date"] == TODAY.isoformat()]
    assert today == [("token:alice", 3), ("token:bob", 4)]
    assert everyone["totals"]["requests"] == 8
    assert get(url, users["root"]).json()["days"] == []  # an admin's own usage is its own


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"from": "2026-13-01"}, "from"),
        ({"to": "yesterday"}, "to"),
        ({"from": "2026-12-03", "to": "2026-12-01"}, "from"),
        ({"from": "2024-01-01", "to": "2025-01-02"}, "from"),  # 368 days
        ({"since": "2026-12-01"}, "since"),
    ],
)
def test_bad_queries_are_400s_naming_the_parameter(
    url: str, users: dict[str, str], params: dict[str, str], named: str
) -> None:
    refused = get(url, users["alice"], **params)
    assert refused.status_code == 400
    assert refused.json()["Code"] == "BadRequestError"
    assert named in refused.json()["Message"]


def test_a_range_of_366_days_is_accepted(url: str, users: dict[str, str]) -> None:
    answer = get(url, users["alice"], **{"from": "2024-01-01", "to": "2024-12-31"})
    assert answer.status_code == 200
    assert answer.json()["days"] == []


def test_cli_prints_a_users_own_figures(url: str, users: dict[str, str]) -> None:
    runner = CliRunner()
    shown = runner.invoke(cli_app, ["usage", "--url", url, "--api-key", users["alice"], "--model", MODEL])
    assert shown.exit_code == 0, shown.output
    rows = [line for line in shown.output.splitlines() if MODEL in line]
    assert len(rows) == 2
    assert all("token:bob" not in line for line in shown.output.splitlines())
    cells = [cell.strip() for cell in rows[-1].split("│") if cell.strip()]
    assert cells == [TODAY.isoformat(), "token:alice", MODEL, "3", "1", "30", "90"]
    as_json = runner.invoke(cli_app, ["usage", "--url", url, "--api-key", users["alice"], "--json"])
    assert json.loads(as_json.output) == get(url, users["alice"]).json()
    refused = runner.invoke(cli_app, ["usage", "--url", url, "--api-key", users["alice"], "--principal", "*"])
    assert refused.exit_code == 1
    assert "only administrators" in refused.output


def test_cli_reads_the_table_directly_for_the_account_owner(users: dict[str, str]) -> None:
    runner = CliRunner()
    shown = runner.invoke(cli_app, ["usage", "--json", "--model", MODEL, "--from", TODAY.isoformat()])
    assert shown.exit_code == 0, shown.output
    answer: dict[str, Any] = json.loads(shown.output)
    assert answer["principal"] == "*"
    assert [(d["principal"], d["requests"]) for d in answer["days"]] == [("token:alice", 3), ("token:bob", 4)]
    bad = runner.invoke(cli_app, ["usage", "--from", "2026-12-03", "--to", "2026-12-01"])
    assert bad.exit_code == 2
    assert "from" in bad.output


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_tokens_last_use_is_recorded_by_the_flush_at_most_once_a_minute(url: str, users: dict[str, str]) -> None:
    """A request with alice's token through the real router (openai SDK); its meter's flush records the token's
    `lastUsedAt`, which the token list API shows; a use within the minute after that waits for the next minute."""
    import openai

    from chalicelib.auth.authorizer import Authorizer
    from chalicelib.registry.resolver import CachedRegistry
    from chalicelib.registry.store import ModelStore
    from chalicelib.settings import get_settings
    from router.accounting import add_listener
    from router.app import create_app
    from router.settings import RouterSettings
    from tests.support.servers import AppThread

    clock = Clock(float(int(datetime.now(UTC).timestamp())))
    meter = Meter(UsageStore(), tokens=TokenStore(), flush_seconds=3600, emit=lambda _: None, clock=clock)
    finished: queue.Queue[RequestUsage] = queue.Queue()

    def app() -> Any:
        router = create_app(
            RouterSettings(access_log=False, rag_in_chat=False, limits=False),
            authorizer=Authorizer.from_settings(get_settings()),
            registry=CachedRegistry(ModelStore(), ttl_seconds=60),
            clock=clock,
            meter=meter,
        )
        add_listener(router, finished.put)  # after the meter: once seen here, the meter has counted it
        return router

    server = AppThread(app)
    client = openai.OpenAI(base_url=f"{server.start()}/v1/openai", api_key=users["alice"], max_retries=0)

    def last_used() -> Any:
        (token,) = requests.get(f"{url}/me/tokens", headers={"Api-Key": users["alice"]}, timeout=30).json()["tokens"]
        return token["lastUsedAt"]

    def use() -> None:
        client.models.list()
        assert finished.get(timeout=60).token_id is not None

    try:
        first = clock.now
        assert last_used() is None
        use()
        assert last_used() is None  # nothing is written on the request's path
        server.call(meter.flush())
        assert last_used() == first
        clock.now += 30
        use()
        server.call(meter.flush())
        assert last_used() == first  # recorded under a minute ago: not yet
        clock.now += 31
        server.call(meter.flush())
        assert last_used() == first + 30
        server.call(meter.flush())  # nothing new: nothing written
        assert last_used() == first + 30
    finally:
        server.stop()
