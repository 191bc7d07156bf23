"""The whole of local LISA in one object: AWS stand-in, model workers, registry, one front door.

    stack = LocalLisa(StackOptions(port=8080)).start()   # stack.url, stack.api_key
    ...
    stack.stop()

`make run` (runner/__main__.py) starts it and waits for Ctrl-C; tests start the same stack in a fixture.
Setting `aws_endpoint_url` (or LISA_AWS_ENDPOINT_URL: LocalStack, real AWS...) replaces the embedded moto server
with no code change; everything else talks to AWS only through chalicelib.aws.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
from aiohttp import web
from moto.server import ThreadedMotoServer

from chalicelib import aws
from chalicelib.config import EcsModel, InferenceContainer, LisaConfig, load_config
from runner.bootstrap import bootstrap
from runner.moto_fixes import answer_s3_preflights, serialize_moto_dynamodb
from runner.processes import ManagedProcess
from workers.launch import free_port, model_spec

if TYPE_CHECKING:
    from router.services import ChatAugmenter

ROOT = Path(__file__).resolve().parents[1]
ADMIN_USER = "local-admin"
logger = logging.getLogger("lisa.runner")


@dataclass
class StackOptions:
    """What to start and where."""

    port: int = 8080
    host: str = "127.0.0.1"
    config_path: Path = ROOT / "config.yaml"
    state_dir: Path = ROOT / ".lisa"  # logs, database files, the weights workers serve
    models_dir: Path = ROOT / ".lisa" / "models"  # prepared local models (built once, shared by every stack)
    aws_endpoint_url: str | None = None  # None: the embedded moto server
    webui_dir: Path | None = ROOT / "webui" / "dist"
    worker_timeout: float = 300.0
    schedule_clock: Callable[[], datetime] | None = None  # model schedules fire by this clock (None: the real one)
    schedule_interval: float = 15.0  # seconds between the local scheduler's ticks


@dataclass
class LocalLisa:
    """Start with `start()`, stop with `stop()` (also on a failed start); `url` and `api_key` are set once started."""

    options: StackOptions = field(default_factory=StackOptions)
    url: str = ""
    api_key: str = ""
    config: LisaConfig | None = None
    endpoints: dict[str, str] = field(default_factory=dict)  # modelName → worker URL
    aws_endpoint_url: str = ""
    _moto: ThreadedMotoServer | None = None
    _processes: list[ManagedProcess] = field(default_factory=list)
    _stoppers: list[Callable[[], None]] = field(default_factory=list)
    _env_added: list[str] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None

    def start(self, progress: Callable[[str], None] = logger.info) -> LocalLisa:
        """Start every local part in dependency order; on failure stop what started, then re-raise."""
        try:
            self.config = load_config(self.options.config_path)
            self._configure_environment(self.config)
            progress("AWS: starting the embedded moto server" if not self._endpoint() else f"AWS: {self._endpoint()}")
            self._start_aws()
            bootstrap()
            progress("models: preparing local weights")
            folders = self._model_folders(self.config)
            self._stage_models(self.config, folders, progress)
            self._start_model_agent(progress)
            progress(f"workers: starting {', '.join(m.model_name for m in served_locally(self.config))}")
            self.endpoints = self._start_workers(self.config, folders, progress)
            self._sync_registry(self.config)
            augmenter = self._start_rag(self.config, progress)
            self._start_front_door(augmenter)
            self.api_key = self._create_admin_token()
        except BaseException:
            self.stop()
            raise
        return self

    # -- environment and AWS ---------------------------------------------------------------------------------
    def _configure_environment(self, config: LisaConfig) -> None:
        """Settings the Lambdas get from their stage config, taken from config.yaml (the caller's env wins)."""
        defaults = {
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": config.region,
            "LISA_REGION": config.region,
            "LISA_STAGE": config.stage,
            "LISA_DEPLOYMENT_NAME": config.deployment_name,
            "LISA_MODELS_BUCKET": config.s3_bucket_models,
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            **config.auth_config.environment(),
            **config.limits.environment(),
        }
        for key, value in defaults.items():
            if value and key not in os.environ:
                os.environ[key] = str(value)
                self._env_added.append(key)
        aws.reset()

    def _endpoint(self) -> str | None:
        return self.options.aws_endpoint_url or os.environ.get("LISA_AWS_ENDPOINT_URL") or None

    def _start_aws(self) -> None:
        endpoint = self._endpoint()
        if not endpoint:
            serialize_moto_dynamodb()
            answer_s3_preflights()
            port = free_port()
            self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
            self._moto.start()
            endpoint = f"http://127.0.0.1:{port}"
            config = {"stepfunctions": {"execute_state_machine": True}}
            requests.post(f"{endpoint}/moto-api/config", json=config, timeout=10).raise_for_status()
        os.environ["LISA_AWS_ENDPOINT_URL"] = self.aws_endpoint_url = endpoint
        aws.reset()

    # -- models ----------------------------------------------------------------------------------------------
    def _model_folders(self, config: LisaConfig) -> dict[str, Path]:
        """modelName → the HF folder its worker serves."""
        from workers.prepare import ensure_local_models

        prepared = ensure_local_models(self.options.models_dir)
        folders: dict[str, Path] = {}
        for model in served_locally(config):
            if model.model_id not in prepared:
                raise RuntimeError(
                    f"ecsModels: {model.model_name} ({model.model_id}) has no local weights; local LISA can serve "
                    f"{', '.join(sorted(prepared))} (or give the model an endpointUrl)"
                )
            folders[model.model_name] = prepared[model.model_id]
        return folders

    def _stage_models(self, config: LisaConfig, folders: dict[str, Path], progress: Callable[[str], None]) -> None:
        """Stage each model's weights into the models bucket through the staging workflow, as in AWS.

        On the embedded moto server the same ASL runs on moto's interpreter with in-process Lambda tasks. Against
        another endpoint it needs a deployed state machine (LISA_STAGING_STATE_MACHINE_ARN); without one the
        weights are served as they are and staging is skipped (said in the progress output).
        """
        from runner.stepfunctions_local import LocalStepFunctions, stage_local_folder

        if self._moto is not None:
            local = LocalStepFunctions(self.aws_endpoint_url, stage=config.stage).start()
            self._stoppers.append(local.stop)
        elif not os.environ.get("LISA_STAGING_STATE_MACHINE_ARN"):
            progress("staging: skipped (no LISA_STAGING_STATE_MACHINE_ARN for this AWS endpoint)")
            return
        for model in served_locally(config):
            if model.model_name not in folders:
                continue
            progress(f"staging: {model.model_id} → s3://{config.s3_bucket_models}/{model.model_id}/")
            status = stage_local_folder(model.model_id, folders[model.model_name], in_place=True)
            if status.status != "SUCCEEDED":
                raise RuntimeError(f"staging {model.model_id} failed at {status.failed_step}: {status.reason}")

    def _start_model_agent(self, progress: Callable[[str], None]) -> None:
        """Run-time models (POST /models): the local ECS agent runs their engines and the local scheduler fires
        their schedules (on the embedded moto only)."""
        if self._moto is None:
            progress("models: run-time models need the embedded moto server's ECS (skipped)")
            return
        from runner.ecs_agent import LocalEcs
        from runner.schedule_firing import LocalScheduler, utc_now

        agent = LocalEcs(self.options.state_dir, self.options.models_dir).start()
        self._stoppers.append(agent.stop)
        clock = self.options.schedule_clock or utc_now
        scheduler = LocalScheduler(self.options.state_dir, clock, self.options.schedule_interval).start()
        self._stoppers.append(scheduler.stop)  # model schedules fire here, as moto never fires them

    def _start_workers(
        self, config: LisaConfig, folders: dict[str, Path], progress: Callable[[str], None]
    ) -> dict[str, str]:
        """Start the local engines (all at once, then wait for each); modelName → URL.

        The model's inferenceContainer picks the engine: vLLM's CPU build for `vllm`, our CPU workers otherwise.
        Embedding models on the same weights share one worker (`shared_workers`): the weights load once.
        """
        log_dir = self.options.state_dir / "logs"
        started: list[ManagedProcess] = []
        endpoints: dict[str, str] = {}
        for group in shared_workers([m for m in served_locally(config) if m.model_name in folders]):
            model = group[0]
            spec = model_spec(model, folders[model.model_name], free_port())
            name = "+".join(m.model_name for m in group)
            process = ManagedProcess(
                name, spec.module, spec.args, spec.health_url, log_dir, spec.env, python=spec.python
            )
            self._processes.append(process.start())
            started.append(process)
            endpoints.update({m.model_name: spec.url for m in group})
        for process in started:
            process.wait_healthy(self.options.worker_timeout, progress=progress)
        return endpoints

    def _sync_registry(self, config: LisaConfig) -> None:
        from chalicelib.registry.resolver import reset_registry
        from chalicelib.registry.sync import sync_models

        sync_models(config, self.endpoints, prune=True)
        reset_registry()

    # -- RAG ------------------------------------------------------------------------------------------------
    def _start_rag(self, config: LisaConfig, progress: Callable[[str], None]) -> ChatAugmenter | None:
        """Embedded PostgreSQL + pgvector, the config's repositories and the ingestion poller; the chat augmenter.

        With the embedded moto server every AWS resource is new on each start, so the database starts empty too
        (a document list and its chunks never disagree).
        """
        if not config.rag_repositories:
            return None
        from runner.rag_local import start_local_rag

        if self._moto is not None:
            shutil.rmtree(self.options.state_dir / "postgres", ignore_errors=True)
        progress(
            f"RAG: PostgreSQL + pgvector, repositories {', '.join(r.repository_id for r in config.rag_repositories)}"
        )
        rag = start_local_rag(config, self.options.state_dir)
        self._stoppers.append(rag.stop)
        return rag.augmenter

    # -- front door ------------------------------------------------------------------------------------------
    def _front_door_app(self, augmenter: ChatAugmenter | None) -> web.Application:
        """The router's application plus the web UI and the Chalice control plane behind the same port."""
        from app import app as chalice_app
        from router.app import create_app
        from router.settings import RouterSettings
        from runner.chalice_gateway import make_gateway
        from runner.front_door import ControlPlane, mount

        assert self.config is not None
        control_plane = ControlPlane(make_gateway(chalice_app, self.config.stage))
        self._stoppers.append(control_plane.close)
        settings = RouterSettings(host=self.options.host, port=self.options.port)
        app = create_app(settings, augment_chat=augmenter)
        return mount(app, control_plane, self.options.webui_dir, self._ui_headers(self.config))

    @staticmethod
    def _ui_headers(config: LisaConfig) -> dict[str, str]:
        """The UI's hardening headers; its page may call the authority the UI is told (/ui/config: the settings')
        and the endpoint the documents' presigned uploads go to."""
        from chalicelib.settings import get_settings
        from chalicelib.webui.security import ui_security_headers

        settings = get_settings()
        upload = aws.presigned_put_origin(settings.docs_bucket)
        return ui_security_headers([settings.authority, upload, *config.auth_config.connect_origins])

    def _start_front_door(self, augmenter: ChatAugmenter | None = None) -> None:
        from router.server import AppRunner

        loop = asyncio.new_event_loop()
        app = self._front_door_app(augmenter)
        runner = AppRunner(app, handler_cancellation=True, access_log=None)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, self.options.host, self.options.port)
        loop.run_until_complete(site.start())
        self._loop, self._runner = loop, runner
        self._thread = threading.Thread(target=loop.run_forever, name="lisa-front-door", daemon=True)
        self._thread.start()
        self.url = f"http://{self.options.host}:{self.options.port}"

    def _create_admin_token(self) -> str:
        from chalicelib.auth.tokens import TokenStore

        token, _ = TokenStore().create(ADMIN_USER, is_admin=True, description="created by the local runner")
        return token

    @property
    def embedded_aws(self) -> bool:
        """Whether AWS is the embedded moto server (any credentials work) rather than an endpoint given."""
        return self._moto is not None

    # -- teardown --------------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop everything started, newest first; safe to call twice or after a failed start."""
        loop, runner, thread = self._loop, self._runner, self._thread
        self._loop = self._runner = self._thread = None
        if loop is not None and runner is not None:
            if thread is not None and thread.is_alive():
                asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
                loop.call_soon_threadsafe(loop.stop)
                thread.join(timeout=10)
            else:
                loop.run_until_complete(runner.cleanup())
            loop.close()
        for stopper in reversed(self._stoppers):
            _quietly(stopper)
        self._stoppers.clear()
        for process in reversed(self._processes):
            _quietly(process.stop)
        self._processes.clear()
        if self._moto is not None:
            _quietly(self._moto.stop)
            self._moto = None
            os.environ.pop("LISA_AWS_ENDPOINT_URL", None)
        for key in self._env_added:
            os.environ.pop(key, None)
        self._env_added.clear()
        _forget_process_caches()


def served_locally(config: LisaConfig) -> list[EcsModel]:
    """The models the runner starts an engine for: deployed, with no fixed endpoint."""
    return [m for m in config.ecs_models if m.deploy and not m.endpoint_url]


EMBEDDING_WORKERS = (InferenceContainer.TEI, InferenceContainer.INSTRUCTOR)  # one worker speaks both protocols


def shared_workers(models: list[EcsModel]) -> list[list[EcsModel]]:
    """The models grouped by the worker process that serves them, in config order.

    `tei` and `instructor` models on the same weights (modelId) share one embedding worker; the group starts with
    an instructor model if it has one, whose spec (and containerConfig.environment) the worker is started with: it
    answers the TEI routes too (`python -m workers.tei --protocol instructor`). Every other model has a worker of
    its own."""
    groups: dict[str, list[EcsModel]] = {}
    for model in models:
        shared = model.inference_container in EMBEDDING_WORKERS
        groups.setdefault(f"embedding:{model.model_id}" if shared else f"model:{model.model_name}", []).append(model)
    return [
        sorted(group, key=lambda m: m.inference_container is not InferenceContainer.INSTRUCTOR)
        for group in groups.values()
    ]


def _forget_process_caches() -> None:
    """Drop AWS clients, settings, registry snapshot and auth decisions that point at this stack's AWS."""
    from chalicelib.auth.authorizer import get_authorizer
    from chalicelib.registry.resolver import reset_registry

    aws.reset()
    reset_registry()
    get_authorizer().clear_cache()


def _quietly(stop: Callable[[], Any]) -> None:
    try:
        stop()
    except Exception:  # one part failing to stop must not keep the others running
        logger.exception("while stopping the local stack")
