"""The TEI-compatible CPU worker (and its instructor protocol) against a direct transformers computation."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest
import torch
from openai import OpenAI
from transformers import AutoModel, AutoTokenizer

from tests.support.workers import HUGE, local_model_dirs, small_while_huge
from workers.prepare import MINILM_ID

pytestmark = pytest.mark.slow

TEXTS = ["LISA serves language models.", "The cat sat on the mat.", "Paris is the capital of France."]


@pytest.fixture(scope="module")
def http(tei_worker: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=tei_worker, timeout=60) as session:
        yield session


@pytest.fixture(scope="module")
def reference() -> tuple[AutoTokenizer, AutoModel]:
    folder = local_model_dirs()[MINILM_ID]
    return AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()


def direct_embeddings(reference: tuple[AutoTokenizer, AutoModel], texts: list[str], normalize: bool) -> torch.Tensor:
    """all-MiniLM-L6-v2 as its model card computes it: mean pooling over the attention mask, then L2 norm."""
    tokenizer, model = reference
    batch = tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=1) if normalize else pooled


def test_info_uses_tei_field_names(http: httpx.Client) -> None:
    info = http.get("/info").json()
    assert info["model_id"] == MINILM_ID
    assert info["model_type"] == {"embedding": {"pooling": "mean"}}
    assert info["max_input_length"] == 256  # sentence_bert_config.json's max_seq_length
    for key in ("max_concurrent_requests", "max_batch_tokens", "max_client_batch_size", "version"):
        assert key in info
    assert http.get("/health").status_code == 200


@pytest.mark.parametrize("normalize", [True, False])
def test_embed_matches_a_direct_transformers_computation(
    http: httpx.Client, reference: tuple[AutoTokenizer, AutoModel], normalize: bool
) -> None:
    response = http.post("/embed", json={"inputs": TEXTS, "normalize": normalize})
    assert response.status_code == 200
    got = torch.tensor(response.json())
    assert got.shape == (3, 384)
    expected = direct_embeddings(reference, TEXTS, normalize)
    assert torch.allclose(got, expected, atol=1e-5)
    norms = got.norm(dim=1)
    if normalize:
        assert torch.allclose(norms, torch.ones(3), atol=1e-5)
    else:
        assert not torch.allclose(norms, torch.ones(3), atol=1e-2)


def test_single_string_gives_one_vector_and_similar_texts_are_close(http: httpx.Client) -> None:
    one = http.post("/embed", json={"inputs": "A man is eating food."}).json()
    assert len(one) == 1
    assert len(one[0]) == 384
    vectors = torch.tensor(
        http.post("/embed", json={"inputs": ["A man is eating food.", "A man eats a meal.", "The stock fell."]}).json()
    )
    similar, unrelated = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    assert similar > 0.6 > unrelated


def test_concurrent_requests_are_batched_without_mixing_results(tei_worker: str, http: httpx.Client) -> None:
    texts = [f"sentence number {i} about topic {i % 5}" for i in range(24)]
    singles = [http.post("/embed", json={"inputs": t}).json()[0] for t in texts]
    before = {k: float(v) for k, v in (line.split() for line in http.get("/metrics").text.splitlines())}

    async def together() -> list[list[float]]:
        async with httpx.AsyncClient(base_url=tei_worker, timeout=60) as client:
            responses = await asyncio.gather(*(client.post("/embed", json={"inputs": t}) for t in texts))
        return [r.json()[0] for r in responses]

    concurrent = asyncio.run(together())
    after = {k: float(v) for k, v in (line.split() for line in http.get("/metrics").text.splitlines())}
    assert torch.allclose(torch.tensor(concurrent), torch.tensor(singles), atol=1e-5)
    assert after["te_request_count"] - before["te_request_count"] == 24
    assert after["te_batch_count"] - before["te_batch_count"] <= 24


def test_truncate_allows_long_inputs(http: httpx.Client, reference: tuple[AutoTokenizer, AutoModel]) -> None:
    long_text = "embedding " * 400
    refused = http.post("/embed", json={"inputs": long_text})
    assert refused.status_code == 413
    assert refused.json()["error_type"] == "Validation"
    assert "must have less than 256 tokens" in refused.json()["error"]
    accepted = http.post("/embed", json={"inputs": long_text, "truncate": True})
    assert accepted.status_code == 200
    expected = direct_embeddings(reference, [long_text], normalize=True)
    assert torch.allclose(torch.tensor(accepted.json()), expected, atol=1e-5)


@pytest.mark.parametrize(
    ("body", "status", "error_type"),
    [
        ({"inputs": []}, 400, "Empty"),
        ({"inputs": ""}, 400, "Empty"),
        ({"inputs": ["fine", ""]}, 400, "Empty"),
        ({"inputs": ["x"] * 33}, 413, "Validation"),
        ({"inputs": 5}, 422, "Validation"),
        ({"normalize": True}, 422, "Validation"),
        ({"inputs": "x", "dimensions": 128}, 422, "Validation"),
        ({"inputs": "x", "prompt_name": "query"}, 422, "Validation"),
    ],
)
def test_bad_embed_requests_answer_like_tei(http: httpx.Client, body: dict, status: int, error_type: str) -> None:
    response = http.post("/embed", json=body)
    assert response.status_code == status, response.text
    assert response.json()["error_type"] == error_type
    assert response.json()["error"]


@pytest.mark.parametrize(
    ("route", "body", "status", "field"),
    [
        ("/embed", {"inputs": ["ok", "a\ud800"]}, 422, "inputs.1"),
        ("/v1/embeddings", {"input": "\udfff"}, 422, "input"),
        ("/predictions/model", {"instruction": "\ud800", "text": "x"}, 400, "instruction"),
    ],
)
def test_lone_surrogates_and_deep_nesting_are_refused_naming_the_field(
    http: httpx.Client, route: str, body: dict, status: int, field: str
) -> None:
    headers = {"content-type": "application/json"}
    response = http.post(route, content=json.dumps(body), headers=headers)  # json.dumps escapes the surrogate
    assert response.status_code == status, response.text
    assert f"{field}: contains a lone UTF-16 surrogate" in str(response.json())
    deep = http.post(route, content=b'{"inputs": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", headers=headers)
    assert deep.status_code == status, deep.text
    assert "nested too deeply" in str(deep.json())


def test_a_huge_input_is_refused_cheaply_and_never_stalls_a_concurrent_embed(tei_worker: str) -> None:
    stall = small_while_huge(f"{tei_worker}/embed", {"inputs": "a small one"}, {"inputs": HUGE})
    assert stall.huge.status_code == 413, stall.huge.text
    assert "must have less than" in stall.huge.json()["error"]
    assert stall.small.status_code == 200, stall.small.text
    assert stall.loaded < 10 * stall.unloaded + 0.5, stall


def test_truncating_a_huge_input_embeds_exactly_its_head(http: httpx.Client) -> None:
    """Truncation tokenizes only the head it keeps (or the tail, truncating left): the same vector as a short text
    holding those tokens."""
    for direction, short in (("Right", HUGE[:3000]), ("Left", HUGE[-3000:])):
        body = {"truncate": True, "truncation_direction": direction}
        huge = http.post("/embed", json={"inputs": HUGE, **body})
        expected = http.post("/embed", json={"inputs": short, **body})
        assert huge.status_code == expected.status_code == 200, huge.text
        assert torch.allclose(torch.tensor(huge.json()), torch.tensor(expected.json()), atol=1e-6)


def test_openai_embeddings_route_with_the_openai_sdk(tei_worker: str, http: httpx.Client) -> None:
    openai = OpenAI(base_url=f"{tei_worker}/v1", api_key="unused")
    response = openai.embeddings.create(model=MINILM_ID, input=TEXTS)  # the SDK asks for base64 by default
    vectors = torch.tensor([d.embedding for d in response.data])
    expected = torch.tensor(http.post("/embed", json={"inputs": TEXTS}).json())
    assert torch.allclose(vectors, expected, atol=1e-6)
    assert response.usage.prompt_tokens > 0


# -- instructor protocol ----------------------------------------------------------------------------------------------
def test_instructor_protocol_returns_one_vector_per_text(http: httpx.Client) -> None:
    body = {"instruction": "Represent the document for retrieval:", "text": TEXTS}
    response = http.post("/predictions/model", json=body)
    assert response.status_code == 200
    vectors = torch.tensor(response.json())
    assert vectors.shape == (3, 384)
    assert torch.allclose(vectors.norm(dim=1), torch.ones(3), atol=1e-5)
    single = http.post("/predictions/model", json={"instruction": body["instruction"], "text": TEXTS[0]}).json()
    assert torch.allclose(torch.tensor(single[0]), vectors[0], atol=1e-5)
    assert http.get("/ping").json() == {"status": "Healthy"}


def test_instruction_conditions_the_embedding(http: httpx.Client) -> None:
    plain = torch.tensor(http.post("/embed", json={"inputs": TEXTS[2]}).json()[0])
    without = torch.tensor(http.post("/predictions/model", json={"instruction": "", "text": TEXTS[2]}).json()[0])
    query = {"instruction": "Represent the question for retrieving answers:", "text": TEXTS[2]}
    instructed = torch.tensor(http.post("/predictions/model", json=query).json()[0])
    assert torch.allclose(without, plain, atol=1e-5)  # no instruction: exactly the TEI embedding
    assert not torch.allclose(instructed, plain, atol=1e-3)
    assert float(instructed @ plain) > 0.5  # still about the same sentence


@pytest.mark.parametrize("body", [{"instruction": "x"}, {"instruction": "x", "text": []}, {"text": ""}, {"text": 3}])
def test_bad_instructor_requests_are_400s(http: httpx.Client, body: dict) -> None:
    response = http.post("/predictions/model", json=body)
    assert response.status_code == 400
    assert response.json()["code"] == 400
    assert response.json()["message"]
