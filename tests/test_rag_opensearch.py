"""The OpenSearch store through opensearch-py against a fake OpenSearch on loopback.

No OpenSearch can run here, so the fake holds the contract: it answers the REST calls the store makes (index
create/mapping, document get/index with optimistic concurrency, _bulk, _delete_by_query, k-NN _search) the way
OpenSearch documents them, and records every request body so the tests check the exact index mapping, bulk lines and
k-NN query the store sends. Scores follow OpenSearch's cosinesimil (`(1 + cos) / 2`).
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from chalicelib.rag.errors import BackendUnavailable, DimensionMismatch
from chalicelib.rag.models import OpenSearchConnection
from chalicelib.rag.vectorstores import ChunkRecord, DocumentWrite
from chalicelib.rag.vectorstores.opensearch import OpenSearchStore, index_name
from tests.support.servers import AppThread


class FakeOpenSearch:
    """Just enough of OpenSearch's REST API for one index-per-repository k-NN store."""

    def __init__(self) -> None:
        self.indices: dict[str, dict[str, Any]] = {}  # name → {"body": create body, "docs": {id: (seq, source)}}
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        self.seq = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        text = raw.decode()
        if request.path == "/_bulk":
            body: Any = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            body = json.loads(text) if text else None
        self.requests.append((request.method, request.path, dict(request.query), body))
        parts = [p for p in request.path.split("/") if p]
        try:
            return self.route(request.method, parts, dict(request.query), body)
        except KeyError:
            return _error(404, "index_not_found_exception", "no such index")

    def route(self, method: str, parts: list[str], query: dict[str, str], body: Any) -> web.Response:
        if parts == ["_bulk"]:
            return self.bulk(body)
        index = parts[0]
        if len(parts) == 1 and method == "PUT":
            if index in self.indices:
                return _error(400, "resource_already_exists_exception", f"index [{index}] already exists")
            self.indices[index] = {"body": body, "docs": {}}
            return web.json_response({"acknowledged": True, "index": index})
        if len(parts) == 1 and method == "DELETE":
            self.indices.pop(index, None)
            return web.json_response({"acknowledged": True})
        docs = self.indices[index]["docs"]
        if parts[1:] == ["_mapping"]:
            return web.json_response({index: {"mappings": self.indices[index]["body"]["mappings"]}})
        if parts[1] == "_doc" and method == "GET":
            found = docs.get(parts[2])
            if found is None:
                return web.json_response({"_index": index, "_id": parts[2], "found": False}, status=404)
            seq, source = found
            return web.json_response(
                {"_index": index, "_id": parts[2], "found": True, "_seq_no": seq, "_primary_term": 1, "_source": source}
            )
        if parts[1] == "_doc" and method in ("PUT", "POST"):
            doc_id, existing = parts[2], docs.get(parts[2])
            if query.get("op_type") == "create" and existing is not None:
                return _error(409, "version_conflict_engine_exception", "document already exists")
            if "if_seq_no" in query and (existing is None or existing[0] != int(query["if_seq_no"])):
                return _error(409, "version_conflict_engine_exception", "sequence number changed")
            self.seq += 1
            docs[doc_id] = (self.seq, body)
            return web.json_response({"_id": doc_id, "result": "created", "_seq_no": self.seq}, status=201)
        if parts[1:] == ["_delete_by_query"]:
            doomed = [i for i, (_, source) in docs.items() if _matches(source, body["query"])]
            for doc_id in doomed:
                del docs[doc_id]
            return web.json_response({"deleted": len(doomed)})
        if parts[1:] == ["_search"]:
            return self.search(index, body)
        return _error(400, "illegal_argument_exception", f"unexpected {method} /{'/'.join(parts)}")

    def bulk(self, lines: list[dict[str, Any]]) -> web.Response:
        items: list[dict[str, Any]] = []
        position = 0
        while position < len(lines):
            action, meta = next(iter(lines[position].items()))
            docs = self.indices.setdefault(meta["_index"], {"body": None, "docs": {}})["docs"]
            if action == "index":
                self.seq += 1
                docs[meta["_id"]] = (self.seq, lines[position + 1])
                position += 2
            else:
                docs.pop(meta["_id"], None)
                position += 1
            items.append({action: {"_id": meta["_id"], "status": 200}})
        return web.json_response({"took": 1, "errors": False, "items": items})

    def search(self, index: str, body: dict[str, Any]) -> web.Response:
        knn = body["query"]["knn"]["embedding"]
        scored = []
        for doc_id, (_, source) in self.indices[index]["docs"].items():
            if "embedding" not in source:
                continue
            if "filter" in knn and not _matches(source, knn["filter"]):
                continue
            scored.append(((1 + _cosine(knn["vector"], source["embedding"])) / 2, doc_id, source))
        scored.sort(key=lambda item: -item[0])
        excluded = set(body.get("_source", {}).get("excludes", []))
        hits = [
            {"_id": i, "_score": s, "_source": {k: v for k, v in src.items() if k not in excluded}}
            for s, i, src in scored[: knn["k"]]
        ]
        return web.json_response({"hits": {"total": {"value": len(hits)}, "hits": hits}})


def _field(source: dict[str, Any], path: str) -> Any:
    value: Any = source
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _matches(source: dict[str, Any], query: dict[str, Any]) -> bool:
    boolean = query["bool"]
    for clause in boolean.get("filter", []):
        ((path, value),) = clause["term"].items()
        if _field(source, path) != value:
            return False
    for clause in boolean.get("must_not", []):
        ((path, value),) = clause["term"].items()
        if _field(source, path) == value:
            return False
    return True


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def _error(status: int, kind: str, reason: str) -> web.Response:
    return web.json_response(
        {"error": {"type": kind, "reason": reason, "root_cause": []}, "status": status}, status=status
    )


@pytest.fixture
def fake() -> Iterator[tuple[FakeOpenSearch, str]]:
    server = FakeOpenSearch()
    thread = AppThread(server.app)
    url = thread.start()
    yield server, url
    thread.stop()


def _store(url: str) -> OpenSearchStore:
    return OpenSearchStore("Team Docs", OpenSearchConnection(endpoint=url, auth="none", engine="faiss"))


def _write(doc: str, content_hash: str, vectors: list[list[float]]) -> DocumentWrite:
    chunks = [
        ChunkRecord(i, f"{doc}#{i}@{content_hash}", v, {"filename": f"{doc}.md", "page": i})
        for i, v in enumerate(vectors)
    ]
    return DocumentWrite(doc, content_hash, f"s3://docs/team/{doc}.md", chunks)


def _yes() -> bool:
    return True


def test_first_write_creates_the_knn_index_with_the_documented_mapping(fake: tuple[FakeOpenSearch, str]) -> None:
    server, url = fake
    store = _store(url)
    assert store.index == "lisa-rag-team-docs" == index_name("lisa-rag-", "Team Docs")
    result = store.replace_document(_write("d1", "h1", [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), _yes)
    assert (result.outcome, result.generation, result.chunk_count) == ("written", 1, 2)
    creates = [body for method, path, _, body in server.requests if method == "PUT" and path == "/lisa-rag-team-docs"]
    assert len(creates) == 1
    body = creates[0]
    assert body["settings"] == {"index": {"knn": True}}
    embedding = body["mappings"]["properties"]["embedding"]
    assert embedding == {
        "type": "knn_vector",
        "dimension": 3,
        "method": {
            "name": "hnsw",
            "space_type": "cosinesimil",
            "engine": "faiss",
            "parameters": {"m": 16, "ef_construction": 128},
        },
    }
    properties = body["mappings"]["properties"]
    assert {k: properties[k]["type"] for k in ("document_id", "content_hash", "source", "kind")} == dict.fromkeys(
        ("document_id", "content_hash", "source", "kind"), "keyword"
    )
    template = body["mappings"]["dynamic_templates"][0]["metadata_strings"]
    assert template == {"path_match": "metadata.*", "match_mapping_type": "string", "mapping": {"type": "keyword"}}


def test_bulk_lines_and_marker_document(fake: tuple[FakeOpenSearch, str]) -> None:
    server, url = fake
    _store(url).replace_document(_write("d1", "abcdef0123456789ff", [[1.0, 0.0], [0.5, 0.5]]), _yes)
    [(_, _, query, lines)] = [r for r in server.requests if r[1] == "/_bulk"]
    assert query == {"refresh": "wait_for"}
    assert lines[0] == {"index": {"_index": "lisa-rag-team-docs", "_id": "d1:abcdef0123456789:0"}}
    assert lines[1] == {
        "kind": "chunk",
        "document_id": "d1",
        "chunk_index": 0,
        "content_hash": "abcdef0123456789ff",
        "source": "s3://docs/team/d1.md",
        "text": "d1#0@abcdef0123456789ff",
        "metadata": {"filename": "d1.md", "page": 0},
        "embedding": [1.0, 0.0],
    }
    assert lines[2]["index"]["_id"] == "d1:abcdef0123456789:1"
    assert len(lines) == 4
    [(_method, _path, query, marker)] = [
        r for r in server.requests if r[1] == "/lisa-rag-team-docs/_doc/doc:d1" and r[0] == "PUT"
    ]
    assert query == {"refresh": "wait_for", "op_type": "create"}
    assert marker == {
        "kind": "document",
        "document_id": "d1",
        "source": "s3://docs/team/d1.md",
        "content_hash": "abcdef0123456789ff",
        "chunk_count": 2,
        "generation": 1,
    }


def test_knn_search_query_filters_and_cosine_scores(fake: tuple[FakeOpenSearch, str]) -> None:
    server, url = fake
    store = _store(url)
    store.replace_document(_write("d1", "h1", [[1.0, 0.0], [0.0, 1.0]]), _yes)
    store.replace_document(_write("d2", "h1", [[1.0, 1.0]]), _yes)
    hits = store.search([1.0, 0.2], k=2)
    assert [(h.document_id, h.chunk_index) for h in hits] == [("d1", 0), ("d2", 0)]
    assert hits[0].score == pytest.approx(1 / math.sqrt(1.04), abs=1e-6)  # cosine, not OpenSearch's (1+cos)/2
    assert hits[0].source == "s3://docs/team/d1.md"
    assert hits[0].metadata == {"filename": "d1.md", "page": 0}
    assert server.requests[-1][3] == {
        "size": 2,
        "_source": {"excludes": ["embedding"]},
        "query": {"knn": {"embedding": {"vector": [1.0, 0.2], "k": 2}}},
    }
    filtered = store.search([1.0, 0.2], k=3, filters={"filename": "d2.md"})
    assert [h.document_id for h in filtered] == ["d2"]
    assert server.requests[-1][3]["query"]["knn"]["embedding"]["filter"] == {
        "bool": {"filter": [{"term": {"metadata.filename": "d2.md"}}]}
    }


def test_idempotent_replace_and_delete(fake: tuple[FakeOpenSearch, str]) -> None:
    server, url = fake
    store = _store(url)
    store.replace_document(_write("d1", "h1", [[1.0, 0.0], [0.0, 1.0]]), _yes)
    requests_before = len(server.requests)
    again = store.replace_document(_write("d1", "h1", [[1.0, 0.0], [0.0, 1.0]]), _yes)
    assert (again.outcome, again.generation) == ("unchanged", 1)
    assert not [r for r in server.requests[requests_before:] if r[1] == "/_bulk"]  # nothing re-indexed

    changed = store.replace_document(_write("d1", "h2", [[0.0, 1.0]]), _yes)
    assert (changed.outcome, changed.generation, changed.chunk_count) == ("written", 2, 1)
    marker_put = [r for r in server.requests if r[0] == "PUT" and r[1].endswith("/_doc/doc:d1")][-1]
    assert "if_seq_no" in marker_put[2]
    assert marker_put[2]["if_primary_term"] == "1"
    delete_query = [r for r in server.requests if r[1].endswith("/_delete_by_query")][-1][3]
    assert delete_query == {
        "query": {
            "bool": {
                "filter": [{"term": {"kind": "chunk"}}, {"term": {"document_id": "d1"}}],
                "must_not": [{"term": {"content_hash": "h2"}}],
            }
        }
    }
    assert [h.text for h in store.search([0.0, 1.0], k=5)] == ["d1#0@h2"]
    current = store.current("d1")
    assert current is not None
    assert (current.content_hash, current.generation) == ("h2", 2)

    assert store.delete_document("d1", still_gone=lambda: False) is None
    assert store.delete_document("d1", still_gone=_yes) == 3
    assert store.search([0.0, 1.0], k=5) == []


def test_a_lost_marker_race_undoes_its_chunks(fake: tuple[FakeOpenSearch, str]) -> None:
    server, url = fake
    store = _store(url)
    store.replace_document(_write("d1", "h1", [[1.0, 0.0]]), _yes)

    def other_writer_wins() -> bool:  # another ingestion moves the marker between our read and our write
        docs = server.indices["lisa-rag-team-docs"]["docs"]
        seq, source = docs["doc:d1"]
        docs["doc:d1"] = (seq + 100, {**source, "content_hash": "h3", "generation": 2})
        return True

    result = store.replace_document(_write("d1", "h2", [[0.0, 1.0]]), other_writer_wins)
    assert result.outcome == "superseded"
    assert [h.text for h in store.search([0.0, 1.0], k=5)] == ["d1#0@h1"]  # h2's chunks were removed again


def test_dimension_mismatch_and_unreachable_cluster(fake: tuple[FakeOpenSearch, str]) -> None:
    _, url = fake
    store = _store(url)
    store.replace_document(_write("d1", "h1", [[1.0, 0.0]]), _yes)
    with pytest.raises(DimensionMismatch, match="2-dimensional"):
        _store(url).replace_document(_write("d2", "h1", [[1.0, 0.0, 0.0]]), _yes)
    assert _store(url).search([1.0, 0.0], k=1)[0].document_id == "d1"
    down = OpenSearchStore("x", OpenSearchConnection(endpoint="http://127.0.0.1:9", auth="none"))
    with pytest.raises(BackendUnavailable, match="OpenSearch failed to search"):
        down.search([1.0], k=1)


def test_search_before_any_write_finds_nothing_and_drop_deletes_the_index(fake: tuple[FakeOpenSearch, str]) -> None:
    server, url = fake
    store = _store(url)
    assert store.search([1.0, 0.0], k=3) == []
    store.replace_document(_write("d1", "h1", [[1.0, 0.0]]), _yes)
    store.drop()
    assert server.indices == {}
    assert server.requests[-1][:3] == ("DELETE", "/lisa-rag-team-docs", {"ignore_unavailable": "true"})
