"""The /repositories API over real HTTP (app.py behind the runner's front door, real tokens through the real
authorizer, moto server, embedded PostgreSQL, the real TEI worker): isolation by allowedGroups, admin-only
create/delete, presigned uploads that get ingested, document listing/deletion rights, search, bad input."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from chalicelib.auth.authorizer import get_authorizer
from chalicelib.auth.tokens import TokenStore
from chalicelib.rag.errors import BackendUnavailable
from chalicelib.rag.repositories import RepositoryStore
from chalicelib.rag.vectorstores import store_for
from chalicelib.rag.vectorstores.pgvector import PgVectorStore
from tests.support.control_plane import Client, control_plane_url
from tests.support.rag import EMBEDDER, create_repository, ingest, register_embedder

pytestmark = pytest.mark.slow

SOLAR = "Solar panels convert sunlight into electricity. Clean them twice a year to keep the output high."


@pytest.fixture(scope="module")
def api_url(moto_server: str) -> Iterator[str]:
    """The control plane (app.py) served on a loopback port by the runner's front door."""
    with control_plane_url(workers=8) as url:
        yield url


class Users:
    def __init__(self, base: str) -> None:
        store = TokenStore()
        self.admin = Client(base, store.create("root", is_admin=True)[0])
        self.alice = Client(base, store.create("alice", groups=["finance"])[0])
        self.bob = Client(base, store.create("bob", groups=["sales"])[0])


@pytest.fixture
def users(rag_env: str, tei_worker: str, api_url: str) -> Users:
    get_authorizer().clear_cache()
    register_embedder(tei_worker)
    create_repository("public")
    create_repository("finance", allowedGroups=["finance"])
    return Users(api_url)


def _message(response: requests.Response) -> str:
    body = response.json()
    return str(body.get("Message") or body.get("message"))


def _upload(client: Client, repository: str, filename: str, data: bytes, **extra: Any) -> dict[str, Any]:
    response = client.call("POST", f"/repositories/{repository}/upload-url", {"filename": filename, **extra})
    assert response.status_code == 200, response.text
    grant = response.json()
    put = requests.put(grant["url"], data=data, headers=grant["headers"], timeout=60)
    assert put.status_code == 200, put.text
    return dict(grant)


def test_users_see_only_the_repositories_their_groups_allow(users: Users) -> None:
    ids = lambda client: [r["repositoryId"] for r in client.call("GET", "/repositories").json()["repositories"]]  # noqa: E731
    assert ids(users.alice) == ["finance", "public"]
    assert ids(users.bob) == ["public"]
    assert ids(users.admin) == ["finance", "public"]
    public = users.bob.call("GET", "/repositories/public").json()
    assert "connection" not in public
    assert (public["embeddingModelId"], public["type"]) == (EMBEDDER, "pgvector")
    assert "connection" in users.admin.call("GET", "/repositories/public").json()
    for method, path, body in [
        ("GET", "/repositories/finance", None),
        ("GET", "/repositories/finance/documents", None),
        ("POST", "/repositories/finance/search", {"query": "revenue"}),
        ("POST", "/repositories/finance/upload-url", {"filename": "x.txt"}),
    ]:
        response = users.bob.call(method, path, body)
        assert response.status_code == 404, (path, response.text)
        assert "does not exist or you may not use it" in _message(response)
    assert users.bob.call("GET", "/repositories/nope").status_code == 404  # the same answer: no existence oracle


def test_only_admins_create_and_delete_repositories(users: Users) -> None:
    body = {"repositoryId": "legal", "type": "pgvector", "embeddingModelId": EMBEDDER, "allowedGroups": ["legal"]}
    refused = users.alice.call("POST", "/repositories", body)
    assert refused.status_code == 403
    assert "admin" in _message(refused)
    created = users.admin.call("POST", "/repositories", body)
    assert created.status_code == 201, created.text
    assert created.json()["createdBy"] == "root"
    assert created.json()["source"] == "api"
    assert users.admin.call("POST", "/repositories", body).status_code == 409
    assert users.alice.call("GET", "/repositories/legal").status_code == 404
    assert users.alice.call("DELETE", "/repositories/public").status_code == 403
    assert users.admin.call("DELETE", "/repositories/legal").json()["repositoryId"] == "legal"
    assert users.admin.call("GET", "/repositories/legal").status_code == 404
    assert users.admin.call("DELETE", "/repositories/legal").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "pgvector", "embeddingModelId": EMBEDDER}, "repositoryId"),
        ({"repositoryId": "a b", "type": "pgvector", "embeddingModelId": EMBEDDER}, "repositoryId"),
        ({"repositoryId": "x", "type": "milvus", "embeddingModelId": EMBEDDER}, "type"),
        ({"repositoryId": "x", "type": "pgvector", "embeddingModelId": "no-such-model"}, "embeddingModelId"),
        ({"repositoryId": "x", "type": "opensearch", "embeddingModelId": EMBEDDER}, "endpoint"),
        (
            {"repositoryId": "x", "type": "pgvector", "embeddingModelId": EMBEDDER, "connection": {"password": "p"}},
            "passwordSecretId",
        ),
        (
            {
                "repositoryId": "x",
                "type": "pgvector",
                "embeddingModelId": EMBEDDER,
                "chunking": {"size": 100, "overlap": 100},
            },
            "overlap",
        ),
    ],
)
def test_bad_repository_definitions_are_refused_naming_the_field(
    users: Users, body: dict[str, Any], field: str
) -> None:
    response = users.admin.call("POST", "/repositories", body)
    assert response.status_code == 400, response.text
    assert field in _message(response)


def test_upload_ingest_list_search_and_delete_over_http(users: Users) -> None:
    grant = _upload(users.alice, "public", "energy/solar.txt", SOLAR.encode(), metadata={"team": "energy"})
    assert grant["key"] == "public/energy/solar.txt"
    assert grant["headers"]["x-amz-meta-uploaded-by"] == "token:alice"
    _upload(users.bob, "public", "bread.txt", b"Sourdough bread needs a starter, flour, water and salt.")
    assert ingest().failed == 0

    listing = users.bob.call("GET", "/repositories/public/documents").json()
    documents = {d["filename"]: d for d in listing["documents"]}
    assert set(documents) == {"energy/solar.txt", "bread.txt"}
    solar = documents["energy/solar.txt"]
    assert (solar["status"], solar["uploadedBy"], solar["metadata"]) == ("READY", "token:alice", {"team": "energy"})
    assert solar["documentId"] == grant["documentId"]
    page = users.bob.call("GET", "/repositories/public/documents?limit=1").json()
    assert len(page["documents"]) == 1
    assert page["nextToken"]
    rest = users.bob.call("GET", f"/repositories/public/documents?limit=1&nextToken={page['nextToken']}").json()
    assert {d["filename"] for d in page["documents"] + rest["documents"]} == set(documents)

    found = users.bob.call("POST", "/repositories/public/search", {"query": "how do photovoltaic panels work", "k": 2})
    assert found.status_code == 200, found.text
    results = found.json()["results"]
    assert results[0]["text"] == SOLAR
    assert results[0]["source"].endswith("/public/energy/solar.txt")
    assert results[0]["score"] > results[1]["score"]
    only = users.bob.call(
        "POST", "/repositories/public/search", {"query": "solar", "filter": {"filename": "bread.txt"}}
    )
    assert [r["metadata"]["filename"] for r in only.json()["results"]] == ["bread.txt"]

    solar_path = f"/repositories/public/documents/{solar['documentId']}"
    assert users.bob.call("GET", solar_path).json()["status"] == "READY"
    refused = users.bob.call("DELETE", solar_path)
    assert refused.status_code == 403
    overwrite = users.bob.call("POST", "/repositories/public/upload-url", {"filename": "energy/solar.txt"})
    assert overwrite.status_code == 403  # nor may bob replace alice's file
    assert users.alice.call("DELETE", solar_path).json()["deleted"] is True
    assert users.alice.call("GET", solar_path).status_code == 404
    ingest()  # the ObjectRemoved event finds nothing left to do
    remaining = users.bob.call("POST", "/repositories/public/search", {"query": "solar panels", "k": 5}).json()
    assert [r["metadata"]["filename"] for r in remaining["results"]] == ["bread.txt"]


def test_deleting_a_repository_removes_its_documents_and_vectors(users: Users) -> None:
    _upload(users.alice, "finance", "q1.txt", b"Revenue grew by twelve percent in the first quarter.")
    ingest()
    store: Any = store_for(RepositoryStore().get("finance"))
    assert store.count() == 1
    deleted = users.admin.call("DELETE", "/repositories/finance").json()
    assert (deleted["deletedDocuments"], deleted["deletedObjects"]) == (1, 1)
    assert store.count() == 0
    assert users.alice.call("GET", "/repositories/finance/documents").status_code == 404


def test_a_repository_delete_that_fails_on_the_vector_store_leaves_a_repository_to_retry(
    users: Users, monkeypatch: pytest.MonkeyPatch
) -> None:
    _upload(users.alice, "finance", "q1.txt", b"Revenue grew by twelve percent in the first quarter.")
    ingest()
    store: Any = store_for(RepositoryStore().get("finance"))

    def down(self: object) -> None:
        raise BackendUnavailable("the vector database is unavailable (drop the repository): connection refused")

    with monkeypatch.context() as patch:
        patch.setattr(PgVectorStore, "drop", down)
        failed = users.admin.call("DELETE", "/repositories/finance")
    assert failed.status_code == 503, failed.text
    assert users.alice.call("GET", "/repositories/finance/documents").status_code == 200  # still there to retry

    retried = users.admin.call("DELETE", "/repositories/finance")
    assert retried.status_code == 200, retried.text
    assert store.count() == 0
    assert users.alice.call("GET", "/repositories/finance/documents").status_code == 404


_LONE = "a\ud800"  # a lone UTF-16 surrogate (json.dumps writes the escape "\\ud800")


def _token(key: dict[str, Any] | None, raw: bytes | None = None) -> str:
    """A forged documents `nextToken` (the API's own are base64url JSON of the page's last key)."""
    body = raw if raw is not None else json.dumps({"repositoryId": "public", **(key or {})}).encode()
    return base64.urlsafe_b64encode(body).decode()


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/repositories/public/upload-url", {"filename": "../escape.txt"}, "filename"),
        ("POST", "/repositories/public/upload-url", {"filename": "virus.exe"}, "unsupported file type"),
        ("POST", "/repositories/public/upload-url", {"filename": "a.txt", "metadata": {"Bad Key": "v"}}, "metadata"),
        ("POST", "/repositories/public/upload-url", {"filename": "a.txt", "surprise": 1}, "surprise"),
        ("POST", "/repositories/public/search", {"query": "   "}, "query"),
        ("POST", "/repositories/public/search", {"query": "x", "k": 0}, "k"),
        ("POST", "/repositories/public/search", {"query": "x", "k": 51}, "k"),
        ("POST", "/repositories/public/search", {"query": "x", "filter": {"a b": 1}}, "filter"),
        ("GET", "/repositories/public/documents?limit=0", None, "limit"),
        ("GET", "/repositories/public/documents?nextToken=garbage", None, "nextToken"),
        ("GET", "/repositories/public/documents?limit=%C2%B2", None, "limit"),  # "²": str.isdigit, not int()
        ("GET", "/repositories/public/documents?limit=%D9%A1", None, "limit"),  # Arabic-Indic 1: int() takes it
        ("GET", f"/repositories/public/documents?nextToken={_token({'documentId': 1.5})}", None, "nextToken"),
        ("GET", f"/repositories/public/documents?nextToken={_token({'documentId': ['a']})}", None, "nextToken"),
        ("GET", f"/repositories/public/documents?nextToken={_token({'documentId': _LONE})}", None, "nextToken"),
        (
            "GET",
            f"/repositories/public/documents?nextToken={_token(None, b'[' * 2000 + b']' * 2000)}",
            None,
            "nextToken",
        ),
        ("POST", "/repositories/public/search", {"query": _LONE}, "query: contains a lone UTF-16 surrogate"),
        ("GET", "/repositories/public/documents/not-an-id", None, "documentId"),
    ],
)
def test_bad_requests_are_400_naming_what_is_wrong(
    users: Users, method: str, path: str, body: dict[str, Any] | None, field: str
) -> None:
    response = users.alice.call(method, path, body)
    assert response.status_code == 400, response.text
    assert field in _message(response)


def test_malformed_json_and_missing_credentials(users: Users, api_url: str) -> None:
    response = users.alice.call("POST", "/repositories/public/search", raw="{not json")
    assert response.status_code == 400
    assert requests.get(f"{api_url}/repositories", timeout=10).status_code == 401
    assert users.alice.call("GET", f"/repositories/public/documents/{'0' * 32}").status_code == 404
