"""`python -m runner` (`make run`): all of LISA on one port, with a default model and a printed API key."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TextIO

from rich.console import Console

from chalicelib.config import ConfigError, InferenceContainer, load_config
from runner.stack import LocalLisa, StackOptions, served_locally


def _needs_vllm(config_path: Path) -> str:
    """`yes` when the config serves a `vllm` model locally (the Makefile then creates .venv-vllm), else `no`."""
    try:
        models = served_locally(load_config(config_path))
    except ConfigError:
        return "no"  # the runner itself reports the config's problems
    return "yes" if any(m.inference_container is InferenceContainer.VLLM for m in models) else "no"


def _log_to_file(path: Path) -> TextIO:
    """Point this process's stdout (file descriptor 1) at `path`; return a stream on the original stdout.

    The router's and the Lambdas' Powertools loggers write one JSON line per request to stdout (each bound to the
    stream at import). On a pipe, a parent that has read the banner and stops draining it would block the front
    door's event loop once the pipe is full; in a file (as the workers' logs are) nothing waits on anyone. Only the
    banner goes to the original stdout; progress and warnings stay on stderr."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    banner = os.fdopen(os.dup(1), "w", buffering=1)
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 1)
    os.close(log)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # a TextIOWrapper on fd 1
    return banner


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    defaults = StackOptions()
    parser = argparse.ArgumentParser(prog="python -m runner", description=__doc__)
    parser.add_argument("--port", type=int, default=defaults.port, help="the one port (default %(default)s)")
    parser.add_argument("--host", default=defaults.host, help="interface to listen on (default %(default)s)")
    parser.add_argument("--config", type=Path, default=defaults.config_path, help="config.yaml to serve")
    parser.add_argument(
        "--state-dir", type=Path, default=defaults.state_dir, help="logs and database files (default .lisa)"
    )
    parser.add_argument("--needs-vllm", action="store_true", help="print whether the config needs .venv-vllm; exit")
    parser.add_argument(
        "--aws-endpoint-url",
        default=None,
        help="use this AWS endpoint (LocalStack, real AWS...) instead of the embedded moto server",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """`python -m runner`: start local LISA (or answer a question about the config); the exit status."""
    args = _arguments(argv)
    if args.needs_vllm:
        print(_needs_vllm(args.config))
        return 0
    options = StackOptions(
        port=args.port,
        host=args.host,
        config_path=args.config,
        state_dir=args.state_dir,
        aws_endpoint_url=args.aws_endpoint_url,
    )
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    log_path = args.state_dir / "logs" / "runner.log"
    out = Console(file=_log_to_file(log_path), highlight=False, soft_wrap=True)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the embedded moto server's access log
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())

    stack = LocalLisa(options)
    try:
        stack.start(progress=lambda step: console.print(f"[dim]…[/dim] {step}"))
    except Exception as error:
        console.print(f"[red]LISA did not start:[/red] {error}")
        return 1
    assert stack.config is not None
    model = next((m.model_name for m in stack.config.ecs_models if m.model_type == "textgen" and m.deploy), "MODEL")
    out.print(f"\nLISA is running at [bold]{stack.url}[/bold]  (chat UI: open it in a browser)")
    out.print(f"API key (admin, shown once): [bold]{stack.api_key}[/bold]\n")
    out.print(
        f"curl -s {stack.url}/v1/openai/chat/completions -H 'Authorization: Bearer {stack.api_key}' "
        "-H 'Content-Type: application/json' "
        f'-d \'{{"model": "{model}", "messages": [{{"role": "user", "content": "What is the capital of France?"}}]}}\''
    )
    credentials = " AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local" if stack.embedded_aws else ""
    out.print(f"\nFor the `lisa` CLI: export LISA_AWS_ENDPOINT_URL={stack.aws_endpoint_url}{credentials}")
    out.print(f"\nLogs: {log_path} (one line per request), the model workers' next to it.")
    out.print("\nPress Ctrl-C to stop.")
    stopping.wait()
    console.print("stopping…")
    stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
