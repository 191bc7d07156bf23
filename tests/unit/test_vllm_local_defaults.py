"""The local vLLM engine's CPU defaults (workers/launch.py): float32 where the CPU has no native bf16, eager mode, 1 GiB
of KV cache, OpenMP bound to every usable core; a model's own containerConfig still wins. The ECS task never gets
them (tests/test_deploy_stacks.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chalicelib.config import EcsModel, InferenceContainer, load_config, parse_config
from workers.launch import WorkerSpec, cpu_flags, vllm_spec

ROOT = Path(__file__).resolve().parents[2]
AVX2 = frozenset({"fpu", "sse4_2", "avx", "avx2", "fma"})  # this machine's kind: AMD EPYC Zen3
SAPPHIRE_RAPIDS = AVX2 | {"avx512f", "avx512_bf16", "amx_bf16"}


def _chat_model(**container: Any) -> EcsModel:
    """config.yaml's vLLM chat model, its containerConfig updated with `container`."""
    config = load_config(ROOT / "config.yaml")
    model = next(m for m in config.ecs_models if m.inference_container is InferenceContainer.VLLM)
    if not container:
        return model
    data = config.model_dump(by_alias=True, exclude_none=True, mode="json")
    entry = next(m for m in data["ecsModels"] if m["modelName"] == model.model_name)
    for key, value in container.items():
        entry["containerConfig"][key] = {**entry["containerConfig"].get(key, {}), **value}
    return next(m for m in parse_config(data).ecs_models if m.model_name == model.model_name)


def _spec(model: EcsModel, flags: frozenset[str], venv: Path, monkeypatch: pytest.MonkeyPatch) -> WorkerSpec:
    (venv / "bin").mkdir(parents=True, exist_ok=True)
    (venv / "bin" / "python").touch()  # the spec only names the interpreter
    monkeypatch.setenv("LISA_VLLM_VENV", str(venv))
    return vllm_spec(model, Path("/models/smollm2"), 8000, cpu=flags, cpus=[3, 0, 1])


def _flag(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def test_an_avx2_cpu_runs_float32(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _spec(_chat_model(), AVX2, tmp_path, monkeypatch)
    assert _flag(spec.args, "--dtype") == "float32"
    assert "--enforce-eager" in spec.args
    assert (_flag(spec.args, "--max-model-len"), _flag(spec.args, "--tool-call-parser")) == ("2048", "hermes")
    assert spec.env["VLLM_CPU_KVCACHE_SPACE"] == "1"
    # every usable core computes; none is kept back for the API server
    assert (spec.env["VLLM_CPU_OMP_THREADS_BIND"], spec.env["VLLM_CPU_NUM_OF_RESERVED_CPU"]) == ("0,1,3", "0")


def test_a_cpu_with_native_bf16_or_unknown_flags_keeps_the_weights_dtype(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for flags in (SAPPHIRE_RAPIDS, frozenset()):
        spec = _spec(_chat_model(), flags, tmp_path, monkeypatch)
        assert "--dtype" not in spec.args  # the weights' own (bf16): computed natively, or vLLM's choice
        assert "--enforce-eager" in spec.args


def test_a_models_own_settings_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _chat_model(
        engineArgs={"dtype": "bfloat16", "enforceEager": False},
        environment={"VLLM_CPU_OMP_THREADS_BIND": "0-1", "VLLM_CPU_KVCACHE_SPACE": "4"},
    )
    spec = _spec(model, AVX2, tmp_path, monkeypatch)
    assert _flag(spec.args, "--dtype") == "bfloat16"
    assert "--no-enforce-eager" in spec.args
    assert (spec.env["VLLM_CPU_OMP_THREADS_BIND"], spec.env["VLLM_CPU_KVCACHE_SPACE"]) == ("0-1", "4")
    upstream = _spec(_chat_model(environment={"VLLM_DTYPE": "half"}), AVX2, tmp_path, monkeypatch)
    assert _flag(upstream.args, "--dtype") == "half"  # upstream LISA's name, too


def test_cpu_flags_read_x86_and_arm_cpuinfo(tmp_path: Path) -> None:
    x86, arm = tmp_path / "x86", tmp_path / "arm"
    x86.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 fma\n\nprocessor\t: 1\n")
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16 sve\n")
    assert cpu_flags(x86) == {"fpu", "avx2", "fma"}
    assert "bf16" in cpu_flags(arm)
    assert cpu_flags(tmp_path / "missing") == frozenset()  # unknown: no dtype default (vLLM's own choice)
