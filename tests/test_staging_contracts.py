"""The staging states' JSON through the contracts: what a task returns is the JSON the next state reads."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from chalicelib.contracts.staging import ConvertedShard, Published, PublishInput, StagingPlan

PLAN = {
    "action": "stage",
    "hfModelId": "org/name",
    "modelIds": ["m"],
    "bucket": "models",
    "prefix": "org/name/",
    "workPrefix": "_staging/exec/",
    "executionName": "exec",
    "source": {"bucket": "models", "prefix": "_uploads/org/name/", "origin": None},
    "sourceFingerprint": "abc",
    "format": "convert",
    "shards": [{"name": "a.bin", "key": "k/a.bin", "size": 3, "kind": "convert", "target": "a.safetensors"}],
    "files": [{"name": "config.json", "key": "k/config.json", "size": 2}],
    "ignored": [],
}


def test_the_plan_round_trips_to_identical_json() -> None:
    wire = StagingPlan.model_validate(PLAN).wire()
    assert wire == PLAN
    assert list(wire) == list(PLAN)


def test_publish_reads_the_plan_and_the_shard_results() -> None:
    converted = {"name": "a.safetensors", "size": 3, "sha256": "00", "tensors": 1, "staged": True}
    task = PublishInput.model_validate({"plan": PLAN, "converted": [converted]})
    assert task.converted == [ConvertedShard.model_validate(converted)]
    assert Published(files=2, total_bytes=5, removed=0).wire() == {"files": 2, "bytes": 5, "removed": 0}


def test_a_plan_missing_a_field_is_refused_by_name() -> None:
    with pytest.raises(ValidationError, match="workPrefix"):
        StagingPlan.model_validate({k: v for k, v in PLAN.items() if k != "workPrefix"})
