"""The local stack (`make run`): one front door for UI, control plane and data plane, auth on both, clean stop.

Most tests run `runner.stack.LocalLisa` in-process with a model served by a scriptable fake backend (fast);
`test_make_run_*` runs `python -m runner` itself with the default config.yaml (the chat model on real vLLM, the
embedding models on the real CPU workers), and talks to it with the unmodified `openai` SDK, as a user following
the README would.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import psutil
import pytest
import requests
import yaml

from chalicelib.config import ConfigError
from runner.stack import LocalLisa, StackOptions
from tests.support.fake_backends import FakeBackend
from tests.support.servers import AppThread
from tests.support.stacks import DefaultRunner
from workers.launch import free_port

ROOT = Path(__file__).resolve().parents[1]


def _config(tmp_path: Path, endpoint: str) -> Path:
    """config.yaml with one text model served at `endpoint` (nothing for the stack to start)."""
    config = {
        "deploymentName": "lisa-test",
        "s3BucketModels": "lisa-models",
        "authConfig": {"adminGroup": "admins"},
        "ecsModels": [
            {
                "modelName": "fake-chat",
                "modelId": "test/fake-chat",
                "modelType": "textgen",
                "inferenceContainer": "tgi",
                "endpointUrl": endpoint,
                "containerConfig": {"image": "tgi:test"},
            }
        ],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def fake_backend() -> Iterator[str]:
    server = AppThread(FakeBackend().app)
    yield server.start()
    server.stop()


@pytest.fixture
def stack(aws_env: str, fake_backend: str, tmp_path: Path) -> Iterator[LocalLisa]:
    webui = tmp_path / "webui"
    (webui / "assets").mkdir(parents=True)
    (webui / "index.html").write_text("<!doctype html><title>LISA</title><div id=app></div>")
    (webui / "assets" / "app.js").write_text("console.log('lisa')")
    options = StackOptions(
        port=free_port(), config_path=_config(tmp_path, fake_backend), state_dir=tmp_path / "state", webui_dir=webui
    )
    lisa = LocalLisa(options).start()
    yield lisa
    lisa.stop()


def test_one_port_serves_ui_control_plane_and_data_plane(stack: LocalLisa) -> None:
    page = requests.get(stack.url + "/", timeout=10)
    assert page.status_code == 200
    assert "<title>LISA</title>" in page.text
    assert requests.get(stack.url + "/assets/app.js", timeout=10).text == "console.log('lisa')"

    auth = {"Authorization": f"Bearer {stack.api_key}"}
    models = requests.get(stack.url + "/models", headers=auth, timeout=10)  # Chalice control plane
    assert models.status_code == 200
    assert [m["modelName"] for m in models.json()["models"]] == ["fake-chat"]

    client = openai.OpenAI(base_url=stack.url + "/v1/openai", api_key=stack.api_key)  # router data plane
    assert [m.id for m in client.models.list()] == ["fake-chat"]
    answer = client.chat.completions.create(model="fake-chat", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "echo: hi"  # the fake backend echoes the last message


def test_the_authorizer_guards_both_planes(stack: LocalLisa) -> None:
    for path in ("/models", "/sessions", "/v1/openai/models", "/v1/listModels"):
        refused = requests.get(stack.url + path, headers={"Api-Key": "lisa_not-a-token"}, timeout=10)
        assert refused.status_code == 401, path
        assert "message" in refused.text, path
    assert requests.get(stack.url + "/health", timeout=10).status_code == 200


def test_the_printed_key_is_an_admin_key(stack: LocalLisa) -> None:
    created = requests.post(
        stack.url + "/tokens",
        headers={"Api-Key": stack.api_key},
        json={"username": "bob", "expiresIn": 3600},
        timeout=10,
    )
    assert created.status_code in (200, 201), created.text
    bob = created.json()["token"]
    client = openai.OpenAI(base_url=stack.url + "/v1/openai", api_key=bob)
    assert [m.id for m in client.models.list()] == ["fake-chat"]
    forbidden = requests.get(stack.url + "/tokens", headers={"Api-Key": bob}, timeout=10)
    assert forbidden.status_code == 403


def test_stop_closes_the_port_and_is_idempotent(aws_env: str, fake_backend: str, tmp_path: Path) -> None:
    port = free_port()
    options = StackOptions(port=port, config_path=_config(tmp_path, fake_backend), state_dir=tmp_path, webui_dir=None)
    lisa = LocalLisa(options).start()
    assert _listening(port)
    lisa.stop()
    assert not _listening(port)
    lisa.stop()


def test_a_bad_config_fails_before_anything_starts(aws_env: str, tmp_path: Path) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text(yaml.safe_dump({"deploymentName": "x", "ecsModels": [{"modelName": "m", "modelType": "chat"}]}))
    port = free_port()
    with pytest.raises(ConfigError, match=r"ecsModels\.0"):
        LocalLisa(StackOptions(port=port, config_path=bad, state_dir=tmp_path)).start()
    assert not _listening(port)


@pytest.fixture
def make_run(default_runner: DefaultRunner) -> DefaultRunner:
    """`python -m runner` as `make run` starts it (the session's, shared with tests/integration)."""
    return default_runner


def test_make_run_serves_the_default_models_to_the_openai_sdk(make_run: tuple[str, str, subprocess.Popen[str]]) -> None:
    url, key, _ = make_run
    client = openai.OpenAI(base_url=url + "/v1/openai", api_key=key)
    providers = {m.id: (m.model_extra or {}).get("provider") for m in client.models.list()}
    assert providers["smollm2-135m-instruct"] == "ecs.textgen.vllm"  # the default engine
    assert providers["all-minilm-l6-v2"] == "ecs.embedding.tei"
    assert "smollm2-135m-instruct-tgi" not in providers  # the TGI worker entry is there to switch on, not deployed

    question = [{"role": "user", "content": "What is the capital of France?"}]
    answer = client.chat.completions.create(
        model="smollm2-135m-instruct", messages=question, max_tokens=30, temperature=0
    )
    assert "Paris" in (answer.choices[0].message.content or "")
    assert answer.usage is not None
    assert answer.usage.completion_tokens > 0

    pieces = [
        chunk.choices[0].delta.content or ""
        for chunk in client.chat.completions.create(
            model="smollm2-135m-instruct", messages=question, max_tokens=30, temperature=0, stream=True
        )
        if chunk.choices
    ]
    assert len(pieces) > 2
    assert "Paris" in "".join(pieces)

    for name in ("smollm2-135m-instruct", "all-minilm-l6-v2"):  # weights went through the staging workflow
        staged = requests.get(f"{url}/models/{name}/stage", headers={"Api-Key": key}, timeout=10)
        assert staged.status_code == 200, staged.text
        assert staged.json()["status"] == "SUCCEEDED"
        assert staged.json()["manifest"]["files"]

    vectors = client.embeddings.create(model="all-minilm-l6-v2", input=["Paris is in France", "a cat"])
    assert [len(item.embedding) for item in vectors.data] == [384, 384]


def test_make_run_serves_completions_native_api_and_the_hf_client(
    make_run: tuple[str, str, subprocess.Popen[str]],
) -> None:
    """The same stack through the OpenAI completions API and the LISA-native v1 API (on vLLM)."""
    url, key, _ = make_run
    auth = {"Api-Key": key}
    client = openai.OpenAI(base_url=url + "/v1/openai", api_key=key)
    completion = client.completions.create(
        model="smollm2-135m-instruct", prompt="The capital of France is", max_tokens=5, temperature=0
    )
    assert completion.choices[0].text.strip()
    assert completion.usage is not None
    assert 0 < completion.usage.completion_tokens <= 5

    native = {
        "provider": "ecs.textgen.vllm",
        "modelName": "smollm2-135m-instruct",
        "text": "The capital of France is",
        "modelKwargs": {"max_new_tokens": 5},
    }
    generated = requests.post(f"{url}/v1/generate", json=native, headers=auth, timeout=120)
    assert generated.status_code == 200, generated.text
    assert generated.json()["generatedText"].strip()
    assert 0 < generated.json()["generatedTokens"] <= 5

    with requests.post(f"{url}/v1/generateStream", json=native, headers=auth, timeout=120, stream=True) as streamed:
        assert streamed.status_code == 200, streamed.text
        events = [
            json.loads(line[5:])
            for line in streamed.iter_lines(decode_unicode=True)
            if line.startswith("data:") and line[5:].strip() != "[DONE]"
        ]
    assert len(events) > 1
    assert "".join(e["token"]["text"] for e in events if not e["token"]["special"]).strip()
    assert events[-1]["finishReason"]
    assert 0 < events[-1]["generatedTokens"] <= 5

    model = requests.get(f"{url}/models/smollm2-135m-instruct", headers=auth, timeout=10)
    assert model.status_code == 200, model.text
    engine = model.json()["endpointUrl"]
    assert str(engine).startswith("http://127.0.0.1:")
    served = requests.get(f"{engine}/v1/models", timeout=10).json()["data"]  # vLLM's own OpenAI server
    assert [m["id"] for m in served] == ["smollm2-135m-instruct"]


def test_make_run_serves_an_instructor_model_from_the_tei_models_worker(
    make_run: tuple[str, str, subprocess.Popen[str]],
) -> None:
    """The first LISA's clients look for an `ecs.embedding.instructor` model: the default config serves MiniLM
    behind that protocol too, from the same worker process as the TEI model (one copy of the weights)."""
    url, key, _ = make_run
    auth = {"Api-Key": key}
    listed = requests.get(f"{url}/v1/listModels", params={"modelTypes": "embedding"}, headers=auth, timeout=10)
    assert listed.status_code == 200, listed.text
    assert listed.json() == {
        "embedding": {
            "ecs.embedding.tei": ["all-minilm-l6-v2"],
            "ecs.embedding.instructor": ["all-minilm-l6-v2-instructor"],
        }
    }
    workers = {
        name: requests.get(f"{url}/models/{name}", headers=auth, timeout=10).json()["endpointUrl"]
        for name in ("all-minilm-l6-v2", "all-minilm-l6-v2-instructor")
    }
    assert len(set(workers.values())) == 1, workers

    texts = ["Paris is in France", "a cat sat on the mat"]

    def native(provider: str, model: str, kwargs: dict[str, str]) -> list[list[float]]:
        body = {"provider": provider, "modelName": model, "text": texts, "modelKwargs": kwargs}
        answer = requests.post(f"{url}/v1/embeddings", json=body, headers=auth, timeout=60)
        assert answer.status_code == 200, answer.text
        vectors: list[list[float]] = answer.json()["embeddings"]
        return vectors

    tei = native("ecs.embedding.tei", "all-minilm-l6-v2", {})
    plain = native("ecs.embedding.instructor", "all-minilm-l6-v2-instructor", {"instruction": ""})
    assert [len(v) for v in plain] == [384, 384]
    for a, b in zip(tei, plain, strict=True):  # no instruction: the very same encoding (both are unit vectors)
        assert sum(x * y for x, y in zip(a, b, strict=True)) == pytest.approx(1.0, abs=1e-5)
    instructed = native("ecs.embedding.instructor", "all-minilm-l6-v2-instructor", {})  # "Represent the document:"
    cosines = [sum(x * y for x, y in zip(a, b, strict=True)) for a, b in zip(tei, instructed, strict=True)]
    assert all(0.5 < c < 0.9999 for c in cosines), cosines  # the instruction conditions the encoding

    client = openai.OpenAI(base_url=url + "/v1/openai", api_key=key)
    assert "all-minilm-l6-v2-instructor" in {m.id for m in client.models.list()}
    vectors = client.embeddings.create(model="all-minilm-l6-v2-instructor", input=texts)
    for item, expected in zip(vectors.data, instructed, strict=True):
        assert item.embedding == pytest.approx(expected, abs=1e-6)


def test_make_run_answers_from_an_uploaded_document(make_run: tuple[str, str, subprocess.Popen[str]]) -> None:
    """Upload through the API's presigned URL → S3 event → SQS → ingestion → pgvector → a RAG chat cites it."""
    url, key, _ = make_run
    auth = {"Api-Key": key}
    grant = requests.post(
        f"{url}/repositories/default/upload-url", headers=auth, json={"filename": "mascot.txt"}, timeout=10
    )
    assert grant.status_code == 200, grant.text
    text = b"The LISA project mascot is a purple octopus named Ollie who lives in Lisbon."
    put = requests.put(grant.json()["url"], data=text, headers=grant.json()["headers"], timeout=30)
    assert put.status_code == 200, put.text
    deadline = time.monotonic() + 120
    statuses: list[str] = []
    while time.monotonic() < deadline:
        documents = requests.get(f"{url}/repositories/default/documents", headers=auth, timeout=10).json()
        statuses = [d["status"] for d in documents["documents"]]
        if statuses and statuses[0] in ("READY", "FAILED"):
            break
        time.sleep(0.5)
    assert statuses == ["READY"]

    client = openai.OpenAI(base_url=url + "/v1/openai", api_key=key)
    answer = client.chat.completions.create(
        model="smollm2-135m-instruct",
        messages=[{"role": "user", "content": "What is the LISA mascot?"}],
        temperature=0,
        max_tokens=40,
        extra_body={"lisa_rag": {"repositoryId": "default", "k": 2}},
    )
    assert "octopus" in (answer.choices[0].message.content or "")
    sources = (answer.model_extra or {})["lisa_rag_sources"]
    assert sources[0]["source"] == "s3://lisa-rag-docs/default/mascot.txt"


def test_make_run_logs_requests_to_a_file_not_to_stdout(
    make_run: tuple[str, str, subprocess.Popen[str]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Only the banner goes to stdout: a parent that stops reading a pipe there must not block the front door."""
    url, key, _ = make_run
    assert requests.get(f"{url}/v1/openai/models", headers={"Api-Key": key}, timeout=10).status_code == 200
    stdout = next(tmp_path_factory.getbasetemp().glob("make-run*/stdout.log")).read_text()
    assert "Press Ctrl-C" in stdout
    assert '"message":"request"' not in stdout
    named = re.search(r"Logs: (\S+runner\.log)", stdout)
    assert named is not None, stdout
    assert '"path":"/v1/openai/models"' in Path(named.group(1)).read_text()


def test_make_run_stops_everything_on_ctrl_c(make_run: tuple[str, str, subprocess.Popen[str]]) -> None:
    url, _, process = make_run
    children = psutil.Process(process.pid).children(recursive=True)
    commands = [" ".join(p.cmdline()) for p in children]
    assert sum("workers." in c for c in commands) == 1  # the one embedding worker both MiniLM models share
    assert sum("vllm.entrypoints.openai.api_server" in c for c in commands) == 1  # the chat model's engine
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=90) == 0
    _gone, alive = psutil.wait_procs(children, timeout=30)  # vLLM's engine core too
    assert not alive
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/health", timeout=5)
