"""Session fixtures for weight staging: the staging state machine on the moto server (moto's Step Functions
interpreter, Lambda tasks answered in-process) and a tiny causal LM saved as sharded PyTorch .bin files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.stepfunctions_local import LocalStepFunctions

TINY_MODEL = "lisa-test/tiny-llama"


@pytest.fixture(scope="session")
def staging_sfn(moto_server: str) -> Iterator[LocalStepFunctions]:
    """The Lambda shim and moto's interpreter, for the whole session (MOTO_PORT → the shim)."""
    sfn = LocalStepFunctions(moto_server).start()
    yield sfn
    sfn.stop()


@pytest.fixture
def sfn(aws_env: str, staging_sfn: LocalStepFunctions) -> LocalStepFunctions:
    """A clean moto with the staging state machine deployed (a moto reset forgets it)."""
    staging_sfn.deploy()
    return staging_sfn


def tiny_model() -> Any:
    """A tiny random Llama (tied embeddings), the same weights every call."""
    # torch and transformers load lazily: this module is a plugin of every test run, and tests/unit must start fast.
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=128,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=True,
    )
    torch.manual_seed(1234)
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """A tiny random causal LM and a folder `<models>/lisa-test/tiny-llama` with its weights as 3
    `pytorch_model-*.bin` shards plus an index; the tied embedding and lm_head share storage inside shard 1."""
    import torch

    model = tiny_model()
    folder = tmp_path_factory.mktemp("models") / TINY_MODEL
    folder.mkdir(parents=True)
    model.config.save_pretrained(folder)
    (folder / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 64}))
    state = model.state_dict()
    assert state["lm_head.weight"].data_ptr() == state["model.embed_tokens.weight"].data_ptr()
    names = list(state)
    groups = [
        [n for n in names if n in ("lm_head.weight", "model.embed_tokens.weight", "model.norm.weight")],
        [n for n in names if n.startswith("model.layers.0.")],
        [n for n in names if n.startswith("model.layers.1.")],
    ]
    assert sum(len(g) for g in groups) == len(names)
    weight_map = {}
    for i, group in enumerate(groups, start=1):
        shard = f"pytorch_model-{i:05d}-of-00003.bin"
        torch.save({n: state[n] for n in group}, folder / shard)
        weight_map |= dict.fromkeys(group, shard)
    index = {"metadata": {"total_size": 0}, "weight_map": weight_map}
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    return model, folder
