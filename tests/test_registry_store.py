"""The model registry store against DynamoDB on a moto server: CRUD, conditional writes, real-thread races."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from chalicelib import aws
from chalicelib.config import ContainerConfig, InferenceContainer, ModelType
from chalicelib.registry.errors import InvalidModel, ModelConflict, ModelNotFound
from chalicelib.registry.models import CreateModelRequest, ModelRecord, ModelStatus
from chalicelib.registry.store import ModelStore
from chalicelib.settings import get_settings


def request(name: str = "smollm2", **overrides: Any) -> CreateModelRequest:
    fields: dict[str, Any] = {
        "modelName": name,
        "hfModelId": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "inferenceContainer": "tgi",
        "defaultModelKwargs": {"max_new_tokens": 256, "temperature": 0.2, "stop": ["</s>"]},
        "containerConfig": {"image": "ghcr.io/huggingface/text-generation-inference:3.3.4", "environment": {"A": "1"}},
        "instanceType": "g5.xlarge",
        **overrides,
    }
    return CreateModelRequest.model_validate(fields)


@pytest.fixture
def store(aws_env: str) -> ModelStore:
    return ModelStore()


def raw_item(model_id: str) -> dict[str, Any]:
    item: dict[str, Any] = aws.table(get_settings().models_table).get_item(Key={"modelId": model_id})["Item"]
    return item


def test_create_get_list_round_trip(store: ModelStore) -> None:
    created = store.create(request())
    assert created.model_id == created.model_name == "smollm2"
    assert created.provider == "ecs.textgen.tgi"
    assert created.model_type is ModelType.TEXTGEN
    assert created.streaming is True  # textgen streams unless told otherwise
    assert created.status is ModelStatus.CREATING  # no endpoint yet
    assert created.version == 1
    assert created.source == "api"

    got = store.get("smollm2")
    assert got == created
    assert got.default_model_kwargs == {"max_new_tokens": 256, "temperature": 0.2, "stop": ["</s>"]}
    assert isinstance(got.default_model_kwargs["max_new_tokens"], int)
    assert got.container_config == ContainerConfig(
        image="ghcr.io/huggingface/text-generation-inference:3.3.4", environment={"A": "1"}
    )
    # Stored with the wire names, numbers as DynamoDB numbers (not JSON strings).
    item = raw_item("smollm2")
    assert item["hfModelId"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert item["provider"] == "ecs.textgen.tgi"
    assert str(item["defaultModelKwargs"]["temperature"]) == "0.2"
    assert "endpointUrl" not in item  # nulls are not stored

    embed = store.create(
        request("minilm", hfModelId="sentence-transformers/all-MiniLM-L6-v2", inferenceContainer="tei",
                endpointUrl="http://127.0.0.1:9000/", defaultModelKwargs={})
    )  # fmt: skip
    assert embed.status is ModelStatus.IN_SERVICE  # endpoint known
    assert embed.endpoint_url == "http://127.0.0.1:9000"
    assert (embed.model_type, embed.provider, embed.streaming) == (ModelType.EMBEDDING, "ecs.embedding.tei", False)
    assert [r.model_name for r in store.list()] == ["minilm", "smollm2"]


def test_create_is_conditional(store: ModelStore) -> None:
    store.create(request())
    with pytest.raises(ModelConflict, match="already exists") as caught:
        store.create(request(hfModelId="other/model"))
    assert caught.value.current_version == 1
    assert store.get("smollm2").hf_model_id == "HuggingFaceTB/SmolLM2-135M-Instruct"  # untouched


def test_concurrent_creates_of_one_name_exactly_one_wins(store: ModelStore) -> None:
    barrier = threading.Barrier(8)

    def attempt(i: int) -> str:
        barrier.wait()
        try:
            store.create(request(hfModelId=f"org/model-{i}"))
            return f"org/model-{i}"
        except ModelConflict:
            return ""

    with ThreadPoolExecutor(8) as pool:
        winners = [w for w in pool.map(attempt, range(8)) if w]
    assert len(winners) == 1
    assert store.get("smollm2").hf_model_id == winners[0]


def test_unknown_ids(store: ModelStore) -> None:
    with pytest.raises(ModelNotFound, match="'nope' is not registered"):
        store.get("nope")
    with pytest.raises(ModelNotFound):
        store.update("nope", 1, {"streaming": False})
    with pytest.raises(ModelNotFound):
        store.set_status("nope", ModelStatus.IN_SERVICE)
    with pytest.raises(ModelNotFound):
        store.delete("nope")
    assert store.list() == []  # set_status did not create an item


def test_update_checks_and_bumps_the_version(store: ModelStore) -> None:
    created = store.create(request())
    updated = store.update(
        "smollm2", 1, {"endpoint_url": "http://127.0.0.1:8081", "default_model_kwargs": {"max_new_tokens": 64}}
    )
    assert updated.version == 2
    assert updated.endpoint_url == "http://127.0.0.1:8081"
    assert updated.default_model_kwargs == {"max_new_tokens": 64}
    assert updated.created_at == created.created_at
    assert updated.updated_at >= created.updated_at
    assert store.get("smollm2") == updated

    with pytest.raises(ModelConflict, match="version 2, not 1") as caught:
        store.update("smollm2", 1, {"streaming": False})
    assert caught.value.current_version == 2
    assert store.get("smollm2").streaming is True  # the stale write changed nothing


def test_update_keeps_the_record_valid(store: ModelStore) -> None:
    store.create(request())
    with pytest.raises(InvalidModel, match="cannot serve modelType"):
        store.update("smollm2", 1, {"model_type": ModelType.EMBEDDING})
    with pytest.raises(InvalidModel, match="cannot change model_name"):
        store.update("smollm2", 1, {"model_name": "renamed"})
    with pytest.raises(InvalidModel, match="unknown record field"):
        store.update("smollm2", 1, {"colour": "blue"})
    with pytest.raises(InvalidModel, match="endpointUrl"):
        store.update("smollm2", 1, {"endpoint_url": "not a url"})
    assert store.get("smollm2").version == 1  # nothing written

    # Switching the container adopts the type it implies (and the provider follows).
    switched = store.update("smollm2", 1, {"inference_container": InferenceContainer.INSTRUCTOR})
    assert (switched.model_type, switched.provider) == (ModelType.EMBEDDING, "ecs.embedding.instructor")


def test_status_change_clears_a_stale_reason(store: ModelStore) -> None:
    store.create(request(), status_reason="staging weights")
    record = store.update("smollm2", 1, {"status": ModelStatus.FAILED, "status_reason": "weights not found"})
    assert (record.status, record.status_reason) == (ModelStatus.FAILED, "weights not found")
    record = store.update("smollm2", 2, {"status": ModelStatus.IN_SERVICE})
    assert (record.status, record.status_reason) == (ModelStatus.IN_SERVICE, None)
    record = store.update("smollm2", 3, {"streaming": False})  # not a status change: reason untouched
    assert record.status is ModelStatus.IN_SERVICE


def test_set_status_is_atomic_and_bumps_the_version(store: ModelStore) -> None:
    store.create(request())
    failed = store.set_status("smollm2", ModelStatus.FAILED, "safetensors conversion failed")
    assert (failed.status, failed.status_reason, failed.version) == (
        ModelStatus.FAILED,
        "safetensors conversion failed",
        2,
    )
    ok = store.set_status("smollm2", ModelStatus.IN_SERVICE)
    assert (ok.status, ok.status_reason, ok.version) == (ModelStatus.IN_SERVICE, None, 3)
    assert store.get("smollm2") == ok
    assert "statusReason" not in raw_item("smollm2")
    # An update based on a version from before the status change is refused, not silently reverting it.
    with pytest.raises(ModelConflict):
        store.update("smollm2", 1, {"streaming": False})


def test_concurrent_set_status_and_updates_lose_nothing(store: ModelStore) -> None:
    store.create(request())
    n = 6

    def set_status(i: int) -> None:
        store.set_status("smollm2", ModelStatus.CREATING, f"step {i}")

    def add_key(i: int) -> None:
        store.modify("smollm2", lambda r: {"default_model_kwargs": {**r.default_model_kwargs, f"k{i}": i}})

    with ThreadPoolExecutor(2 * n) as pool:
        futures = [pool.submit(set_status, i) for i in range(n)] + [pool.submit(add_key, i) for i in range(n)]
        for future in futures:
            future.result()
    final = store.get("smollm2")
    assert final.version == 1 + 2 * n  # every write bumped the version exactly once
    assert {f"k{i}" for i in range(n)} <= set(final.default_model_kwargs)


def test_concurrent_versioned_updates_never_lose_one(store: ModelStore) -> None:
    """N threads each add a distinct key with read / update(version) / retry-on-409: every key survives."""
    store.create(request(defaultModelKwargs={}))
    n = 12
    barrier = threading.Barrier(n)
    conflicts = [0] * n

    def add_key(i: int) -> None:
        barrier.wait()
        while True:
            current = store.get("smollm2")
            kwargs = {**current.default_model_kwargs, f"writer{i}": i}
            try:
                store.update("smollm2", current.version, {"default_model_kwargs": kwargs})
                return
            except ModelConflict:
                conflicts[i] += 1

    threads = [threading.Thread(target=add_key, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    final = store.get("smollm2")
    assert final.default_model_kwargs == {f"writer{i}": i for i in range(n)}
    assert final.version == 1 + n
    assert sum(conflicts) > 0  # the race really happened and was refused, not serialized away


def test_delete(store: ModelStore) -> None:
    store.create(request())
    store.set_status("smollm2", ModelStatus.STOPPED)
    with pytest.raises(ModelConflict, match="version 2, not 1"):
        store.delete("smollm2", expected_version=1)
    deleted = store.delete("smollm2", expected_version=2)
    assert deleted.status is ModelStatus.STOPPED
    with pytest.raises(ModelNotFound):
        store.get("smollm2")
    with pytest.raises(ModelNotFound):
        store.delete("smollm2", expected_version=2)
    store.create(request())  # the name is free again
    assert store.get("smollm2").version == 1


def test_an_invalid_stored_item_is_skipped_by_list(store: ModelStore) -> None:
    store.create(request())
    aws.table(get_settings().models_table).put_item(Item={"modelId": "broken", "modelName": "broken"})
    assert [r.model_name for r in store.list()] == ["smollm2"]


def test_record_validation() -> None:
    base = ModelRecord(
        **request().record_fields(), status=ModelStatus.CREATING, created_at="t", updated_at="t", version=1
    ).wire()
    with pytest.raises(ValueError, match="modelId must equal modelName"):
        ModelRecord.model_validate({**base, "modelId": "other"})
    with pytest.raises(ValueError, match=r"provider must be 'ecs\.textgen\.tgi'"):
        ModelRecord.model_validate({**base, "provider": "ecs.embedding.tei"})
    public = ModelRecord.model_validate(base).public_wire()
    assert public["containerConfig"]["environment"] == {}  # "A" is not a serving limit
    assert public["containerConfig"]["image"].startswith("ghcr.io/")
