"""RAG end to end, everything real: local RAG brought up the way the local stack does (`start_local_rag`: pgvector
tables, docs bucket → SQS notification, the SQS poller thread) on embedded PostgreSQL; a PDF and a .docx put into
the moto docs bucket are ingested by the Chalice handler with embeddings from the TEI worker; similarity search finds
the right chunk; a chat through the router (real SmolLM2 worker) with `lisa_rag` answers from the PDF and returns
it as a source. Re-uploads add no duplicates; a corrupt file is recorded FAILED and the queue keeps flowing."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import requests

from chalicelib.auth.authorizer import Authorizer
from chalicelib.auth.tokens import TokenStore
from chalicelib.config import load_config
from chalicelib.rag.models import DocumentStatus
from chalicelib.rag.repositories import RepositoryStore
from chalicelib.rag.service import search_repository
from chalicelib.rag.vectorstores import store_for
from chalicelib.registry.models import CreateModelRequest
from chalicelib.registry.resolver import CachedRegistry
from chalicelib.registry.store import ModelStore
from chalicelib.settings import get_settings
from router.app import create_app
from router.settings import RouterSettings
from runner.rag_local import LocalRag, start_local_rag
from tests.support.rag import document, put_document, register_embedder
from tests.support.rag_documents import make_docx, make_pdf
from tests.support.servers import AppThread
from tests.support.workers import TGI_ENVIRONMENT

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CODE = "7431"
PDF_PAGES = [
    ["Greenhouse handbook.", "Water the tomatoes every morning before nine."],
    [f"The access code for the Zephyr greenhouse door is {CODE}."],
]
DOCX_PARAGRAPHS = [
    "Captain Mirela Voss commands the research vessel Aurora Borealis.",
    "The vessel carries twelve scientists and a small submarine.",
]


def _wait(condition: Callable[[], bool], timeout: float = 120.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _status(key: str) -> DocumentStatus | None:
    record = document(key)
    return record.status if record else None


@pytest.fixture
def stack(rag_env: str, tei_worker: str, tgi_worker: str, tmp_path: Path) -> Iterator[tuple[LocalRag, str, str]]:
    """Local RAG + the router with its augmenter; yields (rag, router URL, a user's API token)."""
    config = load_config(ROOT / "config.yaml")  # its `default` pgvector repository, embedded with all-minilm-l6-v2
    default = next(r for r in config.rag_repositories if r.repository_id == "default")
    register_embedder(tei_worker, name=default.embedding_model_id)
    ModelStore().create(
        CreateModelRequest.model_validate(
            {
                "modelName": "smollm2",
                "hfModelId": "HuggingFaceTB/SmolLM2-135M-Instruct",
                "inferenceContainer": "tgi",
                "endpointUrl": tgi_worker,
                "containerConfig": {"image": "local", "environment": TGI_ENVIRONMENT},
            }
        )
    )
    rag = start_local_rag(config, tmp_path, dsn=rag_env)
    router = AppThread(
        lambda: create_app(
            RouterSettings(access_log=False),
            authorizer=Authorizer.from_settings(get_settings()),
            registry=CachedRegistry(ModelStore(), ttl_seconds=60),
            augment_chat=rag.augmenter,
        )
    )
    url = router.start()
    token, _ = TokenStore().create("alice")
    try:
        yield rag, url, token
    finally:
        router.stop()
        rag.stop()


def _chat(url: str, token: str, question: str, **extra: Any) -> Any:
    client = openai.OpenAI(base_url=f"{url}/v1/openai", api_key="unused", default_headers={"Api-Key": token})
    return client.chat.completions.create(
        model="smollm2",
        messages=[{"role": "user", "content": question}],
        temperature=0,
        max_tokens=40,
        extra_body=extra or None,
    )


def test_pdf_and_docx_are_ingested_found_and_answered_from_with_sources(stack: tuple[LocalRag, str, str]) -> None:
    rag, url, token = stack
    assert rag.repositories == ["default"]
    pdf, docx = make_pdf(PDF_PAGES), make_docx(DOCX_PARAGRAPHS)
    put_document("default/handbook.pdf", pdf)
    put_document("default/crew.docx", docx)
    _wait(lambda: _status("default/handbook.pdf") is DocumentStatus.READY, what="the pdf")
    _wait(lambda: _status("default/crew.docx") is DocumentStatus.READY, what="the docx")

    repository = RepositoryStore().get("default")
    [hit] = search_repository(repository, "What is the code to open the Zephyr greenhouse door?", 1)
    assert CODE in hit.text
    assert hit.source.endswith("/default/handbook.pdf")
    assert hit.metadata["page"] == 2
    [crew] = search_repository(repository, "Who is in command of the Aurora Borealis ship?", 1)
    assert "Mirela Voss" in crew.text
    assert crew.metadata["filename"] == "crew.docx"

    question = "What is the access code for the Zephyr greenhouse door?"
    answer = _chat(url, token, question, lisa_rag={"repositoryId": "default", "k": 2})
    assert CODE in (answer.choices[0].message.content or ""), answer.choices[0].message.content
    sources = answer.model_extra["lisa_rag_sources"]
    assert sources[0]["source"].endswith("/default/handbook.pdf")
    assert (sources[0]["filename"], sources[0]["page"], sources[0]["index"]) == ("handbook.pdf", 2, 1)
    assert CODE in sources[0]["text"]
    without = _chat(url, token, question)
    assert CODE not in (without.choices[0].message.content or "")  # the answer came from the retrieved chunk
    assert "lisa_rag_sources" not in (without.model_extra or {})

    stream = requests.post(
        f"{url}/v1/openai/chat/completions",
        headers={"Api-Key": token},
        json={
            "model": "smollm2",
            "messages": [{"role": "user", "content": question}],
            "temperature": 0,
            "max_tokens": 40,
            "stream": True,
            "lisa_rag": {"repositoryId": "default", "k": 2},
        },
        stream=True,
        timeout=300,
    )
    events = [line[6:] for line in stream.iter_lines(decode_unicode=True) if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    import json

    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["lisa_rag_sources"][0]["source"].endswith("/default/handbook.pdf")
    assert all("lisa_rag_sources" not in c for c in chunks[1:])
    assert CODE in "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])

    # Re-upload the same bytes: no duplicate chunks. A corrupt file fails with a reason; the queue keeps flowing.
    store: Any = store_for(repository)
    chunks_before = store.count()
    pdf_record = document("default/handbook.pdf")
    assert pdf_record is not None
    put_document("default/handbook.pdf", pdf)
    put_document("default/broken.docx", b"PK\x03\x04 this is not a real docx")
    put_document("default/after.txt", b"Files uploaded after a broken one are still ingested.")
    _wait(lambda: _status("default/after.txt") is DocumentStatus.READY, what="the file after the broken one")
    _wait(lambda: _status("default/broken.docx") is DocumentStatus.FAILED, what="the broken docx")
    _wait(lambda: rag.poller.pending() == 0, what="an empty queue")
    broken = document("default/broken.docx")
    assert broken is not None
    assert "not a readable .docx" in (broken.status_reason or "")
    again = document("default/handbook.pdf")
    assert again is not None
    assert (again.generation, again.chunk_count) == (pdf_record.generation, pdf_record.chunk_count)
    assert store.count() == chunks_before + 1  # only after.txt's chunk was added


def test_chat_rag_errors_are_clear(stack: tuple[LocalRag, str, str]) -> None:
    _, url, token = stack

    def post(rag: Any) -> requests.Response:
        body = {"model": "smollm2", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8, "lisa_rag": rag}
        return requests.post(f"{url}/v1/openai/chat/completions", headers={"Api-Key": token}, json=body, timeout=300)

    missing = post({"repositoryId": "nope"})
    assert missing.status_code == 404
    assert missing.json()["error"]["param"] == "lisa_rag.repositoryId"
    bad_k = post({"repositoryId": "default", "k": 0})
    assert bad_k.status_code == 422
    assert bad_k.json()["error"]["param"] == "lisa_rag.k"
    assert post("default").status_code == 422
    empty = post({"repositoryId": "default"})  # nothing ingested yet: answered without context, no sources
    assert empty.status_code == 200, empty.text
    assert empty.json()["lisa_rag_sources"] == []
