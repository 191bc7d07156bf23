"""The repo's config.yaml for tests that start or register its models.

The default serves its chat model on vLLM (`make run`). Tests of everything but the engine use the same config with
that model on the TGI-protocol CPU worker instead (`with_tgi_chat`: the config's own `-tgi` entry, under the default
model's name), so they share the session's TGI worker rather than each starting a vLLM (~30 s). The vLLM tests share
the session's one engine (tests/support/vllm.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from chalicelib.config import LisaConfig, parse_config

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = ROOT / "config.yaml"
CHAT_MODEL = "smollm2-135m-instruct"
TGI_SUFFIX = "-tgi"


def with_tgi_chat() -> dict[str, Any]:
    """config.yaml as data, its chat model served by the TGI-protocol worker (the `-tgi` entry, renamed)."""
    data: dict[str, Any] = yaml.safe_load(DEFAULT_CONFIG.read_text())
    models = data["ecsModels"]
    tgi = next(m for m in models if m["modelName"] == CHAT_MODEL + TGI_SUFFIX)
    chat = next(i for i, m in enumerate(models) if m["modelName"] == CHAT_MODEL)
    models[chat] = {**tgi, "modelName": CHAT_MODEL, "deploy": True}
    models.remove(tgi)
    return data


def tgi_config() -> LisaConfig:
    """`with_tgi_chat()` validated."""
    return parse_config(with_tgi_chat())


def write_tgi_config(path: Path) -> Path:
    """`with_tgi_chat()` written to `path` (for `python -m runner --config` / `StackOptions.config_path`)."""
    path.write_text(yaml.safe_dump(with_tgi_chat()))
    return path
