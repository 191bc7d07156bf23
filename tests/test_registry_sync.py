"""Seeding the registry from config.yaml (the repo's own file) into DynamoDB on moto: idempotency and status rules."""

from __future__ import annotations

import copy
import threading
from typing import Any

import pytest

from chalicelib.config import LisaConfig, parse_config
from chalicelib.registry.errors import InvalidModel
from chalicelib.registry.models import CreateModelRequest, ModelStatus
from chalicelib.registry.store import ModelStore
from chalicelib.registry.sync import sync_models
from tests.support.configs import with_tgi_chat

CONFIG = with_tgi_chat()  # the sync is what these tests are about: the chat model as the TGI-protocol entry
TEXTGEN = "smollm2-135m-instruct"
EMBEDDER = "all-minilm-l6-v2"
INSTRUCTOR = "all-minilm-l6-v2-instructor"  # the same weights behind the instructor protocol


def config(edit: Any = None) -> LisaConfig:
    """The repo's config.yaml, optionally edited (`edit(data)` mutates a copy)."""
    data = copy.deepcopy(CONFIG)
    if edit:
        edit(data)
    return parse_config(data)


def model(data: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(m for m in data["ecsModels"] if m["modelName"] == name)
    return found


@pytest.fixture
def store(aws_env: str) -> ModelStore:
    return ModelStore()


def test_first_sync_creates_every_deployed_model_from_config(store: ModelStore) -> None:
    result = sync_models(config())
    assert result.to_dict() == {
        "created": [TEXTGEN, EMBEDDER, INSTRUCTOR],
        "updated": [],
        "unchanged": [],
        "orphaned": [],
        "pruned": [],
    }
    smol = store.get(TEXTGEN)
    assert (smol.hf_model_id, smol.provider, smol.streaming) == (
        "HuggingFaceTB/SmolLM2-135M-Instruct",
        "ecs.textgen.tgi",
        True,
    )
    assert smol.default_model_kwargs == {"max_new_tokens": 256, "temperature": 0}
    assert smol.container_config is not None
    assert smol.container_config.environment["MAX_TOTAL_TOKENS"] == "2048"
    assert (smol.instance_type, smol.source, smol.endpoint_url) == ("g5.xlarge", "config", None)
    assert smol.status is ModelStatus.CREATING  # no endpoint known yet
    assert smol.status_reason is not None
    assert "staged" in smol.status_reason
    minilm = store.get(EMBEDDER)
    assert (minilm.provider, minilm.streaming, minilm.status) == ("ecs.embedding.tei", False, ModelStatus.CREATING)
    instructor = store.get(INSTRUCTOR)
    assert (instructor.provider, instructor.hf_model_id) == ("ecs.embedding.instructor", minilm.hf_model_id)


def test_sync_is_idempotent(store: ModelStore) -> None:
    endpoints = {TEXTGEN: "http://127.0.0.1:8081", EMBEDDER: "http://127.0.0.1:8082/"}
    sync_models(config(), endpoints)
    before = store.list()
    again = sync_models(config(), endpoints)
    assert again.to_dict()["unchanged"] == [TEXTGEN, EMBEDDER, INSTRUCTOR]
    assert not again.changed
    assert store.list() == before  # nothing written: same versions, same timestamps


def test_a_known_endpoint_puts_a_model_in_service(store: ModelStore) -> None:
    sync_models(config())
    result = sync_models(config(), {TEXTGEN: "http://127.0.0.1:8081"})
    assert (result.updated, result.unchanged) == ([TEXTGEN], [EMBEDDER, INSTRUCTOR])
    smol = store.get(TEXTGEN)
    assert (smol.status, smol.status_reason, smol.endpoint_url) == (
        ModelStatus.IN_SERVICE,
        None,
        "http://127.0.0.1:8081",
    )
    assert smol.is_available
    assert store.get(EMBEDDER).status is ModelStatus.CREATING

    # A new model with an endpoint from the config entry itself starts in service.
    def fixed_endpoint(data: dict[str, Any]) -> None:
        model(data, EMBEDDER)["endpointUrl"] = "http://10.0.0.7:8080"

    store.delete(EMBEDDER)
    assert sync_models(config(fixed_endpoint), {TEXTGEN: "http://127.0.0.1:8081"}).created == [EMBEDDER]
    assert store.get(EMBEDDER).status is ModelStatus.IN_SERVICE
    # The runner's endpoints map takes precedence over the config entry.
    sync_models(config(fixed_endpoint), {EMBEDDER: "http://127.0.0.1:9999"})
    assert store.get(EMBEDDER).endpoint_url == "http://127.0.0.1:9999"


def test_runtime_status_survives_syncs_that_do_not_change_the_deployment(store: ModelStore) -> None:
    endpoints = {TEXTGEN: "http://127.0.0.1:8081"}
    sync_models(config(), endpoints)
    store.set_status(TEXTGEN, ModelStatus.FAILED, "worker crashed")
    assert sync_models(config(), endpoints).unchanged == [TEXTGEN, EMBEDDER, INSTRUCTOR]
    assert (store.get(TEXTGEN).status, store.get(TEXTGEN).status_reason) == (ModelStatus.FAILED, "worker crashed")

    def new_kwargs(data: dict[str, Any]) -> None:
        model(data, TEXTGEN)["defaultModelKwargs"] = {"max_new_tokens": 128, "temperature": 0.7}
        model(data, TEXTGEN)["streaming"] = False

    result = sync_models(config(new_kwargs), endpoints)
    assert result.updated == [TEXTGEN]
    smol = store.get(TEXTGEN)
    assert smol.default_model_kwargs == {"max_new_tokens": 128, "temperature": 0.7}
    assert smol.streaming is False
    assert (smol.status, smol.status_reason) == (ModelStatus.FAILED, "worker crashed")  # serving change only


def test_a_deployment_change_decides_the_status_again(store: ModelStore) -> None:
    sync_models(config())
    store.set_status(TEXTGEN, ModelStatus.IN_SERVICE)  # e.g. staging finished and the service came up

    def new_image(data: dict[str, Any]) -> None:
        model(data, TEXTGEN)["containerConfig"]["image"] = "ghcr.io/huggingface/text-generation-inference:3.4.0"
        model(data, TEXTGEN)["instanceType"] = "g5.2xlarge"

    result = sync_models(config(new_image))
    assert result.updated == [TEXTGEN]
    smol = store.get(TEXTGEN)
    assert smol.status is ModelStatus.CREATING
    assert smol.status_reason == "config.yaml changed containerConfig, instanceType; waiting for deployment"
    assert smol.container_config is not None
    assert smol.container_config.image.endswith(":3.4.0")
    assert sync_models(config(new_image)).unchanged == [TEXTGEN, EMBEDDER, INSTRUCTOR]


def test_models_not_deployed_are_orphaned_or_pruned_and_api_models_are_left_alone(store: ModelStore) -> None:
    sync_models(config())
    store.create(CreateModelRequest(model_name="byo", hf_model_id="org/byo", inference_container="tgi"))

    def undeploy(data: dict[str, Any]) -> None:
        model(data, EMBEDDER)["deploy"] = False
        data["ragRepositories"] = []

    result = sync_models(config(undeploy))
    assert (result.unchanged, result.orphaned, result.pruned) == ([TEXTGEN, INSTRUCTOR], [EMBEDDER], [])
    assert store.get(EMBEDDER).status is ModelStatus.CREATING  # orphaned: untouched

    result = sync_models(config(undeploy), prune=True)
    assert (result.orphaned, result.pruned) == ([], [EMBEDDER])
    assert [r.model_name for r in store.list()] == [INSTRUCTOR, "byo", TEXTGEN]  # the API-created model stays
    assert sync_models(config(undeploy), prune=True).pruned == []


def test_config_takes_over_an_api_created_model_of_the_same_name(store: ModelStore) -> None:
    store.create(CreateModelRequest(model_name=TEXTGEN, hf_model_id="someone/else", inference_container="tgi"))
    result = sync_models(config())
    assert (result.created, result.updated) == ([EMBEDDER, INSTRUCTOR], [TEXTGEN])
    smol = store.get(TEXTGEN)
    assert (smol.source, smol.hf_model_id, smol.version) == ("config", "HuggingFaceTB/SmolLM2-135M-Instruct", 2)


def test_bad_input_is_refused_before_anything_is_written(store: ModelStore) -> None:
    def bad_endpoint(data: dict[str, Any]) -> None:
        model(data, EMBEDDER)["endpointUrl"] = "localhost:8080"

    with pytest.raises(InvalidModel, match=r"ecsModels 'all-minilm-l6-v2': endpointUrl: .*http\(s\) URL"):
        sync_models(config(bad_endpoint))
    with pytest.raises(InvalidModel, match="endpoints given for models not deployed by config: typo"):
        sync_models(config(), {"typo": "http://127.0.0.1:1"})
    assert store.list() == []


def test_sync_racing_status_writes_loses_neither(store: ModelStore) -> None:
    sync_models(config())
    start = store.get(TEXTGEN).version
    n = 8

    def new_kwargs(data: dict[str, Any]) -> None:
        model(data, TEXTGEN)["defaultModelKwargs"] = {"max_new_tokens": 32}

    barrier = threading.Barrier(n + 1)
    results: list[Any] = []

    def syncer() -> None:
        barrier.wait()
        results.append(sync_models(config(new_kwargs)))

    def stager(i: int) -> None:
        barrier.wait()
        store.set_status(TEXTGEN, ModelStatus.CREATING, f"staging step {i}")

    threads = [threading.Thread(target=syncer)] + [threading.Thread(target=stager, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results[0].updated == [TEXTGEN]
    final = store.get(TEXTGEN)
    assert final.default_model_kwargs == {"max_new_tokens": 32}
    assert final.status_reason is not None
    assert final.status_reason.startswith("staging step")  # the sync did not overwrite a status
    assert final.version == start + n + 1
