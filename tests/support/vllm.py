"""The test session's one real vLLM engine, started by `python -m runner` as `make run` starts it.

Session fixture `vllm_stack`: a runner (own moto server) serving SmolLM2-135M-Instruct on vLLM's CPU build as
`ecs.textgen.vllm` (settings from `engineArgs` and an upstream `VLLM_*` name), and the same weights on the session's
TGI-protocol worker as `ecs.textgen.tgi` (its `endpointUrl`: nothing more to start), so a test compares the two
answers through one router. Starting it takes ~40-60 s (the engine is ready ~30 s after launch); every `vllm` test
shares it. A test that must break an engine starts its own (`vllm_model`, `runner_config`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen
from typing import Any

import pytest
import requests
import yaml

from tests.support.runner import running_runner
from workers.launch import vllm_python
from workers.prepare import SMOLLM2_ID

VLLM_MODEL = "smollm2-vllm"
TGI_MODEL = "smollm2-tgi"
GREEDY = {"max_new_tokens": 256, "temperature": 0}  # config.yaml's defaults for the local chat model


@dataclass(frozen=True)
class VllmStack:
    """A running `python -m runner`: its URL, admin API key, process and state folder."""

    url: str
    key: str
    process: Popen[str]
    state: Path

    def engine_url(self, model: str = VLLM_MODEL) -> str:
        """The model's engine, as the registry records it."""
        record = requests.get(f"{self.url}/models/{model}", headers={"Api-Key": self.key}, timeout=10).json()
        return str(record["endpointUrl"])


def vllm_model(name: str, **extra: Any) -> dict[str, Any]:
    """A config.yaml `ecsModels` entry serving SmolLM2 on vLLM (max model length 2048, 8 sequences at once)."""
    return {
        "modelName": name,
        "modelId": SMOLLM2_ID,
        "modelType": "textgen",
        "inferenceContainer": "vllm",
        "containerConfig": {
            "image": "vllm/vllm-openai:v0.32.0",
            # vLLM takes `required` or named tool choices (structured outputs then) only with auto tool choice on
            "engineArgs": {"maxModelLen": 2048, "enableAutoToolChoice": True, "toolCallParser": "hermes"},
            "environment": {"VLLM_MAX_NUM_SEQS": "8"},
        },
        "defaultModelKwargs": GREEDY,
        **extra,
    }


def runner_config(path: Path, models: list[dict[str, Any]]) -> Path:
    """A config.yaml serving `models` only (no RAG repository, so no embedding model is needed)."""
    config = {"deploymentName": "lisa-vllm", "s3BucketModels": "lisa-models", "ecsModels": models}
    path.write_text(yaml.safe_dump(config))
    return path


def require_vllm() -> None:
    """Fail (not skip) when .venv-vllm is missing: `make test` creates it."""
    if not vllm_python().is_file():
        pytest.fail(f"{vllm_python()} is missing: create .venv-vllm with `make vllm` (or deselect with -m 'not vllm')")


@contextmanager
def running_stack(base: Path, models: list[dict[str, Any]]) -> Iterator[VllmStack]:
    """`python -m runner` in `base` serving `models`; stopped (with every engine it started) afterwards."""
    require_vllm()
    config = runner_config(base / "config.yaml", models)
    state = base / "state"
    args = ("--config", str(config), "--state-dir", str(state))
    with running_runner(*args, log_dir=base, timeout=600) as (url, key, process):
        yield VllmStack(url, key, process, state)


@pytest.fixture(scope="session")
def vllm_stack(tmp_path_factory: pytest.TempPathFactory, tgi_worker: str) -> Iterator[VllmStack]:
    """The session's vLLM engine (`VLLM_MODEL`) and TGI worker (`TGI_MODEL`) behind one runner."""
    tgi = {
        "modelName": TGI_MODEL,
        "modelId": SMOLLM2_ID,
        "modelType": "textgen",
        "inferenceContainer": "tgi",
        "endpointUrl": tgi_worker,
        "containerConfig": {"image": "ghcr.io/huggingface/text-generation-inference:3.3.4"},
        "defaultModelKwargs": GREEDY,
    }
    with running_stack(tmp_path_factory.mktemp("vllm-stack"), [vllm_model(VLLM_MODEL), tgi]) as stack:
        yield stack
