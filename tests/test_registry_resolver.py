"""The data plane's cached registry over a real store on moto: name forms, TTL, early reloads, failures, threads."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError

from chalicelib.registry.errors import ModelNotFound
from chalicelib.registry.models import CreateModelRequest, ModelRecord, ModelStatus
from chalicelib.registry.resolver import CachedRegistry, get_registry, reset_registry
from chalicelib.registry.store import ModelStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingStore(ModelStore):
    """The real store, counting table scans; `broken` points it at a table that does not exist."""

    def __init__(self) -> None:
        super().__init__()
        self.scans = 0
        self._lock = threading.Lock()

    def list(self) -> list[ModelRecord]:
        with self._lock:
            self.scans += 1
        return super().list()

    def break_table(self, broken: bool) -> None:
        self._table_name = "no-such-table" if broken else None


def register(store: ModelStore, name: str, container: str = "tgi", endpoint: str | None = None) -> ModelRecord:
    return store.create(
        CreateModelRequest.model_validate(
            {"modelName": name, "hfModelId": f"org/{name}", "inferenceContainer": container, "endpointUrl": endpoint}
        )
    )


@pytest.fixture
def store(aws_env: str) -> CountingStore:
    store = CountingStore()
    register(store, "smollm2-135m-instruct", endpoint="http://127.0.0.1:8081")
    register(store, "all-minilm-l6-v2", "tei", endpoint="http://127.0.0.1:8082")
    return store


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def registry(store: CountingStore, clock: Clock) -> CachedRegistry:
    return CachedRegistry(store, ttl_seconds=10, clock=clock, retry_seconds=1)


def test_resolves_the_plain_name_and_the_provider_form(registry: CachedRegistry, store: CountingStore) -> None:
    plain = registry.resolve("smollm2-135m-instruct")
    assert (plain.provider, plain.endpoint_url, plain.is_available) == (
        "ecs.textgen.tgi",
        "http://127.0.0.1:8081",
        True,
    )
    assert registry.resolve("smollm2-135m-instruct (ecs.textgen.tgi)") is plain
    assert registry.resolve("  smollm2-135m-instruct   ( ecs.textgen.tgi ) ") is plain
    embed = registry.resolve("all-minilm-l6-v2 (ecs.embedding.tei)")
    assert embed.model_name == "all-minilm-l6-v2"
    assert plain.display_name == "smollm2-135m-instruct (ecs.textgen.tgi)"
    assert [r.model_name for r in registry.list_models()] == ["all-minilm-l6-v2", "smollm2-135m-instruct"]
    assert store.scans == 1  # one load served every lookup above


def test_unknown_names_list_the_known_ones(registry: CachedRegistry) -> None:
    with pytest.raises(ModelNotFound) as caught:
        registry.resolve("gpt-4")
    assert caught.value.message == (
        "model 'gpt-4' is not registered; known models: all-minilm-l6-v2, smollm2-135m-instruct"
    )
    with pytest.raises(ModelNotFound, match="known models: all-minilm-l6-v2"):
        registry.resolve("smollm2-135m-instruct (ecs.embedding.tei)")  # right name, wrong provider


def test_within_the_ttl_lookups_do_no_io(registry: CachedRegistry, store: CountingStore, clock: Clock) -> None:
    registry.resolve("smollm2-135m-instruct")
    store.break_table(True)  # any read of the table would now fail
    for _ in range(1000):
        registry.resolve("smollm2-135m-instruct (ecs.textgen.tgi)")
    clock.now += 9.9
    assert registry.resolve("all-minilm-l6-v2").model_name == "all-minilm-l6-v2"
    assert store.scans == 1


def test_changes_show_after_the_ttl(registry: CachedRegistry, store: CountingStore, clock: Clock) -> None:
    before = registry.resolve("smollm2-135m-instruct")
    store.set_status("smollm2-135m-instruct", ModelStatus.STOPPED, "maintenance")
    store.delete("all-minilm-l6-v2")
    assert registry.resolve("smollm2-135m-instruct") is before  # cached
    assert registry.resolve("all-minilm-l6-v2").model_name == "all-minilm-l6-v2"
    clock.now += 10
    after = registry.resolve("smollm2-135m-instruct")
    assert (after.status, after.status_reason, after.is_available) == (ModelStatus.STOPPED, "maintenance", False)
    with pytest.raises(ModelNotFound, match=r"known models: smollm2-135m-instruct$"):
        registry.resolve("all-minilm-l6-v2")
    assert store.scans == 2


def test_a_new_model_is_found_without_waiting_and_misses_are_rate_limited(
    registry: CachedRegistry, store: CountingStore, clock: Clock
) -> None:
    registry.resolve("smollm2-135m-instruct")
    register(store, "fresh")
    with pytest.raises(ModelNotFound):
        registry.resolve("fresh")  # the snapshot is younger than retry_seconds: no reload
    assert store.scans == 1
    clock.now += 1  # well within the TTL
    assert registry.resolve("fresh").model_name == "fresh"  # a miss reloads early
    assert store.scans == 2
    for _ in range(50):  # unknown names cannot make every request scan the table
        with pytest.raises(ModelNotFound):
            registry.resolve("typo")
    assert store.scans == 2
    clock.now += 1
    with pytest.raises(ModelNotFound):
        registry.resolve("typo")
    assert store.scans == 3


def test_a_failed_reload_serves_the_previous_snapshot(
    registry: CachedRegistry, store: CountingStore, clock: Clock
) -> None:
    registry.resolve("smollm2-135m-instruct")
    store.break_table(True)
    clock.now += 10
    assert registry.resolve("smollm2-135m-instruct").endpoint_url == "http://127.0.0.1:8081"  # stale, still served
    assert store.scans == 2
    clock.now += 0.5
    registry.resolve("smollm2-135m-instruct")
    assert store.scans == 2  # no retry before retry_seconds
    store.break_table(False)
    store.set_status("smollm2-135m-instruct", ModelStatus.FAILED, "oom")
    clock.now += 0.5
    assert registry.resolve("smollm2-135m-instruct").status is ModelStatus.FAILED
    assert store.scans == 3


def test_the_first_load_failing_raises(aws_env: str, clock: Clock) -> None:
    store = CountingStore()
    store.break_table(True)
    registry = CachedRegistry(store, ttl_seconds=10, clock=clock)
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        registry.resolve("anything")
    store.break_table(False)
    register(store, "later")
    assert registry.resolve("later").model_name == "later"


def test_invalidate_reloads_on_the_next_lookup(registry: CachedRegistry, store: CountingStore) -> None:
    registry.resolve("smollm2-135m-instruct")
    store.set_status("smollm2-135m-instruct", ModelStatus.STOPPED)
    registry.invalidate()
    assert registry.resolve("smollm2-135m-instruct").status is ModelStatus.STOPPED
    assert store.scans == 2


def test_threads_share_one_reload_per_expiry(registry: CachedRegistry, store: CountingStore, clock: Clock) -> None:
    registry.resolve("smollm2-135m-instruct")
    clock.now += 10
    barrier = threading.Barrier(16)

    def lookups(i: int) -> set[str]:
        barrier.wait()
        names = ("smollm2-135m-instruct", "all-minilm-l6-v2 (ecs.embedding.tei)")
        return {registry.resolve(names[(i + j) % 2]).model_name for j in range(200)}

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lookups, range(16)))
    assert all(r == {"smollm2-135m-instruct", "all-minilm-l6-v2"} for r in results)
    assert store.scans == 2  # 3200 lookups after the expiry: exactly one reload


def test_ttl_zero_always_reads(store: CountingStore, clock: Clock) -> None:
    registry = CachedRegistry(store, ttl_seconds=0, clock=clock)
    registry.resolve("smollm2-135m-instruct")
    registry.resolve("smollm2-135m-instruct")
    assert store.scans == 2


def test_process_wide_registry_uses_the_settings_ttl(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.settings import get_settings

    monkeypatch.setenv("LISA_REGISTRY_CACHE_TTL_SECONDS", "3.5")
    get_settings.cache_clear()
    reset_registry()
    try:
        registry = get_registry()
        assert registry is get_registry()
        assert registry.ttl_seconds == 3.5
        register(ModelStore(), "m1")
        assert registry.resolve("m1 (ecs.textgen.tgi)").model_name == "m1"
    finally:
        reset_registry()
        monkeypatch.delenv("LISA_REGISTRY_CACHE_TTL_SECONDS")
        get_settings.cache_clear()
