"""The session store against DynamoDB on moto server: versions, atomic appends, the size limit, isolation by key."""

from __future__ import annotations

import pytest

from chalicelib import aws
from chalicelib.sessions.models import Message, SessionParameters, SessionPut
from chalicelib.sessions.store import (
    MAX_SESSION_BYTES,
    SessionNotFound,
    SessionStore,
    SessionTooLarge,
    VersionConflict,
    dynamo_size,
    item_size,
)
from chalicelib.settings import get_settings


@pytest.fixture
def store(aws_env: str) -> SessionStore:
    return SessionStore()


def _raw_item(user: str, session_id: str) -> dict | None:
    table = aws.table(get_settings().sessions_table)
    return table.get_item(Key={"userId": user, "sessionId": session_id}, ConsistentRead=True).get("Item")


def test_create_get_roundtrip_keeps_parameters_and_messages(store: SessionStore) -> None:
    params = SessionParameters(model="smollm2", system_prompt="Be brief.", temperature=0.7, top_k=40, top_p=0.9)
    created, was_created = store.put(
        "alice",
        "s1",
        SessionPut(
            messages=[
                Message(role="user", content="What is the capital of France?"),
                Message(role="assistant", content="Paris.", metadata={"model": "smollm2", "usage": {"total": 12}}),
            ],
            parameters=params,
        ),
    )
    assert was_created
    assert created.version == 1
    assert created.name == "What is the capital of France?"
    got = store.get("alice", "s1")
    assert got.parameters == params
    assert [m.content for m in got.messages] == ["What is the capital of France?", "Paris."]
    assert got.messages[1].metadata == {"model": "smollm2", "usage": {"total": 12}}
    assert got.messages[0].created_at is not None
    assert got.message_count == 2


def test_update_requires_current_version_and_keeps_omitted_fields(store: SessionStore) -> None:
    store.put("alice", "s1", SessionPut(name="first", messages=[Message(role="user", content="hi")]))
    renamed, created = store.put("alice", "s1", SessionPut(name="renamed", version=1))
    assert not created
    assert renamed.version == 2
    assert renamed.name == "renamed"
    assert [m.content for m in renamed.messages] == ["hi"]
    with pytest.raises(VersionConflict) as conflict:
        store.put("alice", "s1", SessionPut(name="stale", version=1))
    assert conflict.value.current_version == 2
    assert store.get("alice", "s1").name == "renamed"


def test_create_over_existing_and_update_of_missing_are_refused(store: SessionStore) -> None:
    store.put("alice", "s1", SessionPut(name="mine"))
    with pytest.raises(VersionConflict, match="already exists"):
        store.put("alice", "s1", SessionPut(name="again"))
    with pytest.raises(SessionNotFound):
        store.put("alice", "nope", SessionPut(name="x", version=3))
    with pytest.raises(SessionNotFound):
        store.append("alice", "nope", [Message(role="user", content="x")])


def test_append_bumps_version_so_a_put_based_on_older_state_cannot_drop_messages(store: SessionStore) -> None:
    store.put("alice", "s1", SessionPut(messages=[Message(role="user", content="one")]))
    summary, first = store.append(
        "alice", "s1", [Message(role="assistant", content="two"), Message(role="user", content="three")]
    )
    assert (first, summary.message_count, summary.version) == (1, 3, 2)
    with pytest.raises(VersionConflict):
        store.put("alice", "s1", SessionPut(messages=[Message(role="user", content="one")], version=1))
    assert [m.content for m in store.get("alice", "s1").messages] == ["one", "two", "three"]


def test_users_are_isolated_by_key(store: SessionStore) -> None:
    store.put("alice", "shared-id", SessionPut(name="alice's"))
    store.put("bob", "shared-id", SessionPut(name="bob's"))
    assert store.get("alice", "shared-id").name == "alice's"
    assert [s.name for s in store.list_sessions("bob")] == ["bob's"]
    assert store.delete_all("bob") == 1
    assert store.get("alice", "shared-id").name == "alice's"
    with pytest.raises(SessionNotFound):
        store.delete("bob", "shared-id")


def test_list_is_newest_first_and_delete_all_pages_through_everything(store: SessionStore) -> None:
    big = "x" * 150_000  # a few of these exceed one 1 MB query page
    for i in range(7):
        store.put("alice", f"s{i}", SessionPut(name=f"n{i}", messages=[Message(role="user", content=big)]))
    store.append("alice", "s3", [Message(role="assistant", content="latest")])
    listed = store.list_sessions("alice")
    assert len(listed) == 7
    assert listed[0].session_id == "s3"
    assert store.delete_all("alice") == 7
    assert store.list_sessions("alice") == []


def test_put_over_the_limit_is_refused_and_nothing_is_written(store: SessionStore) -> None:
    too_big = [Message(role="user", content="y" * 100_000) for _ in range(4)]
    with pytest.raises(SessionTooLarge) as error:
        store.put("alice", "s1", SessionPut(messages=too_big))
    assert error.value.limit == MAX_SESSION_BYTES
    assert error.value.size > MAX_SESSION_BYTES
    assert _raw_item("alice", "s1") is None


def test_append_over_the_limit_is_refused_and_the_session_is_intact(store: SessionStore) -> None:
    store.put("alice", "s1", SessionPut(messages=[Message(role="user", content="z" * 150_000)]))
    before = _raw_item("alice", "s1")
    with pytest.raises(SessionTooLarge, match="limit"):
        store.append("alice", "s1", [Message(role="assistant", content="w" * 60_000)])
    assert _raw_item("alice", "s1") == before
    # A small append still fits.
    summary, _ = store.append("alice", "s1", [Message(role="assistant", content="ok")])
    assert summary.message_count == 2


def test_size_estimate_bounds_the_stored_item_and_the_limit_fits_dynamodb(store: SessionStore) -> None:
    # Fill a session up to the limit in batches of small messages; every accepted append is stored whole.
    store.put("alice", "s1", SessionPut())
    message = Message(role="user", content="q" * 1000, metadata={"n": 1})
    appended = 0
    while True:
        try:
            store.append("alice", "s1", [message] * 20)
        except SessionTooLarge:
            break
        appended += 20
    item = _raw_item("alice", "s1")
    assert item is not None
    assert int(item["sizeBytes"]) <= MAX_SESSION_BYTES
    assert int(item["sizeBytes"]) >= item_size(item)  # the running estimate never under-counts
    assert int(item["sizeBytes"]) > MAX_SESSION_BYTES - 20 * 1100  # it filled up to the limit, not short of it
    assert len(item["messages"]) == appended
    assert dynamo_size("é") == 2


def test_delete_one(store: SessionStore) -> None:
    store.put("alice", "s1", SessionPut())
    store.put("alice", "s2", SessionPut())
    store.delete("alice", "s1")
    assert [s.session_id for s in store.list_sessions("alice")] == ["s2"]
    with pytest.raises(SessionNotFound):
        store.get("alice", "s1")
