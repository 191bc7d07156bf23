"""Weight staging and the model lifecycle without AWS: the real ASL (`stepfunctions/staging.json`,
`stepfunctions/model_lifecycle.json`) on moto's Step Functions interpreter, their Lambda tasks answered
in-process by the same Chalice functions (`runner/lambda_shim.py`). The lifecycle's AWS calls are made inside
its Lambda tasks (boto3 → the moto server), so the shim needs to answer nothing but Invoke.

What a caller must have running, in THIS process (moto's interpreter reads `MOTO_PORT` from the environment of
the process that runs the moto server, at call time, to find "Lambda"):

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port); moto.start()   # LISA_AWS_ENDPOINT_URL → it
    bootstrap()                                                                  # tables and buckets
    sfn = LocalStepFunctions(f"http://127.0.0.1:{port}").start()
        # enables execution on moto, starts the Lambda shim, sets MOTO_PORT to the shim's port, creates the
        # state machines and sets LISA_STAGING_STATE_MACHINE_ARN and LISA_MODEL_LIFECYCLE_STATE_MACHINE_ARN
        # (so the API, the CLI and the helpers below find them)
    status = stage_local_folder("HuggingFaceTB/SmolLM2-135M-Instruct", folder)  # → StagingStatus, status SUCCEEDED
    ...
    sfn.stop()                                                                   # shim stopped, env restored

`/moto-api/reset` forgets the state machine: call `sfn.deploy()` again afterwards (idempotent).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import requests

from chalicelib import aws
from chalicelib.lifecycle import FUNCTIONS as LIFECYCLE_FUNCTIONS
from chalicelib.settings import get_settings
from chalicelib.staging import FUNCTIONS
from chalicelib.staging.errors import InvalidModelName
from chalicelib.staging.models import S3Source, StagingStatus
from runner.environment import EnvironmentChanges
from runner.lambda_shim import Handler, LambdaShim

ROOT = Path(__file__).resolve().parents[1]
ASL_PATH = ROOT / "stepfunctions" / "staging.json"
ACCOUNT = "123456789012"
MACHINES: dict[str, tuple[Path, dict[str, str]]] = {
    "staging": (ASL_PATH, FUNCTIONS),
    "model_lifecycle": (ROOT / "stepfunctions" / "model_lifecycle.json", LIFECYCLE_FUNCTIONS),
}
"""stepfunctions/<stem>.json → (its ASL, its placeholders' Chalice functions)."""


def deployed_name(function: str, app_name: str = "lisa", stage: str = "dev") -> str:
    """The Lambda name `chalice deploy` gives a `@lambda_function(name=function)`."""
    return f"{app_name}-{stage}-{function}"


def definition(substitutions: dict[str, str], path: Path = ASL_PATH, functions: dict[str, str] = FUNCTIONS) -> str:
    """The ASL with `${Key}` DefinitionSubstitutions applied (as CloudFormation/CDK do); every key must be given."""
    text = path.read_text()
    for key in functions:
        if key not in substitutions:
            raise KeyError(f"no substitution for ${{{key}}}")
    for key, value in substitutions.items():
        text = text.replace("${" + key + "}", value)
    json.loads(text)
    return text


def app_handlers() -> dict[str, Handler]:
    """The workflows' Lambda functions of the Chalice app, by function name."""
    from app import app

    names = {name for _, functions in MACHINES.values() for name in functions.values()}
    return {function.name: function for function in app.pure_lambda_functions if function.name in names}


class LocalStepFunctions:
    """The staging state machine on a moto server running in this process; see the module docstring."""

    def __init__(
        self,
        moto_url: str,
        *,
        handlers: dict[str, Handler] | None = None,
        app_name: str = "lisa",
        stage: str | None = None,
    ) -> None:
        self.moto_url = moto_url.rstrip("/")
        self._handlers = handlers
        self.app_name = app_name
        self.stage = stage or get_settings().stage
        self.state_machine_arn = ""
        self.arns: dict[str, str] = {}
        self._shim: LambdaShim | None = None
        self._env = EnvironmentChanges()

    @property
    def state_machine_name(self) -> str:
        """The name the deployed stack gives the staging state machine (gpu_stack/names.py)."""
        return f"{self.app_name}-{self.stage}-staging"

    def _function_arn(self, function: str) -> str:
        name = deployed_name(function, self.app_name, self.stage)
        return f"arn:aws:lambda:{get_settings().region}:{ACCOUNT}:function:{name}"

    def start(self) -> LocalStepFunctions:
        """Enable moto's interpreter, start the shim, point MOTO_PORT at it, deploy; `stop()` undoes it."""
        # moto's interpreter logs every caught task failure as an ERROR with its whole parse tree: the
        # workflow records failures itself (RecordFailure), so keep those out of the console.
        logging.getLogger("moto.stepfunctions.parser.asl.component.eval_component").setLevel(logging.CRITICAL)
        try:
            config = {"stepfunctions": {"execute_state_machine": True}}
            requests.post(f"{self.moto_url}/moto-api/config", json=config, timeout=10).raise_for_status()
            handlers = self._handlers if self._handlers is not None else app_handlers()
            by_name = {deployed_name(name, self.app_name, self.stage): h for name, h in handlers.items()}
            self._shim = LambdaShim({**handlers, **by_name}).start()
            self._setenv("MOTO_PORT", str(self._shim.port))
            self.deploy()
        except BaseException:
            self.stop()
            raise
        return self

    def deploy(self) -> str:
        """Create (or update) the state machines with the shim's function ARNs; sets LISA_<STEM>_STATE_MACHINE_ARN
        for each; returns the staging one's ARN."""
        sfn = aws.client("stepfunctions")
        existing = {
            m["name"]: m["stateMachineArn"]
            for page in sfn.get_paginator("list_state_machines").paginate()
            for m in page["stateMachines"]
        }
        for stem, (path, functions) in MACHINES.items():
            name = f"{self.app_name}-{self.stage}-{stem}"
            text = definition({key: self._function_arn(f) for key, f in functions.items()}, path, functions)
            role = f"arn:aws:iam::{ACCOUNT}:role/{name}"
            if name in existing:
                sfn.update_state_machine(stateMachineArn=existing[name], definition=text, roleArn=role)
                arn = str(existing[name])
            else:
                arn = str(sfn.create_state_machine(name=name, definition=text, roleArn=role)["stateMachineArn"])
            self.arns[stem] = arn
            self._setenv(f"LISA_{stem.upper()}_STATE_MACHINE_ARN", arn)
        self.state_machine_arn = self.arns["staging"]
        aws.reset()
        return self.state_machine_arn

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Wait until no Lambda task runs (a failed Map's other iterations may still be finishing)."""
        return self._shim.wait_idle(timeout) if self._shim is not None else True

    def _setenv(self, key: str, value: str) -> None:
        self._env.set(key, value)

    def stop(self) -> None:
        """Stop the shim and restore the environment; safe to call twice."""
        if self._shim is not None:
            self._shim.stop()
            self._shim = None
        self._env.restore()
        aws.reset()

    def __enter__(self) -> LocalStepFunctions:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def stage_local_folder(
    model_id: str,
    folder: Path,
    *,
    registry_ids: Iterable[str] | None = None,
    in_place: bool = False,
    force: bool = False,
    on_progress: Callable[[StagingStatus], None] | None = None,
    timeout_seconds: float | None = 1800,
) -> StagingStatus:
    """Upload `folder` (the weights of HF id `model_id`, `org/name`) to the models bucket, run the staging
    workflow to completion and return its final status (`.status` is SUCCEEDED or FAILED with `.error`/`.reason`).

    `registry_ids`: registry records to mark Creating → InService/Failed (default: every record whose hfModelId
    is `model_id`; pass `()` for none). `in_place`: upload straight to `<org>/<name>/` (one copy of the weights
    in the bucket; for folders already in safetensors, like the local default model). Needs a configured state
    machine (a started `LocalStepFunctions`, or LISA_STAGING_STATE_MACHINE_ARN against real AWS)."""
    from chalicelib.staging.service import registry_ids_for, start_staging, wait_for
    from cli.mirror import mirror_folder

    ids = list(registry_ids) if registry_ids is not None else registry_ids_for(model_id)
    try:
        source = mirror_folder(model_id, Path(folder), in_place=in_place).source
    except InvalidModelName:
        source = S3Source(origin=f"local folder {folder}")  # the workflow records the bad name
    started = start_staging(model_id, model_ids=ids, source=source, force=force)
    return wait_for(started.execution_arn, on_progress=on_progress, timeout_seconds=timeout_seconds)
