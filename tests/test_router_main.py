"""`python -m router` as the container runs it: serves on the given port, writes one access-log line a request and
answers chat requests that name a RAG repository (the `lisa_rag` field) through the repositories table."""

from __future__ import annotations

import http.client
import json
from pathlib import Path

import requests

from chalicelib.auth.tokens import TokenStore
from runner.processes import ManagedProcess
from tests.test_router import register
from workers.launch import free_port


def test_python_m_router_serves_and_logs_each_request_once(aws_env: str, tmp_path: Path) -> None:
    token, _ = TokenStore().create("alice", groups=["users"])
    register("chat", "tgi", "http://127.0.0.1:9")  # never called: the RAG lookup fails first
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    router = ManagedProcess("router", "router", ["--host", "127.0.0.1", "--port", str(port)], f"{url}/health", tmp_path)
    router.start()
    try:
        router.wait_healthy(60)
        headers = {"Authorization": f"Bearer {token}"}
        for _ in range(3):
            response = requests.get(f"{url}/v1/openai/models", headers=headers, timeout=10)
            assert response.status_code == 200, response.text
        assert requests.get(f"{url}/v1/openai/models", timeout=10).status_code == 401
        # RAG in chat is on: the named repository is looked up (and is not there) before any backend is called.
        chat = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "lisa_rag": {"repositoryId": "kb"}}
        response = requests.post(f"{url}/v1/openai/chat/completions", json=chat, headers=headers, timeout=10)
        assert response.status_code == 404, response.text
        assert response.json()["error"]["param"] == "lisa_rag.repositoryId"
        # aiohttp's own refusals carry the JSON error object too
        missing = requests.get(f"{url}/v1/nowhere", headers=headers, timeout=10)
        assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")
        wrong = requests.get(f"{url}/v1/openai/chat/completions", headers=headers, timeout=10)
        assert (wrong.status_code, wrong.json()["error"]["code"]) == (405, "method_not_allowed")
        assert wrong.headers["Allow"] == "POST"
        # what the HTTP parser refuses: a JSON 431 quoting nothing, one log line; no server banner anywhere
        big = requests.get(f"{url}/v1/openai/models", headers={**headers, "X-Big": "a" * 9000}, timeout=10)
        assert (big.status_code, big.headers["Content-Type"]) == (431, "application/json")
        assert "aaaa" not in big.text
        assert {big.headers["Server"], missing.headers["Server"], wrong.headers["Server"]} == {"LISA"}
        # a credential sent twice is refused, not resolved to the first one
        twice = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        twice.putrequest("GET", "/v1/openai/models")
        twice.putheader("Authorization", f"Bearer {token}")
        twice.putheader("Authorization", "Bearer lisa_someone-else")
        twice.endheaders()
        answer = twice.getresponse()
        assert (answer.status, json.loads(answer.read())["error"]["code"]) == (400, "ambiguous_credentials")
        twice.close()
    finally:
        router.stop()
    lines = router.log_path.read_text().splitlines()
    access = [json.loads(line) for line in lines if line.startswith("{") and '"message":"request"' in line]
    assert [(a["path"], a["status"]) for a in access] == [("/v1/openai/models", 200)] * 3 + [
        ("/v1/openai/models", 401),
        ("/v1/openai/chat/completions", 404),
        ("/v1/openai/models", 400),
    ]
    refused = [json.loads(line) for line in lines if "refused by the HTTP parser" in line]
    assert [r["status"] for r in refused] == [431]
    assert not [line for line in lines if "Traceback" in line or "aaaa" in line]
    assert access[0]["user"] == "alice"
    assert not [line for line in lines if line.startswith("INFO:")], "a Powertools record was printed twice"
