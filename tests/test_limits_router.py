"""Rate limits and token budgets end to end: the real router on loopback in front of the real CPU workers (MiniLM
embeddings on TEI, SmolLM2 chat on TGI), moto's DynamoDB shared by every router, and the admins' API.

The module's defaults (config.yaml `limits`, through LISA_LIMITS) give every API token 20 requests per minute;
overrides set per principal what each test needs. Each test counts in windows of its own: the routers' clock is
set, never waited for. Two router processes (real ones, `tests.support.limits_router`) share one counter.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
import requests

from chalicelib import aws
from chalicelib.auth.tokens import TokenStore
from chalicelib.contracts.limits import LimitOverride, PrincipalLimits, Scope
from chalicelib.contracts.openai import ErrorResponse
from chalicelib.errors import Conflict
from chalicelib.limits.store import OverrideStore
from chalicelib.registry.models import CreateModelRequest
from chalicelib.registry.store import ModelStore
from router.settings import RouterSettings
from runner.processes import ManagedProcess
from tests.support.control_plane import Client, control_plane_url
from tests.support.servers import AppThread
from tests.test_router import start_router
from workers.launch import free_port

pytestmark = pytest.mark.slow

EMBED, CHAT = "limits-minilm", "limits-smollm2"
DEFAULTS = {"token": {"requestsPerMinute": 20}}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def at(self, *moment: int) -> float:
        """Set the clock to a UTC moment (year, month, day[, hour, minute, second]); returns it."""
        self.now = datetime(*moment, tzinfo=UTC).timestamp()  # type: ignore[arg-type,misc]
        return self.now


class Stack:
    def __init__(self, server: AppThread, clock: Clock) -> None:
        self.url, self.clock = server.url, clock

    def token(self, username: str, groups: tuple[str, ...] = ()) -> tuple[str, str]:
        """A new API token: (secret, token id)."""
        secret, record = TokenStore().create(username, groups=list(groups))
        return secret, record.token_id


@pytest.fixture(scope="module")
def limits_env(moto_server: str) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LISA_LIMITS", json.dumps(DEFAULTS))
        aws.reset()
        yield
    aws.reset()


@pytest.fixture(scope="module")
def stack(limits_env: None, tgi_worker: str, tei_worker: str) -> Iterator[Stack]:
    for name, container, url in ((EMBED, "tei", tei_worker), (CHAT, "tgi", tgi_worker)):
        fields = {"modelName": name, "hfModelId": f"limits/{name}", "inferenceContainer": container, "endpointUrl": url}
        with contextlib.suppress(Conflict):  # registered by an earlier run on this session's moto
            ModelStore().create(CreateModelRequest.model_validate(fields))
    clock = Clock()
    settings = RouterSettings(access_log=False, rag_in_chat=False, metering=False)  # no EMF lines in the CLI's output
    server = start_router(settings, clock=clock)
    yield Stack(server, clock)
    server.stop()


def embed_body(native: bool = False) -> dict[str, Any]:
    if native:
        return {"provider": "ecs.embedding.tei", "modelName": EMBED, "text": ["a limit"]}
    return {"model": EMBED, "input": "a limit"}


async def fire(urls: list[str], secret: str, count: int, path: str = "/v1/openai/embeddings") -> list[tuple[int, Any]]:
    """`count` concurrent embedding requests, spread over `urls`: (status, headers) of each."""
    headers = {"Authorization": f"Bearer {secret}"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:

        async def one(i: int) -> tuple[int, Any]:
            body = embed_body(native=not path.startswith("/v1/openai/"))
            async with session.post(f"{urls[i % len(urls)]}{path}", json=body, headers=headers) as answer:
                body = await answer.json()
                return answer.status, (answer.headers, body)

        return await asyncio.gather(*(one(i) for i in range(count)))


def test_of_100_concurrent_requests_exactly_20_pass_in_a_window(stack: Stack) -> None:
    secret, token_id = stack.token("uma")
    start = stack.clock.at(2031, 1, 1, 12, 0, 5)
    results = asyncio.run(fire([stack.url], secret, 100))
    assert sorted({status for status, _ in results}) == [200, 429]
    assert sum(status == 200 for status, _ in results) == 20
    headers, body = next(detail for status, detail in results if status == 429)
    error = ErrorResponse.model_validate(body).error
    assert error.type == "rate_limit_error"
    assert error.code == "rate_limit_exceeded"
    assert f"token {token_id!r}: 20 requests per minute" in error.message
    assert headers["Retry-After"] == "55"
    assert headers["x-ratelimit-limit-requests"] == "20"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"] == "55s"
    stack.clock.now = start + 55  # the next minute
    assert asyncio.run(fire([stack.url], secret, 1))[0][0] == 200


def test_admitted_answers_carry_the_rate_limit_headers_streams_included(stack: Stack) -> None:
    """OpenAI's `x-ratelimit-*` headers on 200s too (read through the openai SDK's raw responses): the binding
    request and token limits, from the router's lease state."""
    secret, _ = stack.token("yara")
    limits = LimitOverride(tokens_per_minute=100_000, tokens_per_day=1_000_000)
    OverrideStore().put(Scope.USER, "yara", limits, "test", "now")
    stack.clock.at(2031, 1, 15, 10, 0, 20)  # between the tests before and after (the clock only moves forward)
    client = openai.OpenAI(base_url=f"{stack.url}/v1/openai", api_key=secret, max_retries=0, timeout=120)
    first = client.embeddings.with_raw_response.create(model=EMBED, input="a limit")
    assert first.status_code == 200
    headers = first.headers
    requests_headers = [headers[f"x-ratelimit-{what}-requests"] for what in ("limit", "remaining", "reset")]
    assert requests_headers == ["20", "19", "40s"]  # the token's 20 per minute, 40 s left of this minute
    assert headers["x-ratelimit-limit-tokens"] == "100000"  # of the user's two budgets, the one with less left
    assert 100_000 - 100 < int(headers["x-ratelimit-remaining-tokens"]) < 100_000  # this request's reservation
    assert headers["x-ratelimit-reset-tokens"] == "40s"
    assert first.parse().data[0].embedding
    second = client.embeddings.with_raw_response.create(model=EMBED, input="a limit")
    assert second.headers["x-ratelimit-remaining-requests"] == "18"
    stack.clock.now += 15
    messages: list[Any] = [{"role": "user", "content": "Say hi."}]
    with client.chat.completions.with_streaming_response.create(
        model=CHAT, messages=messages, max_tokens=4, stream=True
    ) as streamed:
        assert streamed.status_code == 200
        assert streamed.headers["x-ratelimit-remaining-requests"] == "17"
        assert streamed.headers["x-ratelimit-reset-requests"] == "25s"
        assert any(line.startswith("data: [DONE]") for line in streamed.iter_lines())


def test_two_router_processes_together_admit_at_most_the_limit(stack: Stack, tmp_path: Path) -> None:
    secret, _ = stack.token("vera")
    moment = str(datetime(2031, 2, 1, 12, 0, 1, tzinfo=UTC).timestamp())
    routers = []
    for index in range(2):
        port = free_port()
        process = ManagedProcess(
            f"limits-router-{index}",
            "tests.support.limits_router",
            [str(port), moment],
            f"http://127.0.0.1:{port}/health",
            tmp_path,
        )
        routers.append((process.start(), f"http://127.0.0.1:{port}"))
    try:
        for process, _ in routers:
            process.wait_healthy(120)
        results = asyncio.run(fire([url for _, url in routers], secret, 100))
    finally:
        for process, _ in routers:
            process.stop()
    statuses = [status for status, _ in results]
    assert set(statuses) <= {200, 429}
    assert 1 <= statuses.count(200) <= 20


def chat(stack: Stack, secret: str, stream: bool) -> tuple[int, int]:
    """One short chat completion: (status, prompt + completion tokens it reported)."""
    body: dict[str, Any] = {"model": CHAT, "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 4}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    headers = {"Authorization": f"Bearer {secret}"}
    answer = requests.post(f"{stack.url}/v1/openai/chat/completions", json=body, headers=headers, timeout=120)
    if answer.status_code != 200:
        return answer.status_code, 0
    if not stream:
        usage = answer.json()["usage"]
        return 200, usage["prompt_tokens"] + usage["completion_tokens"]
    events = [json.loads(line[6:]) for line in answer.text.splitlines() if line.startswith("data: {")]
    usage = next(event["usage"] for event in events if event.get("usage"))
    return 200, usage["prompt_tokens"] + usage["completion_tokens"]


def test_a_daily_token_budget_stops_the_user_and_the_next_day_lets_it_in(stack: Stack) -> None:
    secret, _ = stack.token("wren")
    first = chat(stack, secret, stream=False)  # what one request costs (the prompt is the chat template's)
    assert first[0] == 200
    budget = 3 * first[1]
    OverrideStore().put(Scope.USER, "wren", LimitOverride(tokens_per_day=budget), "test", "now")
    stack.clock.at(2031, 3, 1, 9)  # a new day, and a new principal for the router's override cache
    spent, admitted = 0, []
    for index in range(8):
        status, tokens = chat(stack, secret, stream=index % 2 == 1)  # streams count what they produced
        if status == 429:
            break
        spent += tokens
        admitted.append(tokens)
    assert status == 429
    assert spent >= budget  # refused only once the budget is spent: by the tokens actually produced
    assert spent - admitted[-1] < budget
    stack.clock.at(2031, 3, 1, 23, 59)
    assert chat(stack, secret, stream=True)[0] == 429
    stack.clock.at(2031, 3, 2)  # midnight UTC
    assert chat(stack, secret, stream=True)[0] == 200


def test_every_limit_must_pass_and_the_most_permissive_group_counts(stack: Stack) -> None:
    store = OverrideStore()
    store.put(Scope.GROUP, "limits-small", LimitOverride(requests_per_minute=2), "test", "now")
    store.put(Scope.GROUP, "limits-large", LimitOverride(requests_per_minute=4), "test", "now")
    secret, _ = stack.token("xavi", ("limits-small", "limits-large"))
    stack.clock.at(2031, 4, 1, 8, 0, 30)
    statuses = [status for status, _ in asyncio.run(fire([stack.url], secret, 6))]
    assert sorted(statuses) == [200] * 4 + [429] * 2  # the larger group's 4, not the smaller's 2
    # A group's limit is shared by its members: in the same minute, nothing is left for yara.
    store.put(Scope.USER, "yara", LimitOverride(requests_per_minute=3), "test", "now")
    secret, _ = stack.token("yara", ("limits-large",))
    refused = asyncio.run(fire([stack.url], secret, 1, "/v1/embeddings"))
    assert refused[0][0] == 429
    assert "group 'limits-large': 4 requests per minute" in refused[0][1][1]["error"]["message"]
    # Her own limit binds as well: with 3 requests a minute for yara, her group's 4 never come.
    stack.clock.now += 60
    statuses = [status for status, _ in asyncio.run(fire([stack.url], secret, 6, "/v1/embeddings"))]
    assert sorted(statuses) == [200] * 3 + [429] * 3


def test_native_routes_answer_the_same_429(stack: Stack) -> None:
    secret, _ = stack.token("zoe")
    stack.clock.at(2031, 5, 1, 0, 0, 59)
    headers = {"Authorization": f"Bearer {secret}"}
    answers = [
        requests.post(f"{stack.url}/v1/embeddings", json=embed_body(native=True), headers=headers, timeout=60)
        for _ in range(21)
    ]
    assert [a.status_code for a in answers] == [200] * 20 + [429]
    refused = answers[-1]
    assert ErrorResponse.model_validate(refused.json()).error.type == "rate_limit_error"
    assert refused.headers["Retry-After"] == "1"
    assert refused.headers["x-ratelimit-reset-requests"] == "1s"


# -- the admins' API ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def api(limits_env: None) -> Iterator[str]:
    with control_plane_url(workers=2) as url:
        yield url


def test_admins_set_read_and_remove_overrides_and_others_get_403(api: str) -> None:
    admin = Client(api, TokenStore().create("root", is_admin=True)[0])
    user = Client(api, TokenStore().create("mallory", groups=["users"])[0])
    path = "/limits/user/mallory"
    assert user.call("PUT", path, {"requestsPerMinute": 10**6}).status_code == 403
    assert user.call("GET", path).status_code == 403
    assert user.call("GET", "/limits").status_code == 403

    fresh = admin.call("GET", path)
    assert fresh.status_code == 200
    assert fresh.json()["override"] is None
    set_ = admin.call("PUT", path, {"tokensPerDay": 5000, "requestsPerMinute": None})
    assert set_.status_code == 200, set_.text
    view = PrincipalLimits.model_validate(set_.json())
    assert view.override == {"tokensPerDay": 5000, "requestsPerMinute": None}
    assert view.effective.tokens_per_day == 5000
    assert view.updated_by == "root"
    assert user.call("DELETE", path).status_code == 403
    token_view = admin.call("GET", "/limits/token/tok-123").json()
    assert token_view["effective"]["requestsPerMinute"] == 20  # the module's default for tokens
    listed = admin.call("GET", "/limits?scope=user").json()["overrides"]
    assert [(o["scope"], o["principalId"]) for o in listed if o["principalId"] == "mallory"] == [("user", "mallory")]

    bad_scope = admin.call("PUT", "/limits/team/x", {"requestsPerMinute": 1})
    assert bad_scope.status_code == 400
    assert "scope" in bad_scope.json()["Message"]
    bad_key = admin.call("PUT", path, {"requestsPerMinut": 1})
    assert bad_key.status_code == 400
    assert "requestsPerMinut" in bad_key.json()["Message"]
    assert admin.call("PUT", path, {"tokensPerDay": 0}).status_code == 400

    assert admin.call("DELETE", path).status_code == 200
    assert admin.call("GET", path).json()["override"] is None
    assert admin.call("DELETE", path).status_code == 404


def test_lisa_limits_manages_overrides_over_the_api_for_admins_only(api: str) -> None:
    from typer.testing import CliRunner

    from cli.main import app as cli_app

    admin = TokenStore().create("root", is_admin=True)[0]
    user = TokenStore().create("nico", groups=["users"])[0]
    runner = CliRunner()

    def lisa(*argv: str, key: str = admin) -> Any:
        return runner.invoke(cli_app, ["limits", "--url", api, "--api-key", key, *argv])

    shown = lisa("defaults", "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["token"]["requestsPerMinute"] == 20  # the module's LISA_LIMITS
    table = lisa("defaults")
    assert table.exit_code == 0
    assert "no limit" in table.output

    set_ = lisa("set", "user", "nico", "--tokens-per-day", "5000", "--requests-per-minute", "none", "--json")
    assert set_.exit_code == 0, set_.output
    assert json.loads(set_.output)["override"] == {"tokensPerDay": 5000, "requestsPerMinute": None}
    assert OverrideStore().get(Scope.USER, "nico") is not None  # in the API's table
    got = lisa("get", "user", "nico")
    assert got.exit_code == 0
    assert "5,000" in got.output
    listed = json.loads(lisa("list", "--scope", "user", "--json").output)["overrides"]
    assert ("user", "nico") in [(o["scope"], o["principalId"]) for o in listed]

    refused = lisa("get", "user", "nico", key=user)
    assert refused.exit_code == 1
    assert "not an administrator" in refused.output
    assert lisa("set", "user", "nico", "--tokens-per-day", "0").exit_code == 2  # refused before it is sent
    assert lisa("set", "team", "x", "--tokens-per-day", "1").exit_code == 2
    assert lisa("set", "user", "nico").exit_code == 2  # nothing to set

    assert lisa("delete", "user", "nico").exit_code == 0
    again = lisa("delete", "user", "nico")
    assert again.exit_code == 1
    assert "no limit override" in again.output
    no_key = runner.invoke(cli_app, ["limits", "--url", api, "defaults"], env={"LISA_API_KEY": ""})
    assert no_key.exit_code == 2
