"""`workers.prepare`: model folders laid out like the weights bucket, idempotent and crash-safe."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from workers.launch import worker_spec
from workers.prepare import (
    DEFAULT_OUT,
    LOCAL_MODELS,
    MINILM_ID,
    SMOLLM2_ID,
    LocalModel,
    PrepareError,
    ensure_local_models,
    is_complete,
    model_dir,
)

MINILM = next(m for m in LOCAL_MODELS if m.model_id == MINILM_ID)


def test_minilm_is_materialized_with_a_manifest(tmp_path: Path) -> None:
    folders = ensure_local_models(tmp_path, models=(MINILM,))
    folder = folders[MINILM_ID]
    assert folder == tmp_path / "sentence-transformers" / "all-MiniLM-L6-v2"
    for name in MINILM.required:
        assert (folder / name).is_file()
    manifest = json.loads((tmp_path / ".complete" / f"{MINILM_ID}.json").read_text())
    assert manifest["files"]["model.safetensors"] == (folder / "model.safetensors").stat().st_size
    assert is_complete(tmp_path, MINILM)


def test_second_run_keeps_a_complete_folder(tmp_path: Path) -> None:
    ensure_local_models(tmp_path, models=(MINILM,))
    weights = model_dir(tmp_path, MINILM_ID) / "model.safetensors"
    inode = weights.stat().st_ino
    ensure_local_models(tmp_path, models=(MINILM,))
    assert weights.stat().st_ino == inode  # not rebuilt


def test_a_damaged_folder_is_rebuilt(tmp_path: Path) -> None:
    ensure_local_models(tmp_path, models=(MINILM,))
    tokenizer = model_dir(tmp_path, MINILM_ID) / "tokenizer.json"
    original = tokenizer.stat().st_size
    tokenizer.write_text("{}")
    assert not is_complete(tmp_path, MINILM)
    ensure_local_models(tmp_path, models=(MINILM,))
    assert tokenizer.stat().st_size == original
    assert is_complete(tmp_path, MINILM)


def test_a_crashed_build_leaves_nothing_that_looks_valid(tmp_path: Path) -> None:
    def half_then_crash(target: Path, _console: object) -> None:
        (target / "config.json").write_text("{}")
        raise PrepareError("conversion failed half-way")

    broken = LocalModel("acme/broken", "textgen", 1, ("config.json", "model.safetensors"), half_then_crash)
    with pytest.raises(PrepareError, match="half-way"):
        ensure_local_models(tmp_path, models=(broken,))
    assert not model_dir(tmp_path, "acme/broken").exists()
    assert not is_complete(tmp_path, broken)
    assert list((tmp_path / "acme").iterdir()) == []  # no temp folder left behind


def test_a_build_missing_required_files_is_refused(tmp_path: Path) -> None:
    incomplete = LocalModel("acme/thin", "embedding", 1, ("model.safetensors",), lambda t, c: None)
    with pytest.raises(PrepareError, match=r"did not produce model\.safetensors"):
        ensure_local_models(tmp_path, models=(incomplete,))
    assert not model_dir(tmp_path, "acme/thin").exists()


def test_command_line_lists_the_prepared_models() -> None:
    ensure_local_models(DEFAULT_OUT)  # the shared folder the workers use (a no-op once built)
    result = subprocess.run(
        [sys.executable, "-m", "workers.prepare", "--out", str(DEFAULT_OUT)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    assert f"{SMOLLM2_ID} -> {DEFAULT_OUT / SMOLLM2_ID}" in result.stdout
    assert f"{MINILM_ID} -> {DEFAULT_OUT / MINILM_ID}" in result.stdout


def test_smollm2_folder_is_a_plain_hf_model_with_its_chat_template() -> None:
    folder = ensure_local_models(DEFAULT_OUT)[SMOLLM2_ID]
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert "<|im_start|>" in (folder / "chat_template.jinja").read_text()
    with (folder / "model.safetensors").open("rb") as weights:
        header = json.loads(weights.read(int.from_bytes(weights.read(8), "little")))
    assert {v["dtype"] for k, v in header.items() if k != "__metadata__"} == {"BF16"}


def test_worker_spec_maps_containers_to_workers(tmp_path: Path) -> None:
    spec = worker_spec("instructor", MINILM_ID, tmp_path, 9999, environment={"MAX_CONCURRENT_REQUESTS": 7})
    assert spec.module == "workers.tei"
    assert spec.args[-2:] == ["--protocol", "instructor"]
    assert spec.env["MAX_CONCURRENT_REQUESTS"] == "7"
    assert spec.health_url == "http://127.0.0.1:9999/health"
    assert worker_spec("tgi", SMOLLM2_ID, tmp_path, 1).module == "workers.tgi"
    with pytest.raises(ValueError, match="no local worker"):
        worker_spec("vllm", SMOLLM2_ID, tmp_path, 1)
