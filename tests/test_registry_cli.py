"""`lisa models sync` and `lisa models list` through Typer's CliRunner against the moto server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chalicelib import aws
from chalicelib.registry.models import ModelStatus
from chalicelib.registry.store import ModelStore
from cli.main import app
from workers.launch import free_port

CONFIG = Path(__file__).resolve().parents[1] / "config.yaml"
runner = CliRunner()


def lisa(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["models", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def store(aws_env: str) -> ModelStore:
    return ModelStore()


def test_sync_prints_what_it_did_and_is_idempotent(store: ModelStore) -> None:
    code, out, err = lisa("sync", "--config", str(CONFIG))
    assert code == 0, err
    assert "created: smollm2-135m-instruct, all-minilm-l6-v2, all-minilm-l6-v2-instructor" in out
    assert "3 created, 0 updated, 0 unchanged" in out
    assert [r.model_name for r in store.list()] == [
        "all-minilm-l6-v2",
        "all-minilm-l6-v2-instructor",
        "smollm2-135m-instruct",
    ]

    code, out, _ = lisa("sync", "-c", str(CONFIG), "--json")
    assert code == 0
    assert json.loads(out) == {
        "created": [],
        "updated": [],
        "unchanged": ["smollm2-135m-instruct", "all-minilm-l6-v2", "all-minilm-l6-v2-instructor"],
        "orphaned": [],
        "pruned": [],
    }

    code, out, _ = lisa("sync", "-c", str(CONFIG), "--endpoint", "smollm2-135m-instruct=http://127.0.0.1:8081")
    assert code == 0
    assert "updated: smollm2-135m-instruct" in out
    assert "0 created, 1 updated, 2 unchanged" in out
    assert store.get("smollm2-135m-instruct").status is ModelStatus.IN_SERVICE


def test_sync_reports_and_prunes_orphans(store: ModelStore, tmp_path: Path) -> None:
    assert lisa("sync", "-c", str(CONFIG))[0] == 0
    text = CONFIG.read_text()
    smaller = tmp_path / "config.yaml"
    smaller.write_text(text.replace("modelName: all-minilm-l6-v2\n", "modelName: all-minilm-l6-v2\n    deploy: false\n")
                       .split("ragRepositories:")[0])  # fmt: skip
    code, out, err = lisa("sync", "-c", str(smaller))
    assert code == 0
    assert "orphaned: all-minilm-l6-v2" in out
    assert "--prune" in err
    code, out, _ = lisa("sync", "-c", str(smaller), "--prune")
    assert "pruned: all-minilm-l6-v2" in out
    assert [r.model_name for r in store.list()] == ["all-minilm-l6-v2-instructor", "smollm2-135m-instruct"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sync", "-c", "/nonexistent/config.yaml"], "no such file"),
        (["sync", "-c", str(CONFIG), "-e", "no-equals-sign"], "--endpoint must be NAME=URL"),
        (["sync", "-c", str(CONFIG), "-e", "ghost=http://127.0.0.1:1"], "not deployed by config: ghost"),
        (["sync", "-c", str(CONFIG), "-e", "all-minilm-l6-v2=ftp://x"], "endpointUrl"),
    ],
)
def test_sync_bad_input_exits_2_with_a_reason(store: ModelStore, args: list[str], message: str) -> None:
    code, _, err = lisa(*args)
    assert code == 2
    assert message in " ".join(err.split())
    assert store.list() == []


def test_sync_names_the_bad_config_key(store: ModelStore, tmp_path: Path) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text(CONFIG.read_text().replace("modelId: HuggingFaceTB/SmolLM2-135M-Instruct", "modelId: nope"))
    code, _, err = lisa("sync", "-c", str(bad))
    assert code == 2
    assert "ecsModels.0.modelId" in err


def test_list_shows_every_model(store: ModelStore) -> None:
    code, out, _ = lisa("list")
    assert (code, "0 model(s)" in out) == (0, True)
    lisa("sync", "-c", str(CONFIG), "-e", "all-minilm-l6-v2=http://127.0.0.1:8082")
    store.set_status("smollm2-135m-instruct", ModelStatus.FAILED, "weights missing")
    code, out, _ = lisa("list")
    assert code == 0
    assert "3 model(s)" in out
    lines = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 3}
    assert "ecs.embedding.tei" in lines["all-minilm-l6-v2"]
    assert "InService" in lines["all-minilm-l6-v2"]
    assert "http://127.0.0.1:8082" in lines["all-minilm-l6-v2"]
    assert "Failed (weights missing)" in lines["smollm2-135m-instruct"]
    code, out, _ = lisa("list", "--json")
    listed = json.loads(out)
    assert [(m["modelName"], m["status"], m["version"]) for m in listed] == [
        ("all-minilm-l6-v2", "InService", 1),
        ("all-minilm-l6-v2-instructor", "Creating", 1),
        ("smollm2-135m-instruct", "Failed", 2),
    ]
    assert listed[2]["containerConfig"]["engineArgs"]["maxModelLen"] == 2048  # the operator sees it all


def test_unreachable_aws_is_a_clear_error(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("LISA_AWS_ENDPOINT_URL", dead)
    aws.reset()
    try:
        code, _, err = lisa("list")
    finally:
        monkeypatch.setenv("LISA_AWS_ENDPOINT_URL", aws_env)
        aws.reset()
    assert code == 1
    assert f"models table 'lisa-models' at {dead}" in " ".join(err.split())


def test_create_stop_start_delete_a_model_registered_by_url(store: ModelStore, tmp_path: Path) -> None:
    spec = tmp_path / "byo.yaml"
    spec.write_text("modelName: byo\nhfModelId: org/byo\ninferenceContainer: vllm\nendpointUrl: http://10.0.0.9:8000\n")
    assert lisa("create", str(spec))[:2] == (0, "byo: InService\n")
    assert lisa("stop", "byo")[:2] == (0, "byo: Stopped\n")
    assert store.get("byo").status_reason == "stopped by an administrator"
    assert lisa("start", "byo")[:2] == (0, "byo: InService\n")
    assert lisa("delete", "byo")[:2] == (0, "byo: deleted\n")
    code, _, err = lisa("stop", "byo")
    assert (code, "model 'byo' is not registered" in err) == (2, True), err


def test_create_refuses_a_bad_spec_and_a_hosted_model_without_the_workflow(
    store: ModelStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LISA_MODEL_LIFECYCLE_STATE_MACHINE_ARN", raising=False)
    aws.reset()
    bad = tmp_path / "bad.json"
    bad.write_text('{"modelName": "x", "hfModelId": "org/x", "inferenceContainer": "llamacpp"}')
    code, _, err = lisa("create", str(bad))
    assert (code, "inferenceContainer" in err) == (2, True), err
    hosted = tmp_path / "hosted.json"
    body = {"modelName": "h", "hfModelId": "org/h", "inferenceContainer": "tgi", "containerConfig": {"image": "tgi"}}
    hosted.write_text(json.dumps(body))
    code, _, err = lisa("create", str(hosted))
    assert (code, "LISA_MODEL_LIFECYCLE_STATE_MACHINE_ARN is not set" in err) == (2, True), err
    assert store.list() == []  # refused before anything was written
