"""vLLM models in config.yaml and the registry: engine settings from engineArgs and/or upstream LISA's VLLM_*
environment names, validated with their key paths, and the one server command both tiers start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from chalicelib.config import ConfigError, parse_config
from chalicelib.registry.models import CreateModelRequest, ModelRecord
from chalicelib.vllm_engine import SERVER_MODULE, VllmEngineArgs, server_command

ROOT = Path(__file__).resolve().parents[2]


def _config(container: dict[str, Any], **model: Any) -> dict[str, Any]:
    """example_config.yaml with its vLLM model's containerConfig (and other keys) replaced."""
    data = yaml.safe_load((ROOT / "example_config.yaml").read_text())
    vllm = data["ecsModels"][0]
    assert vllm["inferenceContainer"] == "vllm"
    vllm.update(containerConfig={"image": "vllm/vllm-openai:v0.32.0", **container}, **model)
    return data


def _args(container: dict[str, Any]) -> VllmEngineArgs:
    return parse_config(_config(container)).ecs_models[0].container_config.vllm_args()


def test_example_config_deploys_vllm_with_its_engine_args() -> None:
    config = parse_config(yaml.safe_load((ROOT / "example_config.yaml").read_text()))
    model = config.ecs_models[0]
    assert (model.provider, model.model_type.value) == ("ecs.textgen.vllm", "textgen")
    args = model.container_config.vllm_args()
    assert (args.max_model_len, args.dtype, args.tool_call_parser, args.max_num_seqs) == (
        8192,
        "bfloat16",
        "mistral",
        128,
    )
    assert [m.provider for m in config.ecs_models if m.inference_container == "tgi"] == ["ecs.textgen.tgi"]


def test_upstream_environment_names_and_engine_args_are_the_same_settings() -> None:
    upstream = {
        "VLLM_MAX_MODEL_LEN": "4096",
        "VLLM_DTYPE": "half",
        "VLLM_TENSOR_PARALLEL_SIZE": "2",
        "VLLM_GPU_MEMORY_UTILIZATION": "0.85",
        "VLLM_MAX_NUM_SEQS": "64",
        "VLLM_ENABLE_PREFIX_CACHING": "false",
        "VLLM_TRUST_REMOTE_CODE": "true",
        "VLLM_ENABLE_AUTO_TOOL_CHOICE": "true",
        "VLLM_TOOL_CALL_PARSER": "hermes",
        "VLLM_LOGGING_LEVEL": "DEBUG",  # read by vLLM itself: passed through
    }
    engine_args = {
        "maxModelLen": 4096,
        "dtype": "half",
        "tensorParallelSize": 2,
        "gpuMemoryUtilization": 0.85,
        "maxNumSeqs": 64,
        "enablePrefixCaching": False,
        "trustRemoteCode": True,
        "enableAutoToolChoice": True,
        "toolCallParser": "hermes",
    }
    from_environment = _args({"environment": upstream})
    assert from_environment == _args({"engineArgs": engine_args, "environment": {"VLLM_LOGGING_LEVEL": "DEBUG"}})
    assert from_environment == _args({"engineArgs": engine_args, "environment": upstream})  # agreeing twice is fine
    command = server_command(
        from_environment, upstream, model_dir="/data/model", served_name="mistral", host="10.0.0.5", port=8080
    )
    assert command.args == [
        *("--model", "/data/model", "--served-model-name", "mistral", "--host", "10.0.0.5", "--port", "8080"),
        *("--max-model-len", "4096", "--dtype", "half", "--tensor-parallel-size", "2"),
        *("--gpu-memory-utilization", "0.85", "--max-num-seqs", "64", "--trust-remote-code"),
        *("--no-enable-prefix-caching", "--enable-auto-tool-choice", "--tool-call-parser", "hermes"),
    ]
    assert command.environment == {"VLLM_LOGGING_LEVEL": "DEBUG"}  # the names turned into flags are not repeated
    assert command.gpus == 2


def test_legacy_max_total_tokens_is_the_max_model_len() -> None:
    assert _args({"environment": {"MAX_TOTAL_TOKENS": "2048"}}).max_model_len == 2048
    assert _args({"environment": {"MAX_TOTAL_TOKENS": "2048", "VLLM_MAX_MODEL_LEN": "2048"}}).max_model_len == 2048
    assert _args({}).max_model_len is None  # vLLM's default: the model's own context length


def test_caller_defaults_apply_only_where_config_is_silent() -> None:
    def flags(settings: VllmEngineArgs) -> list[str]:
        command = server_command(settings, {}, model_dir="m", served_name="n", host="h", port=1, enforce_eager=True)
        return command.args[8:]

    assert flags(_args({})) == ["--enforce-eager"]
    assert flags(_args({"engineArgs": {"enforceEager": False}})) == ["--no-enforce-eager"]
    assert server_command(_args({}), {}, model_dir="m", served_name="n", host="h", port=1).gpus == 1
    assert SERVER_MODULE == "vllm.entrypoints.openai.api_server"


V = "ecsModels.0.containerConfig"


@pytest.mark.parametrize(
    ("container", "expected"),
    [
        ({"engineArgs": {"dtype": "bf16"}}, f"{V}.engineArgs.dtype: Input should be 'auto'"),
        ({"engineArgs": {"gpuMemoryUtilization": 1.5}}, f"{V}.engineArgs.gpuMemoryUtilization: Input should be less"),
        ({"engineArgs": {"tensorParallelSize": 0}}, f"{V}.engineArgs.tensorParallelSize: Input should be greater"),
        ({"engineArgs": {"maxModelLength": 4096}}, f"{V}.engineArgs.maxModelLength: Extra inputs are not permitted"),
        ({"engineArgs": {"toolCallParser": "x; rm -rf /"}}, f"{V}.engineArgs.toolCallParser: String should match"),
        ({"environment": {"VLLM_DTYPE": "bf16"}}, "environment.VLLM_DTYPE: Input should be 'auto'"),
        ({"environment": {"VLLM_TENSOR_PARALLEL_SIZE": "two"}}, "environment.VLLM_TENSOR_PARALLEL_SIZE: Input should"),
        ({"environment": {"VLLM_ENABLE_PREFIX_CACHING": "maybe"}}, "environment.VLLM_ENABLE_PREFIX_CACHING: Input"),
        ({"environment": {"VLLM_GPU_MEMORY_UTILIZATION": "nan"}}, "environment.VLLM_GPU_MEMORY_UTILIZATION: Input"),
        (
            {"environment": {"VLLM_MAX_MODEL_LEN": "4096"}, "engineArgs": {"maxModelLen": 8192}},
            "engineArgs.maxModelLen (8192) and environment.VLLM_MAX_MODEL_LEN (4096) disagree",
        ),
        (
            {"environment": {"VLLM_MAX_MODEL_LEN": "4096", "MAX_TOTAL_TOKENS": "8192"}},
            "environment.MAX_TOTAL_TOKENS (8192) and environment.VLLM_MAX_MODEL_LEN (4096) disagree",
        ),
        (
            {"environment": {"VLLM_ENABLE_AUTO_TOOL_CHOICE": "true"}},
            "needs a tool call parser: set engineArgs.toolCallParser (or environment.VLLM_TOOL_CALL_PARSER)",
        ),
    ],
)
def test_bad_engine_settings_name_their_key_path(container: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(_config(container))
    assert expected in str(error.value)
    assert V in str(error.value)


def test_engine_args_belong_to_vllm_and_vllm_to_textgen() -> None:
    data = _config({"engineArgs": {"maxModelLen": 512}})
    data["ecsModels"][1]["containerConfig"]["engineArgs"] = {"maxModelLen": 512}
    with pytest.raises(ConfigError, match=r"ecsModels\.1\.containerConfig: .*only inferenceContainer 'vllm' takes"):
        parse_config(data)
    with pytest.raises(ConfigError, match="inferenceContainer 'vllm' cannot serve modelType 'embedding'"):
        parse_config(_config({}, modelType="embedding"))


def test_registry_records_check_vllm_settings_too() -> None:
    request = CreateModelRequest.model_validate(
        {
            "modelName": "qwen",
            "hfModelId": "Qwen/Qwen3-0.6B",
            "inferenceContainer": "vllm",
            "containerConfig": {"image": "vllm/vllm-openai:v0.32.0", "engineArgs": {"maxModelLen": 4096}},
        }
    )
    assert request.record_fields()["model_type"] == "textgen"
    with pytest.raises(ValueError, match=r"containerConfig\n.*environment\.VLLM_DTYPE: Input should be"):
        CreateModelRequest.model_validate(
            {
                "modelName": "qwen",
                "hfModelId": "Qwen/Qwen3-0.6B",
                "inferenceContainer": "vllm",
                "containerConfig": {"image": "vllm/vllm-openai:v0.32.0", "environment": {"VLLM_DTYPE": "bf16"}},
            }
        )
    record = {
        "modelId": "qwen",
        "modelName": "qwen",
        "hfModelId": "Qwen/Qwen3-0.6B",
        "modelType": "textgen",
        "inferenceContainer": "vllm",
        "status": "Creating",
        "streaming": True,
        "containerConfig": {"image": "vllm/vllm-openai:v0.32.0", "environment": {"VLLM_MAX_MODEL_LEN": "4096"}},
        "createdAt": "2026-12-01T00:00:00Z",
        "updatedAt": "2026-12-01T00:00:00Z",
        "version": 1,
    }
    parsed = ModelRecord.model_validate(record)
    assert parsed.provider == "ecs.textgen.vllm"
    assert parsed.public_wire()["containerConfig"]["environment"] == {"VLLM_MAX_MODEL_LEN": "4096"}
    record["containerConfig"]["engineArgs"] = {"maxModelLen": 2048}
    with pytest.raises(ValueError, match="disagree"):
        ModelRecord.model_validate(record)
