"""Weight staging through the real ASL (stepfunctions/staging.json) on moto's Step Functions interpreter, with the
Lambda tasks answered in-process by the Chalice functions (runner/lambda_shim.py), S3 and DynamoDB on moto."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from chalicelib import aws
from chalicelib.registry.models import CreateModelRequest, ModelStatus
from chalicelib.registry.store import ModelStore
from chalicelib.settings import get_settings
from chalicelib.staging.service import execution_status, read_manifest, start_staging, wait_for
from runner.stepfunctions_local import LocalStepFunctions, stage_local_folder
from tests.support.staging import TINY_MODEL, tiny_model

MODEL = TINY_MODEL


# -- fixtures (the state machine and the tiny model: tests/support/staging.py) ---------------------------
@pytest.fixture
def registered() -> str:
    """A registry record whose weights are MODEL (status Creating until staged)."""
    request = CreateModelRequest.model_validate({"modelName": "tiny", "hfModelId": MODEL, "inferenceContainer": "tgi"})
    return ModelStore().create(request).model_id


def _objects(prefix: str) -> dict[str, bytes]:
    s3, bucket = aws.client("s3"), get_settings().models_bucket
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
    return {key[len(prefix) :]: s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}


def _download(prefix: str, to: Path) -> dict[str, bytes]:
    files = _objects(prefix)
    for name, body in files.items():
        (to / name).parent.mkdir(parents=True, exist_ok=True)
        (to / name).write_bytes(body)
    return files


def _logits(model: Any) -> torch.Tensor:
    ids = torch.tensor([[1, 5, 17, 42, 99, 3, 64, 127]])
    with torch.no_grad():
        return model(input_ids=ids).logits


def _states(execution_arn: str) -> list[str]:
    events = aws.client("stepfunctions").get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
    return [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]


def _scratch() -> list[str]:
    """Scratch files left under `_staging/` (a failed execution's `<name>.failed.json` record aside)."""
    return [name for name in _objects("_staging/") if not name.endswith(".failed.json")]


def _nothing_left(sfn: LocalStepFunctions, model: str = MODEL) -> None:
    """No model prefix (so nothing that could pass for staged weights) and no scratch files, once the tasks
    still running when the execution failed (other Map iterations) have finished."""
    assert sfn.wait_idle()
    assert _objects(f"{model}/") == {}
    assert _scratch() == []


# -- the conversion path ------------------------------------------------------------------------------------
def test_sharded_pytorch_bins_are_converted_and_serve_the_same_logits(
    sfn: LocalStepFunctions, tiny: tuple[Any, Path], registered: str, tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM

    model, folder = tiny
    seen: list[str] = []
    status = stage_local_folder(MODEL, folder, on_progress=lambda s: seen.append(s.current_step or ""))
    assert status.status == "SUCCEEDED", (status.error, status.reason)
    assert (status.action, status.shards_total, status.shards_done) == ("stage", 3, 3)
    assert "ConvertShard" in _states(status.execution_arn)

    files = _download(f"{MODEL}/", tmp_path)
    assert sorted(files) == sorted(
        [
            "config.json",
            "tokenizer_config.json",
            "model-00001-of-00003.safetensors",
            "model-00002-of-00003.safetensors",
            "model-00003-of-00003.safetensors",
            "model.safetensors.index.json",
            "lisa-manifest.json",
        ]
    )
    assert _objects("_staging/") == {}  # the execution's scratch space is gone

    manifest = json.loads(files["lisa-manifest.json"])
    assert manifest == status.manifest
    assert {e["name"] for e in manifest["files"]} == set(files) - {"lisa-manifest.json"}
    for entry in manifest["files"]:
        body = files[entry["name"]]
        assert (entry["size"], entry["sha256"]) == (len(body), hashlib.sha256(body).hexdigest())
    index = json.loads(files["model.safetensors.index.json"])
    assert set(index["weight_map"]) == set(model.state_dict())

    # bit for bit: every tensor of every shard, including the tied lm_head stored on its own
    from safetensors.torch import load_file

    converted: dict[str, torch.Tensor] = {}
    for name in files:
        if name.endswith(".safetensors"):
            converted |= load_file(tmp_path / name)
    original = model.state_dict()
    assert set(converted) == set(original)
    for name, tensor in original.items():
        assert converted[name].dtype == tensor.dtype, name
        assert torch.equal(converted[name], tensor), name

    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert torch.equal(_logits(loaded), _logits(model))

    record = ModelStore().get(registered)
    assert (record.status, record.status_reason) == (ModelStatus.IN_SERVICE, None)


def test_rerun_on_a_staged_model_does_no_work(sfn: LocalStepFunctions, tiny: tuple[Any, Path], registered: str) -> None:
    _, folder = tiny
    first = stage_local_folder(MODEL, folder)
    assert first.status == "SUCCEEDED"
    before = _objects(f"{MODEL}/")

    again = stage_local_folder(MODEL, folder)
    assert again.status == "SUCCEEDED", again.reason
    assert again.action == "skip"
    states = _states(again.execution_arn)
    assert "ConvertShards" not in states
    assert "Publish" not in states
    assert _objects(f"{MODEL}/") == before  # same manifest (same stagedAt), same files
    assert ModelStore().get(registered).status == ModelStatus.IN_SERVICE

    forced = stage_local_folder(MODEL, folder, force=True)
    assert (forced.status, forced.action) == ("SUCCEEDED", "stage")


def test_a_model_already_in_safetensors_is_only_verified(sfn: LocalStepFunctions, tmp_path: Path) -> None:
    model = tiny_model()
    folder = tmp_path / "src" / "lisa-test" / "tiny-safe"
    model.save_pretrained(folder, max_shard_size="20KB")
    local = {p.name: p.read_bytes() for p in folder.iterdir()}
    shards = sorted(n for n in local if n.endswith(".safetensors"))
    assert len(shards) >= 2

    status = stage_local_folder("lisa-test/tiny-safe", folder)
    assert status.status == "SUCCEEDED", status.reason
    assert "ConvertShard" in _states(status.execution_arn)
    manifest = read_manifest("lisa-test/tiny-safe")
    assert manifest is not None
    assert manifest["converted"] is False
    staged = _objects("lisa-test/tiny-safe/")
    for shard in shards:
        assert staged[shard] == local[shard]  # the very same bytes: verified, not rewritten


def test_in_place_staging_of_a_safetensors_folder(sfn: LocalStepFunctions, tmp_path: Path) -> None:
    """How the local runner stages its default model: one copy of the weights in the bucket, idempotent."""
    folder = tmp_path / "m"
    tiny_model().save_pretrained(folder)
    first = stage_local_folder("lisa-test/in-place", folder, in_place=True, registry_ids=())
    assert first.status == "SUCCEEDED", first.reason
    assert _objects("_uploads/") == {}
    assert set(_objects("lisa-test/in-place/")) == {p.name for p in folder.iterdir()} | {"lisa-manifest.json"}
    again = stage_local_folder("lisa-test/in-place", folder, in_place=True, registry_ids=())
    assert (again.status, again.action) == ("SUCCEEDED", "skip")


# -- failures: each recorded, nothing half-written left looking valid ---------------------------------------
def _failed(status: Any, error: str, *words: str) -> None:
    assert status.status == "FAILED"
    assert status.error == error, (status.error, status.reason)
    for word in words:
        assert word in (status.reason or ""), status.reason
    assert status.current_step == "StagingFailed"


def test_missing_folder(sfn: LocalStepFunctions, registered: str, tmp_path: Path) -> None:
    status = stage_local_folder(MODEL, tmp_path / "nope")
    _failed(status, "SourceNotFound", "missing")
    assert status.failed_step == "Resolve"
    record = ModelStore().get(registered)
    assert record.status == ModelStatus.FAILED
    assert record.status_reason
    assert "SourceNotFound" in record.status_reason
    _nothing_left(sfn)


def test_corrupt_shard(sfn: LocalStepFunctions, tiny: tuple[Any, Path], registered: str, tmp_path: Path) -> None:
    folder = tmp_path / MODEL
    shutil.copytree(tiny[1], folder)
    shard = folder / "pytorch_model-00002-of-00003.bin"
    data = bytearray(shard.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(16)  # damaged tensor bytes, same size
    shard.write_bytes(bytes(data))

    status = stage_local_folder(MODEL, folder)
    _failed(status, "CorruptShard", "pytorch_model-00002-of-00003.bin")
    assert status.failed_step == "ConvertShard"
    assert ModelStore().get(registered).status == ModelStatus.FAILED
    _nothing_left(sfn)


def test_conversion_without_torch_fails_naming_the_staging_image(
    sfn: LocalStepFunctions, tiny: tuple[Any, Path], registered: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A conversion Lambda deployed as a plain zip (no torch): a recorded failure that says what to deploy."""
    monkeypatch.setitem(sys.modules, "torch", None)  # as if not installed: `import torch` fails, find_spec is None
    status = stage_local_folder(MODEL, tiny[1])
    _failed(status, "MissingDependency", "torch", "lambda_images/staging/Dockerfile")
    assert status.failed_step == "ConvertShard"
    assert ModelStore().get(registered).status == ModelStatus.FAILED
    _nothing_left(sfn)


def test_corrupt_shard_keeps_the_previous_staging_valid(
    sfn: LocalStepFunctions, tiny: tuple[Any, Path], tmp_path: Path
) -> None:
    assert stage_local_folder(MODEL, tiny[1]).status == "SUCCEEDED"
    before = _objects(f"{MODEL}/")
    folder = tmp_path / MODEL
    shutil.copytree(tiny[1], folder)
    (folder / "pytorch_model-00003-of-00003.bin").write_bytes(b"not a checkpoint" * 64)
    _failed(stage_local_folder(MODEL, folder), "CorruptShard", "pytorch_model-00003-of-00003.bin")
    assert sfn.wait_idle()
    assert _objects(f"{MODEL}/") == before  # the earlier complete staging is untouched
    assert _scratch() == []


def test_unsupported_weights_format(sfn: LocalStepFunctions, tmp_path: Path) -> None:
    folder = tmp_path / "tf"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "tf_model.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    _failed(stage_local_folder("lisa-test/tf-only", folder), "UnsupportedFile", "tf_model.h5", "TensorFlow")
    _nothing_left(sfn, "lisa-test/tf-only")


def test_pickled_objects_are_never_unpickled(sfn: LocalStepFunctions, tmp_path: Path) -> None:
    folder = tmp_path / "pickle"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    torch.save({"weight": torch.ones(2), "optimizer": {"step": 3}}, folder / "pytorch_model.bin")
    torch.save(Path("x"), folder / "pytorch_model.bin")  # a Python object, not a state dict
    _failed(stage_local_folder("lisa-test/pickled", folder), "UnsupportedFile", "pytorch_model.bin", "state dict")
    _nothing_left(sfn, "lisa-test/pickled")


@pytest.mark.parametrize("bad", ["tiny-llama", "a/b/c", "../etc", "org/", "org/na me"])
def test_name_that_is_not_org_slash_name(sfn: LocalStepFunctions, tiny: tuple[Any, Path], bad: str) -> None:
    status = stage_local_folder(bad, tiny[1], registry_ids=())
    _failed(status, "InvalidModelName", "org/name")
    assert status.failed_step == "Resolve"
    assert sfn.wait_idle()
    assert [key for key in _objects("") if not key.endswith(".failed.json")] == []  # nothing uploaded or written


def test_hub_source_without_a_hub_is_a_recorded_failure(
    sfn: LocalStepFunctions, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    from chalicelib.staging.models import HubSource

    # huggingface_hub reads HF_HUB_OFFLINE once, on import: patch the value it consults.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    started = start_staging(MODEL, source=HubSource(kind="hub"))
    status = wait_for(started.execution_arn, timeout_seconds=120)
    _failed(status, "SourceNotFound", "hub")
    assert status.failed_step == "FetchFromHub"
    assert execution_status(started.execution_arn).reason == status.reason


@pytest.mark.parametrize("failure", ["connect", "503"])
def test_hub_connection_errors_and_5xx_are_transient(
    aws_env: str, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    """huggingface_hub's HTTP client raises its own errors (not OSError): they are retried, not recorded."""
    import huggingface_hub
    from huggingface_hub.errors import HfHubHTTPError

    from chalicelib.staging.errors import TransientStagingError
    from chalicelib.staging.hub import fetch_from_hub
    from chalicelib.staging.hub import hub_transport_errors as _hub_transport_errors

    def broken(self: object, *args: object, **kwargs: object) -> list[str]:
        if failure == "connect":
            raise _hub_transport_errors()[0]("connection refused")
        response = type("Response", (), {"status_code": 503, "headers": {}, "request": None})()
        raise HfHubHTTPError("503 Service Unavailable", response=response)  # type: ignore[arg-type]

    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", broken)
    event = {"request": {"hfModelId": MODEL, "source": {"kind": "hub"}}}
    with pytest.raises(TransientStagingError, match="hub download failed"):
        fetch_from_hub(event)


def test_a_tensor_that_differs_after_conversion_is_a_corrupt_shard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bit-for-bit check after writing safetensors: a mismatch is CorruptShard naming the tensor."""
    import torch

    from chalicelib.staging import convert
    from chalicelib.staging.errors import CorruptShard

    a = torch.arange(6, dtype=torch.float32)
    flipped = a.clone()
    flipped.view(torch.int32)[2] ^= 1  # one bit
    assert convert._same_bits(a, a.clone())
    assert not convert._same_bits(a, flipped)
    assert not convert._same_bits(a, a.to(torch.float16))

    source = tmp_path / "pytorch_model.bin"
    torch.save({"w": a}, source)
    monkeypatch.setattr(convert, "_same_bits", lambda original, copy: False)
    with pytest.raises(CorruptShard, match="tensor 'w' differs after conversion"):
        convert.convert_to_safetensors(source, tmp_path / "model.safetensors")
