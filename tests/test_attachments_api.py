"""The attachments API over real HTTP: app.py behind the local front door on loopback, moto server for DynamoDB and
S3, files uploaded with a real HTTP PUT to their presigned URL, text extracted by the real RAG parsers (pypdf,
python-docx). Each caller sees only their own attachments; what is uploaded must be what was declared."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from chalicelib import aws
from chalicelib.attachments.models import ATTACHMENTS_PREFIX, MAX_ATTACHMENT_BYTES, MAX_TEXT_CHARS
from chalicelib.auth.authorizer import get_authorizer
from chalicelib.auth.tokens import TokenStore
from chalicelib.settings import get_settings
from tests.support.control_plane import Client, control_plane_url
from tests.support.rag_documents import make_docx, make_pdf

TXT, MD = "text/plain", "text/markdown"
PDF, DOCX = "application/pdf", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@pytest.fixture(scope="module")
def api_url(moto_server: str) -> Iterator[str]:
    """The control plane (app.py) served on a loopback port by the runner's front door."""
    with control_plane_url(workers=4) as url:
        yield url


@pytest.fixture
def users(aws_env: str, api_url: str) -> tuple[Client, Client]:
    get_authorizer().clear_cache()
    store = TokenStore()
    return Client(api_url, store.create(username="alice")[0]), Client(api_url, store.create(username="bob")[0])


def _error(response: requests.Response) -> str:
    return str(response.json().get("Message"))


def _declare(client: Client, file_name: str, content_type: str, size: int) -> dict[str, Any]:
    answer = client.call("POST", "/attachments", {"fileName": file_name, "contentType": content_type, "size": size})
    assert answer.status_code == 201, answer.text
    grant: dict[str, Any] = answer.json()
    return grant


def _attach(client: Client, file_name: str, content_type: str, data: bytes) -> str:
    grant = _declare(client, file_name, content_type, len(data))
    put = requests.put(grant["uploadUrl"], data=data, headers=grant["uploadHeaders"], timeout=60)
    assert put.status_code == 200, put.text
    return str(grant["attachmentId"])


def _text(client: Client, attachment_id: str, query: str = "") -> requests.Response:
    return client.call("GET", f"/attachments/{attachment_id}/text{query}")


@pytest.mark.parametrize(
    ("file_name", "content_type", "data", "expected"),
    [
        (
            "notes.txt",
            TXT,
            b"Solar panels turn light into power.\r\nTwice.",
            "Solar panels turn light into power.\nTwice.",
        ),
        ("README", MD, b"# Title\n\n* one\n* two\n", "# Title\n\n* one\n* two"),
        ("report.pdf", PDF, make_pdf([["Page one text"], ["Page two text"]]), "Page one text\n\nPage two text"),
        (
            "memo.docx",
            DOCX,
            make_docx(["First paragraph."], [["k", "v"]]),
            "Test document\n\nFirst paragraph.\n\nk | v",
        ),
    ],
)
def test_upload_by_presigned_put_then_read_its_text(
    users: tuple[Client, Client], file_name: str, content_type: str, data: bytes, expected: str
) -> None:
    alice, _ = users
    grant = _declare(alice, file_name, content_type, len(data))
    assert grant["uploadHeaders"] == {"Content-Type": content_type}
    assert grant["expiresIn"] == 900
    key = urlsplit(grant["uploadUrl"]).path.split("/", 2)[2]  # path-style: /<bucket>/<key>
    assert key.startswith(ATTACHMENTS_PREFIX)
    assert key.endswith(grant["attachmentId"])
    put = requests.put(grant["uploadUrl"], data=data, headers=grant["uploadHeaders"], timeout=60)
    assert put.status_code == 200, put.text
    answer = _text(alice, grant["attachmentId"])
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "attachmentId": grant["attachmentId"],
        "fileName": file_name,
        "contentType": content_type,
        "text": expected,
        "chars": len(expected),
        "truncated": False,
        "cutChars": 0,
    }


def test_text_is_cut_to_max_chars_and_says_what_was_cut(users: tuple[Client, Client]) -> None:
    alice, _ = users
    text = "".join(f"{i:04d} " for i in range(400))  # 2000 characters, the last a space that parsing trims
    attachment_id = _attach(alice, "long.txt", TXT, text.encode())
    whole = _text(alice, attachment_id).json()
    assert (whole["chars"], whole["truncated"], whole["cutChars"]) == (1999, False, 0)
    cut = _text(alice, attachment_id, "?maxChars=100").json()
    assert cut["text"] == text[:100]
    assert (cut["chars"], cut["truncated"], cut["cutChars"]) == (1999, True, 1899)
    exact = _text(alice, attachment_id, "?maxChars=1999").json()
    assert (exact["truncated"], exact["cutChars"]) == (False, 0)
    for bad in ("0", str(MAX_TEXT_CHARS + 1), "ten", "1_0"):
        refused = _text(alice, attachment_id, f"?maxChars={bad}")
        assert refused.status_code == 400, refused.text
        assert _error(refused).startswith("maxChars:")


def test_one_user_never_reaches_another_users_attachment(users: tuple[Client, Client]) -> None:
    alice, bob = users
    attachment_id = _attach(alice, "private.txt", TXT, b"alice's secret")
    for method, path in (("GET", f"/attachments/{attachment_id}/text"), ("DELETE", f"/attachments/{attachment_id}")):
        answer = bob.call(method, path)
        assert answer.status_code == 404, answer.text
        assert "secret" not in answer.text
    alice_key = urlsplit(_declare(alice, "a.txt", TXT, 1)["uploadUrl"]).path.rsplit("/", 1)[0]
    bob_key = urlsplit(_declare(bob, "a.txt", TXT, 1)["uploadUrl"]).path.rsplit("/", 1)[0]
    assert alice_key != bob_key  # a prefix of each user's own
    assert _text(alice, attachment_id).json()["text"] == "alice's secret"


def test_before_the_upload_409_and_after_delete_or_expiry_404(users: tuple[Client, Client]) -> None:
    alice, _ = users
    pending = _declare(alice, "later.md", MD, 5)["attachmentId"]
    early = _text(alice, pending)
    assert early.status_code == 409, early.text
    assert "not uploaded yet" in _error(early)
    assert alice.call("DELETE", f"/attachments/{pending}").status_code == 200  # a declared, never-uploaded file too

    attachment_id = _attach(alice, "gone.txt", TXT, b"short-lived")
    deleted = alice.call("DELETE", f"/attachments/{attachment_id}")
    assert deleted.status_code == 200
    assert deleted.json() == {"deleted": attachment_id}
    assert _text(alice, attachment_id).status_code == 404
    assert alice.call("DELETE", f"/attachments/{attachment_id}").status_code == 404
    settings = get_settings()
    keys = [o["Key"] for o in aws.client("s3").list_objects_v2(Bucket=settings.docs_bucket).get("Contents", [])]
    assert not [k for k in keys if k.endswith(attachment_id)]  # the object went with it

    expired = _attach(alice, "old.txt", TXT, b"yesterday")
    table = aws.table(settings.attachments_table)
    table.update_item(
        Key={"userId": "token:alice", "attachmentId": expired},
        UpdateExpression="SET expiresAt = :past",
        ExpressionAttributeValues={":past": 1},
    )  # past its TTL, not yet removed by DynamoDB
    assert _text(alice, expired).status_code == 404


def test_an_upload_that_is_not_what_was_declared_is_400_naming_it(users: tuple[Client, Client]) -> None:
    alice, _ = users
    not_a_pdf = _attach(alice, "fake.pdf", PDF, b"plain text pretending")
    answer = _text(alice, not_a_pdf)
    assert answer.status_code == 400, answer.text
    assert _error(answer).startswith("file: not a readable PDF")

    grant = _declare(alice, "typed.txt", TXT, 4)
    put = requests.put(grant["uploadUrl"], data=b"text", headers={"Content-Type": "image/png"}, timeout=60)
    assert put.status_code == 403, put.text  # the type is part of the signature: S3 (and moto) refuse the PUT
    key = urlsplit(grant["uploadUrl"]).path.split("/", 2)[2]
    aws.client("s3").put_object(Bucket=get_settings().docs_bucket, Key=key, Body=b"text", ContentType="image/png")
    answer = _text(alice, grant["attachmentId"])  # written some other way: the server checks the type again
    assert answer.status_code == 400, answer.text
    assert _error(answer) == "contentType: the file was uploaded as 'image/png', not text/plain"

    grant = _declare(alice, "sized.txt", TXT, 4)
    put = requests.put(grant["uploadUrl"], data=b"longer than four", headers=grant["uploadHeaders"], timeout=60)
    assert put.status_code == 200
    answer = _text(alice, grant["attachmentId"])
    assert answer.status_code == 400, answer.text
    assert _error(answer) == "size: the upload is 16 bytes, not the 4 declared"

    binary = _attach(alice, "blob.txt", TXT, b"\x00\x01\x02binary")
    assert _error(_text(alice, binary)) == "file: the file is binary, not text"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"contentType": TXT, "size": 1}, "fileName"),
        ({"fileName": "", "contentType": TXT, "size": 1}, "fileName"),
        ({"fileName": "n" * 256, "contentType": TXT, "size": 1}, "fileName"),
        ({"fileName": "dir/a.txt", "contentType": TXT, "size": 1}, "fileName"),
        ({"fileName": "..\\a.txt", "contentType": TXT, "size": 1}, "fileName"),
        ({"fileName": "a\x07.txt", "contentType": TXT, "size": 1}, "fileName"),
        ({"fileName": "a.png", "contentType": "image/png", "size": 1}, "contentType"),
        ({"fileName": "a.pdf", "contentType": TXT, "size": 1}, "contentType"),
        ({"fileName": "a.html", "contentType": TXT, "size": 1}, "contentType"),
        ({"fileName": "a.txt", "contentType": TXT, "size": 0}, "size"),
        ({"fileName": "a.txt", "contentType": TXT, "size": MAX_ATTACHMENT_BYTES + 1}, "size"),
        ({"fileName": "a.txt", "contentType": TXT, "size": 1.5}, "size"),
        ({"fileName": "a.txt", "contentType": TXT, "size": 1, "key": "x"}, "key"),
    ],
)
def test_bad_declarations_are_400_naming_the_field(
    users: tuple[Client, Client], body: dict[str, Any], field: str
) -> None:
    alice, _ = users
    answer = alice.call("POST", "/attachments", body)
    assert answer.status_code == 400, answer.text
    assert _error(answer).startswith(f"{field}:"), _error(answer)
    assert aws.table(get_settings().attachments_table).scan()["Count"] == 0  # nothing recorded


def test_bad_ids_are_400(users: tuple[Client, Client]) -> None:
    alice, _ = users
    for method, path in (
        ("GET", "/attachments/NOPE/text"),
        ("DELETE", "/attachments/0123"),
        ("GET", "/attachments/0123/text"),
    ):
        answer = alice.call(method, path)
        assert answer.status_code == 400, answer.text
        assert _error(answer).startswith("attachmentId:")
